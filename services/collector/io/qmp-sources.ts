/**
 * The collector's QMP sources: explicit targets (`--socket`), a watched socket directory and
 * libvirt daemons, each VM read by one connection that hands its events to the intake. One VM
 * name, one source across all three: a source whose name is taken waits, refused and counted,
 * and is read once the owner goes away.
 */
import type { BackoffPolicy } from '../../shared/core/backoff.ts';
import type { LibvirtTarget } from '../core/libvirt-target.ts';
import type { SocketGlob } from '../core/socket-glob.ts';
import {
  describeAddress,
  parseQmpTarget,
  vmNameOfSocket,
  type QmpTarget,
} from '../core/qmp-target.ts';
import { VmNames } from '../core/vm-names.ts';
import type { CollectorTelemetry } from './collector-telemetry.ts';
import { startLibvirtSource } from './libvirt-source.ts';
import type { LibvirtTelemetry } from './libvirt-telemetry.ts';
import { QmpConnection, type QmpConnectionHandler } from './qmp-connection.ts';
import { ReadBudget } from './read-budget.ts';
import { SocketDirWatcher } from './socket-dir-watcher.ts';
import { SocketGlobWatcher } from './socket-glob-watcher.ts';

/**
 * QMP bytes decoded per event-loop turn across all connections (read-budget.ts): about 800
 * events, a few milliseconds of decoding, so Kafka's answers and the spool's group commit wait
 * no longer than that behind a fleet that talks at once.
 */
const READ_BUDGET_BYTES = 256 * 1024;

export interface QmpSourcesOptions {
  /** Default `READ_BUDGET_BYTES`. */
  readBudgetBytes?: number;
  /** `[NAME=]PATH` or `[NAME=]tcp:HOST:PORT`, validated. */
  sockets: readonly string[];
  /** Directory of QMP sockets to watch; '' for none. */
  socketDir: string;
  rescanIntervalMs: number;
  libvirt: {
    targets: readonly LibvirtTarget[];
    /** Socket patterns listed every `globIntervalMs`: a daemon per socket, while it exists. */
    globs: readonly SocketGlob[];
    globIntervalMs: number;
    events: readonly string[];
    vmName: 'name' | 'uuid';
    keepaliveIntervalMs: number;
  };
  greetingTimeoutMs: number;
  backoff: BackoffPolicy;
  /** Session ids (UUIDv7, increasing), shared with the record numbering. */
  newSessionId: () => string;
  handler: QmpConnectionHandler;
  telemetry: CollectorTelemetry;
  libvirtTelemetry: LibvirtTelemetry;
}

export interface QmpSources {
  /** Names of the VMs being read. */
  vms(): string[];
  /** The socket directory and whether it can be listed; null without one. */
  watcher(): { dir: string; running: boolean } | null;
  /** libvirt daemons without a registered connection. */
  libvirtUnconnected(): string[];
  /** `--libvirt-glob` patterns whose fixed directory cannot be listed. */
  libvirtGlobsUnlisted(): string[];
  /** Stops reading: every connection closed, the watcher stopped. */
  stop(): Promise<void>;
}

