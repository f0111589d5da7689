import { join } from 'node:path';
import {
  option,
  parseConfig,
  renderOptionsHelp,
  type ConfigSources,
} from '../shared/core/config-spec.ts';
import { DEFAULT_FLEET_CONFIG, type FleetConfig } from './core/fleet-config.ts';
import type { Speed } from './io/vm-player.ts';

const F = DEFAULT_FLEET_CONFIG;

const positive = (value: number): string | null =>
  value > 0 ? null : `must be a positive number, got ${value}`;
const ratio = { min: 0, max: 1 } as const;

/**
 * `vfio-telemetry simulate` options: flags and config-file keys (no environment variables).
 * `tmpDir` is the system's temporary directory, home of the default socket directory.
 */
export function simulatorConfigSpec(tmpDir: string) {
  return {
    dir: option({
      type: 'string',
      default: join(tmpDir, 'vfio-telemetry-simulator'),
      flag: 'dir',
      metavar: 'DIR',
      doc: 'directory of the unix sockets, one <vm>.qmp per VM',
      check: (dir) => (dir === '' ? 'must not be empty' : null),
    }),
    tcpPort: option({
      type: 'integer',
      optional: true,
      min: 1,
      max: 65535,
      flag: 'tcp-port',
      metavar: 'BASE',
      doc: 'also listen on 127.0.0.1, VM i on port BASE+i (a second monitor)',
    }),
    vms: option({
      type: 'integer',
      default: F.vms,
      min: 1,
      flag: 'vms',
      doc: 'number of VMs',
    }),
    devices: option({
      type: 'integer',
      default: F.devicesPerVm,
      min: 0,
      flag: 'devices',
      doc: 'VFIO devices per VM',
    }),
    rate: option({
      type: 'number',
      default: F.migrationsPerVmPerMinute,
      flag: 'rate',
      metavar: 'R',
      doc: 'migrations per VM per minute',
      check: positive,
    }),
    p2pRatio: option({
      type: 'number',
      default: F.p2pRatio,
      ...ratio,
      flag: 'p2p-ratio',
      metavar: 'F',
      doc: 'share of devices supporting P2P',
    }),
    precopyRatio: option({
      type: 'number',
      default: F.precopyRatio,
      ...ratio,
      flag: 'precopy-ratio',
      metavar: 'F',
      doc: 'share of devices supporting PRE_COPY',
    }),
    p2pMedianMs: option({
      type: 'number',
      default: F.p2pMedianMs,
      flag: 'p2p-median-ms',
      metavar: 'MS',
      doc: 'median pre-copy -> pre-copy-p2p time (lognormal)',
      check: positive,
    }),
    p2pP99Ms: option({
      type: 'number',
      default: F.p2pP99Ms,
      flag: 'p2p-p99-ms',
      metavar: 'MS',
      doc: 'its 99th percentile',
      check: positive,
    }),
    failureRate: option({
      type: 'number',
      default: F.failureRate,
      ...ratio,
      flag: 'failure-rate',
      metavar: 'F',
      doc: 'share of migrations failing (cancel in pre-copy, fail after stop, failed load)',
    }),
    prepareFailureRate: option({
      type: 'number',
      optional: true,
      ...ratio,
      flag: 'prepare-failure-rate',
      metavar: 'F',
      doc: 'share of PRE_COPY_P2P transitions failing (device reset) [default: the failure rate]',
    }),
    clockStepRate: option({
      type: 'number',
      default: F.clockStepsPerVmPerMinute,
      min: 0,
      flag: 'clock-step-rate',
      metavar: 'F',
      doc: 'wall-clock steps per VM per minute',
    }),
    clockStepMs: option({
      type: 'number',
      default: F.clockStepMs,
      min: 0,
      flag: 'clock-step-ms',
      metavar: 'MS',
      doc: 'size of a clock step, forward or backward',
    }),
    pretty: option({
      type: 'boolean',
      default: false,
      flag: 'pretty',
      doc: 'multi-line JSON like a pretty=on monitor',
    }),
    seed: option({
      type: 'integer',
      default: F.seed,
      min: 0,
      max: 0xffffffff,
      flag: 'seed',
      metavar: 'S',
      doc: 'same seed, same fleet and events',
    }),
    speed: option({
      type: 'string',
      default: '1',
      flag: 'speed',
      metavar: 'X|max',
      doc: 'time scale (1 = real time, 10 = ten times faster, max = as fast as clients read)',
      check: (text) =>
        speedOf(text) === null ? `must be a positive number or max, got "${text}"` : null,
    }),
    duration: option({
      type: 'number',
      optional: true,
      flag: 'duration',
      metavar: 'SECONDS',
      doc: 'stop after SECONDS of simulated time',
      check: positive,
    }),
    migrations: option({
      type: 'integer',
      optional: true,
      min: 0,
      flag: 'migrations',
      doc: 'stop after N migrations in the fleet',
    }),
    transcripts: option({
      type: 'string',
      optional: true,
      flag: 'transcripts',
      metavar: 'DIR',
      doc: 'write what each client read to DIR/<vm>.qmp',
      check: (dir) => (dir === '' ? 'must not be empty' : null),
    }),
    waitForClients: option({
      type: 'boolean',
      default: false,
      flag: 'wait-for-clients',
      doc: 'start only once every socket has a negotiated client',
    }),
    progressSeconds: option({
      type: 'number',
      default: 5,
      flag: 'progress-seconds',
      metavar: 'SECONDS',
      doc: 'interval of the progress log line',
      check: positive,
    }),
  } as const;
}

