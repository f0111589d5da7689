/**
 * The libvirt daemons of `--libvirt`, one connection each, feeding the same handler as the QMP
 * sockets: a libvirt domain's events become the same records as a socket's, and its VM name is
 * claimed in the same VmNames, so a socket and a domain never share a name.
 */
import type { BackoffPolicy } from '../../shared/core/backoff.ts';
import { TelemetryError } from '../../shared/core/errors.ts';
import { libvirtSource, parseLibvirtTarget, type LibvirtTarget } from '../core/libvirt-target.ts';
import { parseSocketGlob, type SocketGlob } from '../core/socket-glob.ts';
import type { VmNames } from '../core/vm-names.ts';
import type { CollectorTelemetry } from './collector-telemetry.ts';
import { LibvirtConnection } from './libvirt-connection.ts';
import type { LibvirtTelemetry } from './libvirt-telemetry.ts';
import type { QmpConnectionHandler } from './qmp-connection.ts';

const NO_GREETING = { kind: 'greeting', qemuVersion: null, capabilities: [] } as const;

/**
 * The `--libvirt` options as targets; throws CONFIG_INVALID (before the collector starts anything)
 * when one cannot be resolved, e.g. qemu:///session without XDG_RUNTIME_DIR.
 */
export function resolveLibvirtTargets(
  texts: readonly string[],
  runtimeDir: string | null,
): LibvirtTarget[] {
  return texts.map((text) => {
    const target = parseLibvirtTarget(text, runtimeDir);
    if ('problem' in target) throw new TelemetryError('CONFIG_INVALID', target.problem);
    return target;
  });
}

/** A `--libvirt-glob` option as a pattern; the config was validated, so it parses. */
export function socketGlob(text: string): SocketGlob {
  const glob = parseSocketGlob(text);
  if ('problem' in glob) throw new TelemetryError('CONFIG_INVALID', glob.problem);
  return glob;
}

export interface LibvirtSourceOptions {
  targets: readonly LibvirtTarget[];
  events: readonly string[];
  vmName: 'name' | 'uuid';
  keepaliveIntervalMs: number;
  replyTimeoutMs: number;
  backoff: BackoffPolicy;
  handler: QmpConnectionHandler;
  vmNames: VmNames;
  /** A domain gave its VM name up (SHUTDOWN, gone): a source refused for it may be read now. */
  nameReleased?: (vm: string) => void;
  telemetry: CollectorTelemetry;
  libvirtTelemetry: LibvirtTelemetry;
  newSessionId?: () => string;
}

export interface LibvirtSource {
  vms(): string[];
  /** The targets (as given) without a registered connection right now. */
  unconnected(): string[];
  /** Connects to one more daemon (one that `--libvirt-glob` found); a known target is ignored. */
  add(target: LibvirtTarget): void;
  /** Disconnects from a daemon that went away: its sessions end, its VM names are released. */
  remove(text: string): Promise<void>;
  stop(): Promise<void>;
}

export function startLibvirtSource(options: LibvirtSourceOptions): LibvirtSource {
  const { handler, vmNames, telemetry, libvirtTelemetry } = options;
  const events = options.events.includes('*') ? [] : options.events;
  const connections = new Map<string, LibvirtConnection>();
  const connectionTo = (target: LibvirtTarget): LibvirtConnection =>
    new LibvirtConnection({
      target,
      events,
      vmName: options.vmName,
      backoff: options.backoff,
      keepaliveIntervalMs: options.keepaliveIntervalMs,
      replyTimeoutMs: options.replyTimeoutMs,
      ...(options.newSessionId === undefined ? {} : { newSessionId: options.newSessionId }),
      handler: {
        connected: (t, socket, reconnect) => libvirtTelemetry.connected(t.text, socket, reconnect),
        disconnected: (t, reason, stopping) =>
          libvirtTelemetry.disconnected(t.text, reason, stopping),
        connectFailed: (t, error, retryInMs) =>
          libvirtTelemetry.connectFailed(t.text, error, retryInMs),
        claim: (vm) => {
          const source = libvirtSource(target, vm);
          const claim = vmNames.claim(vm, source);
          if (!claim.ok) telemetry.vmNameConflict(vm, source, claim.owner, claim.problem);
          return claim.ok;
        },
        release: (vm) => {
          vmNames.release(vm, libvirtSource(target, vm));
          options.nameReleased?.(vm);
        },
        // Reconnects of the daemon connection are counted by libvirt_reconnects_total.
        sessionStarted: (session) => handler.sessionStarted(session, NO_GREETING, false),
        sessionEnded: (session, reason) => handler.sessionEnded(session, reason),
        event: (session, event, receivedMicros) => {
          handler.message('event');
          handler.event(session, event, receivedMicros);
        },
        rejected: (vm, invalid) => handler.rejected(vm, invalid),
      },
    });
  const add = (target: LibvirtTarget): void => {
    if (connections.has(target.text)) return;
    const connection = connectionTo(target);
    connections.set(target.text, connection);
    connection.start();
  };
  for (const target of options.targets) add(target);
  return {
    vms: () => [...connections.values()].flatMap((c) => c.vms()),
    unconnected: () =>
      [...connections.values()].filter((c) => !c.connected).map((c) => c.target.text),
    add,
    remove: async (text) => {
      const connection = connections.get(text);
      if (connection === undefined) return;
      connections.delete(text);
      await connection.stop();
    },
    stop: async () => {
      await Promise.all([...connections.values()].map((c) => c.stop()));
    },
  };
}
