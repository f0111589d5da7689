import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { TelemetryError } from '../../shared/core/errors.ts';
import { nowMicros } from '../../shared/io/clock.ts';
import { createLogger, type Logger } from '../../shared/io/logger.ts';
import {
  DEFAULT_FLEET_CONFIG,
  fleetConfigProblems,
  type FleetConfig,
} from '../core/fleet-config.ts';
import { createFleet, type VmSpec } from '../core/fleet.ts';
import type { RunStatus } from '../core/qmp-monitor.ts';
import { countEpisode, emptyStats, type SimulatorStats } from '../core/simulator-stats.ts';
import { migrationsPerVm, VmSchedule } from '../core/vm-schedule.ts';
import { QmpMonitorServer, type RecordedCommand } from './qmp-monitor-server.ts';
import { playVm, type Speed } from './vm-player.ts';

export interface SimulatorOptions {
  fleet?: Partial<FleetConfig>;
  /** Directory for the unix sockets, `<vm>.qmp`; created when missing. */
  dir: string;
  /**
   * When set, VM i also listens on 127.0.0.1:(tcpPort + i), a second monitor of the same VM;
   * 0 gives every VM an ephemeral port (see `tcpAddresses`).
   */
  tcpPort?: number;
  pretty?: boolean;
  speed?: Speed;
  /** Stop after this much virtual time (only migrations that end within it are played). */
  durationSeconds?: number;
  /** Stop after this many migrations in the fleet. */
  maxMigrations?: number;
  /** Write each monitor's client bytes to `DIR/<vm>.qmp` (TCP monitors: `<vm>-tcp.qmp`). */
  transcriptsDir?: string;
  /** Start the schedule only once every monitor has a negotiated client, so nothing is dropped. */
  waitForClients?: boolean;
  /** Wall clock (µs since the epoch) for virtual time 0; default: when the schedule starts. */
  clockAnchorMicros?: number;
  logger?: Logger;
}

export interface Simulator {
  /** Unix socket paths, one per VM, in VM order. */
  sockets: string[];
  /** `127.0.0.1:port` per VM when TCP is on, else empty. */
  tcpAddresses: string[];
  vms: string[];
  stats(): SimulatorStats;
  /** Every input the VM's monitors received, in order. */
  commandsReceived(vm: string): readonly RecordedCommand[];
  /** Resolves when the run ended (limits reached or `close()`) and everything is closed. */
  done: Promise<void>;
  close(): Promise<void>;
}

const FINISHED_RUN_GRACE_MS = 60_000;