function speedOf(text: string): Speed | null {
  if (text === 'max') return 'max';
  const value = text.trim() === '' ? NaN : Number(text);
  return value > 0 && Number.isFinite(value) ? value : null;
}

export interface SimulateConfig {
  dir: string;
  tcpPort?: number;
  pretty: boolean;
  speed: Speed;
  durationSeconds?: number;
  migrations?: number;
  transcripts?: string;
  waitForClients: boolean;
  progressSeconds: number;
  fleet: FleetConfig;
  /** Not options: the simulator logs at info and closes its sockets within this deadline. */
  logLevel: 'info';
  shutdownTimeoutMs: number;
}

const SHUTDOWN_TIMEOUT_MS = 30_000;

/** Validates flags over the config file whole; throws one CONFIG_INVALID listing every problem. */
export function parseSimulateConfig(tmpDir: string, sources: ConfigSources): SimulateConfig {
  const c = parseConfig(simulatorConfigSpec(tmpDir), withSpeedAsText(sources), (c) => {
    const problems: string[] = [];
    if (c.p2pP99Ms < c.p2pMedianMs) problems.push('--p2p-p99-ms must be >= --p2p-median-ms');
    if (c.tcpPort !== undefined && c.tcpPort + c.vms - 1 > 65535) {
      problems.push(`--tcp-port ${c.tcpPort} leaves no room for ${c.vms} VMs below 65536`);
    }
    return problems;
  });
  return {
    dir: c.dir,
    ...(c.tcpPort === undefined ? {} : { tcpPort: c.tcpPort }),
    pretty: c.pretty,
    speed: speedOf(c.speed) ?? 1,
    ...(c.duration === undefined ? {} : { durationSeconds: c.duration }),
    ...(c.migrations === undefined ? {} : { migrations: c.migrations }),
    ...(c.transcripts === undefined ? {} : { transcripts: c.transcripts }),
    waitForClients: c.waitForClients,
    progressSeconds: c.progressSeconds,
    fleet: {
      seed: c.seed,
      vms: c.vms,
      devicesPerVm: c.devices,
      migrationsPerVmPerMinute: c.rate,
      p2pRatio: c.p2pRatio,
      precopyRatio: c.precopyRatio,
      p2pMedianMs: c.p2pMedianMs,
      p2pP99Ms: c.p2pP99Ms,
      failureRate: c.failureRate,
      prepareFailureRate: c.prepareFailureRate ?? c.failureRate,
      clockStepsPerVmPerMinute: c.clockStepRate,
      clockStepMs: c.clockStepMs,
    },
    logLevel: 'info',
    shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS,
  };
}

/** `speed: 10` in a config file is a number in YAML; the option is text because of `max`. */
function withSpeedAsText(sources: ConfigSources): ConfigSources {
  const file = sources.file;
  if (typeof file !== 'object' || file === null || !('speed' in file)) return sources;
  const { speed } = file;
  return typeof speed === 'number'
    ? { ...sources, file: { ...file, speed: String(speed) } }
    : sources;
}

export function simulateHelp(tmpDir: string): string {
  return `Usage: vfio-telemetry simulate [--config FILE] [options]

Plays a fleet of QEMU VMs with VFIO devices migrating: one QMP server per VM that greets,
negotiates and emits VFIO_MIGRATION (with pre-copy-p2p-prepare), MIGRATION, MIGRATION_PASS,
STOP, RESUME and SHUTDOWN events in QEMU's order and shape, failures included. One client per
socket, as QEMU; events while no client is negotiated are lost, as in QEMU. Settings come from
flags, then the config file (YAML or JSON; keys are the flag names in camelCase: tcpPort,
p2pMedianMs, ...), then the defaults.

Options:
${renderOptionsHelp(simulatorConfigSpec(tmpDir), [
  { flag: '--config FILE', text: 'YAML or JSON config file' },
  { flag: '-h, --help', text: 'show this help' },
])}

Without --duration or --migrations it runs until SIGINT/SIGTERM. Progress goes to stderr as
JSON log lines. Exit status: 0 when done, 1 on a runtime error, 2 on bad usage or configuration.
`;
}
