/**
 * The libvirt daemons of `--libvirt`, one connection each, feeding the same handler as the QMP
 * sockets: a libvirt domain's events become the same records as a socket's, and its VM name is
 * claimed in the same VmNames, so a socket and a domain never share a name.
 */
import type { BackoffPolicy } from '../../shared/core/backoff.ts';
import { TelemetryError } from '../../shared/core/errors.ts';
import { libvirtSource, parseLibvirtTarget, type LibvirtTarget } from '../core/libvirt-target.ts';
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
  stop(): Promise<void>;
}

export function startLibvirtSource(options: LibvirtSourceOptions): LibvirtSource {
  const { handler, vmNames, telemetry, libvirtTelemetry } = options;
  const { targets } = options;
  const events = options.events.includes('*') ? [] : options.events;
  const connections = targets.map(
    (target) =>
      new LibvirtConnection({
        target,
        events,
        vmName: options.vmName,
        backoff: options.backoff,
        keepaliveIntervalMs: options.keepaliveIntervalMs,
        replyTimeoutMs: options.replyTimeoutMs,
        ...(options.newSessionId === undefined ? {} : { newSessionId: options.newSessionId }),
        handler: {
          connected: (t, socket, reconnect) =>
            libvirtTelemetry.connected(t.text, socket, reconnect),
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
      }),
  );
  for (const connection of connections) connection.start();
  return {
    vms: () => connections.flatMap((c) => c.vms()),
    unconnected: () => connections.filter((c) => !c.connected).map((c) => c.target.text),
    stop: async () => {
      await Promise.all(connections.map((c) => c.stop()));
    },
  };
}