export async function startQmpSources(options: QmpSourcesOptions): Promise<QmpSources> {
  const { handler, telemetry, backoff } = options;
  const connections = new Map<string, QmpConnection>();
  const retiring = new Set<QmpConnection>();
  const vmNames = new VmNames();
  const readBudget = new ReadBudget(options.readBudgetBytes ?? READ_BUDGET_BYTES);
  // Sources refused for a taken name, by id: the first one is read once the owner goes away.
  const refused = new Map<string, QmpTarget>();

  const addTarget = (id: string, target: QmpTarget): void => {
    if (connections.has(id)) return;
    const source = describeAddress(target.address);
    const claim = vmNames.claim(target.vm, source);
    if (!claim.ok) {
      if (!refused.has(id)) telemetry.vmNameConflict(target.vm, source, claim.owner, claim.problem);
      refused.set(id, target);
      return;
    }
    refused.delete(id);
    const connection = new QmpConnection({
      target,
      backoff,
      greetingTimeoutMs: options.greetingTimeoutMs,
      handler,
      newSessionId: options.newSessionId,
      readBudget,
    });
    connections.set(id, connection);
    telemetry.vmDiscovered(target.vm, describeAddress(target.address));
    connection.start();
  };
  const removeTarget = (id: string): void => {
    refused.delete(id);
    const connection = connections.get(id);
    if (connection === undefined) return;
    connections.delete(id);
    vmNames.release(connection.vm, describeAddress(connection.target.address));
    telemetry.vmRemoved(connection.vm, id);
    // Read what the VM wrote before its socket vanished; stop is still there for shutdown.
    retiring.add(connection);
    void connection.retire().then(() => retiring.delete(connection));
    readRefused(connection.vm);
  };
  /** The first source refused for `vm` is read, now that the name's owner let it go. */
  const readRefused = (vm: string): void => {
    const waiting = [...refused].find(([, target]) => target.vm === vm);
    if (waiting !== undefined) addTarget(...waiting);
  };
  const stopConnections = async (): Promise<void> => {
    await Promise.all([...connections.values(), ...retiring].map((c) => c.stop()));
    connections.clear();
  };

  for (const text of options.sockets) {
    const target = parseQmpTarget(text);
    // The config was validated, so every explicit target parses.
    if (!('problem' in target)) addTarget(`target:${text}`, target);
  }
  const { socketDir } = options;
  const watcher =
    socketDir === ''
      ? undefined
      : new SocketDirWatcher({
          dir: socketDir,
          intervalMs: options.rescanIntervalMs,
          onAdded: (path) =>
            addTarget(path, { vm: vmNameOfSocket(path), address: { kind: 'unix', path } }),
          onRemoved: (path) => removeTarget(path),
          onError: (error) => telemetry.watchFailed(socketDir, error),
        });
  try {
    await watcher?.start();
  } catch (error) {
    await stopConnections();
    throw error;
  }
  const libvirt = startLibvirtSource({
    targets: options.libvirt.targets,
    events: options.libvirt.events,
    vmName: options.libvirt.vmName,
    keepaliveIntervalMs: options.libvirt.keepaliveIntervalMs,
    replyTimeoutMs: options.greetingTimeoutMs,
    backoff,
    handler,
    vmNames,
    nameReleased: readRefused,
    telemetry,
    libvirtTelemetry: options.libvirtTelemetry,
    newSessionId: options.newSessionId,
  });
  const { libvirtTelemetry } = options;
  const leaving = new Set<Promise<void>>();
  const globWatchers = options.libvirt.globs.map(
    (glob) =>
      new SocketGlobWatcher({
        glob,
        intervalMs: options.libvirt.globIntervalMs,
        onAdded: (path) => {
          libvirtTelemetry.globSocketFound(glob.text, path);
          libvirt.add({ text: path, name: glob.name, sockets: [path] });
        },
        onRemoved: (path) => {
          libvirtTelemetry.globSocketGone(glob.text, path);
          const left = libvirt.remove(path);
          leaving.add(left);
          void left.finally(() => leaving.delete(left));
        },
        onError: (path, error) => libvirtTelemetry.globListFailed(glob.text, path, error),
      }),
  );
  await Promise.all(globWatchers.map((w) => w.start()));

  return {
    vms: () => [...[...connections.values()].map((c) => c.vm), ...libvirt.vms()],
    watcher: () => (watcher === undefined ? null : { dir: socketDir, running: watcher.running }),
    libvirtUnconnected: () => libvirt.unconnected(),
    libvirtGlobsUnlisted: () => globWatchers.filter((w) => !w.running).map((w) => w.pattern),
    stop: async () => {
      watcher?.stop();
      for (const w of globWatchers) w.stop();
      await stopConnections();
      await Promise.all([libvirt.stop(), ...leaving]);
    },
  };
}