/** Starts QMP servers for a simulated fleet and plays its migrations on them. */
export async function startSimulator(options: SimulatorOptions): Promise<Simulator> {
  const fleetConfig: FleetConfig = { ...DEFAULT_FLEET_CONFIG, ...options.fleet };
  const problems = fleetConfigProblems(fleetConfig);
  if (problems.length > 0) {
    throw new TelemetryError('CONFIG_INVALID', `invalid simulator config: ${problems.join('; ')}`);
  }
  const log = options.logger ?? createLogger({ fields: { service: 'simulator' } });
  const speed = options.speed ?? 1;
  const pretty = options.pretty ?? false;
  const vms = createFleet(fleetConfig);
  const limits = migrationsPerVm(vms, fleetConfig, {
    ...(options.maxMigrations === undefined ? {} : { maxMigrations: options.maxMigrations }),
    ...(options.durationSeconds === undefined
      ? {}
      : { durationMicros: options.durationSeconds * 1_000_000 }),
  });

  await mkdir(options.dir, { recursive: true });
  if (options.transcriptsDir !== undefined)
    await mkdir(options.transcriptsDir, { recursive: true });

  const stats = emptyStats();
  const states = vms.map((vm): { status: RunStatus } => ({ status: vm.initialStatus }));
  const negotiatedMonitors = new Set<string>();
  let allNegotiated: () => void = () => {};
  const everyMonitorNegotiated = new Promise<void>((resolve) => (allNegotiated = resolve));
  const monitorCount = vms.length * (options.tcpPort === undefined ? 1 : 2);
  const monitorsByVm: QmpMonitorServer[][] = vms.map((vm, i) => {
    const monitor = (listen: { path: string } | { host: string; port: number }, suffix: string) =>
      new QmpMonitorServer({
        vm: vm.name,
        listen,
        pretty,
        ...(options.transcriptsDir === undefined
          ? {}
          : { transcriptPath: join(options.transcriptsDir, `${vm.name}${suffix}.qmp`) }),
        status: () => (states[i] as { status: RunStatus }).status,
        onNegotiated: () => {
          negotiatedMonitors.add(`${i}${suffix}`);
          if (negotiatedMonitors.size === monitorCount) allNegotiated();
        },
        log,
      });
    const list = [monitor({ path: join(options.dir, `${vm.name}.qmp`) }, '')];
    if (options.tcpPort !== undefined) {
      const port = options.tcpPort === 0 ? 0 : options.tcpPort + i;
      list.push(monitor({ host: '127.0.0.1', port }, '-tcp'));
    }
    return list;
  });
  const monitors = monitorsByVm.flat();

  const closeAll = (graceMs?: number): Promise<void> =>
    Promise.all(monitors.map((m) => m.close(graceMs))).then(() => undefined);
  const addressOf = new Map<QmpMonitorServer, string>();
  try {
    await Promise.all(monitors.map(async (m) => addressOf.set(m, await m.start())));
  } catch (error) {
    await closeAll();
    throw error;
  }

  const abort = new AbortController();
  const run = async (): Promise<void> => {
    if (options.waitForClients === true) {
      await Promise.race([everyMonitorNegotiated, aborted(abort.signal)]);
      if (abort.signal.aborted) return;
    }
    const startMs = performance.now();
    const anchorMicros = options.clockAnchorMicros ?? nowMicros();
    log.info('Simulation started.', { vms: vms.length, speed, seed: fleetConfig.seed });
    const players = vms.map((vm: VmSpec, i) =>
      playVm({
        schedule: new VmSchedule(vm, fleetConfig),
        migrations: limits === null ? null : (limits[i] as number),
        monitors: monitorsByVm[i] as QmpMonitorServer[],
        speed,
        pretty,
        anchorMicros,
        startMs,
        state: states[i] as { status: RunStatus },
        onEpisode: (episode) => countEpisode(stats, episode),
        signal: abort.signal,
      }),
    );
    if (speed !== 'max' && options.durationSeconds !== undefined) {
      // The run lasts its whole duration, not just until the last migration that fits in it.
      const realMs = (options.durationSeconds * 1000) / speed;
      players.push(sleep(realMs, undefined, { signal: abort.signal }).catch(() => undefined));
    }
    await Promise.all(players);
  };

  let closing: Promise<void> | null = null;
  const close = (graceMs?: number): Promise<void> => {
    closing ??= (async () => {
      abort.abort();
      await closeAll(graceMs);
    })();
    return closing;
  };
  // A run that reached its limits lets every client read all it was sent (`eventsSent` counts
  // those events); a slow reader under load can need far more than the default grace.
  const done = run().then(
    () => close(FINISHED_RUN_GRACE_MS),
    async (error: unknown) => {
      log.error('Simulation failed.', { error });
      await close();
      throw error;
    },
  );

  const addressesAt = (k: number): string[] =>
    monitorsByVm.flatMap((list) => {
      const m = list[k];
      return m === undefined ? [] : [addressOf.get(m) as string];
    });
  return {
    sockets: addressesAt(0),
    tcpAddresses: addressesAt(1),
    vms: vms.map((vm) => vm.name),
    stats: () => {
      let sent = 0;
      let dropped = 0;
      let connected = 0;
      for (const m of monitors) {
        sent += m.eventsSent;
        dropped += m.eventsDropped;
        if (m.connected) connected++;
      }
      return {
        ...stats,
        migrationsByOutcome: { ...stats.migrationsByOutcome },
        eventsSent: sent,
        eventsDropped: dropped,
        clientsConnected: connected,
      };
    },
    commandsReceived: (vm) => {
      const i = vms.findIndex((spec) => spec.name === vm);
      return i < 0 ? [] : (monitorsByVm[i] as QmpMonitorServer[]).flatMap((m) => m.commands());
    },
    done,
    close: async () => {
      await close();
      await done.catch(() => undefined);
    },
  };
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) =>
    signal.addEventListener('abort', () => resolve(), { once: true }),
  );
}
