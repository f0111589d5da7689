import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { TelemetryError } from '../shared/core/errors.ts';
import { DEFAULT_FLEET_CONFIG, type FleetConfig } from './core/fleet-config.ts';
import type { Speed } from './io/vm-player.ts';

/**
 * `vfio-telemetry simulate` options: flag, config-file key, kind, default and one line of doc
 * together. Flags override the `--config` file (JSON or YAML, keys as below); every bad value
 * is reported at once.
 */
type Kind = 'int' | 'port' | 'number' | 'ratio' | 'positive' | 'string' | 'boolean' | 'speed';

interface OptionSpec {
  flag: string;
  key: string;
  kind: Kind;
  /** As shown in --help; undefined: off unless given. */
  shown?: string;
  doc: string;
}

const F = DEFAULT_FLEET_CONFIG;

export const SIMULATE_OPTIONS: readonly OptionSpec[] = [
  {
    flag: 'dir',
    key: 'dir',
    kind: 'string',
    shown: '$TMPDIR/vfio-telemetry-simulator',
    doc: 'directory of the unix sockets, one <vm>.qmp per VM',
  },
  {
    flag: 'tcp-port',
    key: 'tcpPort',
    kind: 'port',
    doc: 'also listen on 127.0.0.1, VM i on port BASE+i (a second monitor)',
  },
  { flag: 'vms', key: 'vms', kind: 'int', shown: String(F.vms), doc: 'number of VMs' },
  {
    flag: 'devices',
    key: 'devices',
    kind: 'int',
    shown: String(F.devicesPerVm),
    doc: 'VFIO devices per VM',
  },
  {
    flag: 'rate',
    key: 'rate',
    kind: 'positive',
    shown: String(F.migrationsPerVmPerMinute),
    doc: 'migrations per VM per minute',
  },
  {
    flag: 'p2p-ratio',
    key: 'p2pRatio',
    kind: 'ratio',
    shown: String(F.p2pRatio),
    doc: 'share of devices supporting P2P',
  },
  {
    flag: 'precopy-ratio',
    key: 'precopyRatio',
    kind: 'ratio',
    shown: String(F.precopyRatio),
    doc: 'share of devices supporting PRE_COPY',
  },
  {
    flag: 'p2p-median-ms',
    key: 'p2pMedianMs',
    kind: 'positive',
    shown: String(F.p2pMedianMs),
    doc: 'median pre-copy -> pre-copy-p2p time (lognormal)',
  },
  {
    flag: 'p2p-p99-ms',
    key: 'p2pP99Ms',
    kind: 'positive',
    shown: String(F.p2pP99Ms),
    doc: 'its 99th percentile',
  },
  {
    flag: 'failure-rate',
    key: 'failureRate',
    kind: 'ratio',
    shown: String(F.failureRate),
    doc: 'share of migrations failing (cancel in pre-copy, fail after stop, failed load)',
  },
  {
    flag: 'prepare-failure-rate',
    key: 'prepareFailureRate',
    kind: 'ratio',
    shown: 'the failure rate',
    doc: 'share of PRE_COPY_P2P transitions failing (device reset)',
  },
  {
    flag: 'clock-step-rate',
    key: 'clockStepRate',
    kind: 'number',
    shown: String(F.clockStepsPerVmPerMinute),
    doc: 'wall-clock steps per VM per minute',
  },
  {
    flag: 'clock-step-ms',
    key: 'clockStepMs',
    kind: 'number',
    shown: String(F.clockStepMs),
    doc: 'size of a clock step, forward or backward',
  },
  {
    flag: 'pretty',
    key: 'pretty',
    kind: 'boolean',
    shown: 'off',
    doc: 'multi-line JSON like a pretty=on monitor',
  },
  {
    flag: 'seed',
    key: 'seed',
    kind: 'int',
    shown: String(F.seed),
    doc: 'same seed, same fleet and events',
  },
  {
    flag: 'speed',
    key: 'speed',
    kind: 'speed',
    shown: '1',
    doc: 'time scale (1 = real time, 10 = ten times faster, max = as fast as clients read)',
  },
  {
    flag: 'duration',
    key: 'duration',
    kind: 'positive',
    doc: 'stop after SECONDS of simulated time',
  },
  {
    flag: 'migrations',
    key: 'migrations',
    kind: 'int',
    doc: 'stop after N migrations in the fleet',
  },
  {
    flag: 'transcripts',
    key: 'transcripts',
    kind: 'string',
    doc: 'write what each client read to DIR/<vm>.qmp',
  },
  {
    flag: 'wait-for-clients',
    key: 'waitForClients',
    kind: 'boolean',
    shown: 'off',
    doc: 'start only once every socket has a negotiated client',
  },
  {
    flag: 'progress-seconds',
    key: 'progressSeconds',
    kind: 'positive',
    shown: '5',
    doc: 'interval of the progress log line',
  },
];

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
}

/** Parsed flags: raw values by config key, plus the config file to read, or 'help'. */
export interface SimulateArgs {
  values: Record<string, string | boolean>;
  configFile?: string;
}

export function parseSimulateArgs(args: readonly string[]): SimulateArgs | 'help' {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    config: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  };
  for (const spec of SIMULATE_OPTIONS) {
    options[spec.flag] = { type: spec.kind === 'boolean' ? 'boolean' : 'string' };
  }
  // Not strict, so that every unknown flag is reported, not only the first.
  const { tokens } = parseArgs({ args: [...args], options, strict: false, tokens: true });
  const problems: string[] = [];
  const values: Record<string, string | boolean> = {};
  let configFile: string | undefined;
  for (const token of tokens) {
    if (token.kind === 'positional') {
      problems.push(`unexpected argument "${token.value}"`);
      continue;
    }
    if (token.kind !== 'option') continue;
    if (token.name === 'help') return 'help';
    const spec = SIMULATE_OPTIONS.find((s) => s.flag === token.name);
    if (token.name !== 'config' && spec === undefined) {
      problems.push(`unknown option ${token.rawName}`);
      continue;
    }
    const isBoolean = spec?.kind === 'boolean';
    if (isBoolean && token.value !== undefined) {
      problems.push(`${token.rawName} takes no value`);
    } else if (!isBoolean && token.value === undefined) {
      problems.push(`${token.rawName} needs a value`);
    } else if (token.name === 'config') {
      configFile = token.value;
    } else if (spec !== undefined) {
      const result = convert(spec.kind, token.value ?? true);
      if (typeof result === 'object') {
        problems.push(`${token.rawName} ${result.problem}, got ${JSON.stringify(token.value)}`);
      }
      values[spec.key] = token.value ?? true;
    }
  }
  if (problems.length > 0) throw new TelemetryError('USAGE', problems.join('; '));
  return configFile === undefined ? { values } : { values, configFile };
}

/**
 * Merges file values under flag values and validates the result whole. `fileValues` comes from
 * the parsed `--config` file; `origin` names it in errors.
 */
export function resolveSimulateConfig(
  flags: Record<string, string | boolean>,
  fileValues: Record<string, unknown> = {},
  origin = 'config file',
): SimulateConfig {
  const problems: string[] = [];
  for (const key of Object.keys(fileValues)) {
    if (!SIMULATE_OPTIONS.some((s) => s.key === key))
      problems.push(`${origin}: unknown key "${key}"`);
  }
  const parsed: Record<string, number | string | boolean | undefined> = {};
  for (const spec of SIMULATE_OPTIONS) {
    const fromFlag = flags[spec.key];
    const raw: unknown = fromFlag ?? fileValues[spec.key];
    if (raw === undefined) continue;
    const where = fromFlag !== undefined ? `--${spec.flag}` : `${origin}: ${spec.key}`;
    const result = convert(spec.kind, raw);
    if (typeof result === 'object')
      problems.push(`${where} ${result.problem}, got ${JSON.stringify(raw)}`);
    else parsed[spec.key] = result;
  }
  const num = (key: string, fallback: number): number =>
    (parsed[key] as number | undefined) ?? fallback;
  const failureRate = num('failureRate', F.failureRate);
  const fleet: FleetConfig = {
    seed: num('seed', F.seed),
    vms: num('vms', F.vms),
    devicesPerVm: num('devices', F.devicesPerVm),
    migrationsPerVmPerMinute: num('rate', F.migrationsPerVmPerMinute),
    p2pRatio: num('p2pRatio', F.p2pRatio),
    precopyRatio: num('precopyRatio', F.precopyRatio),
    p2pMedianMs: num('p2pMedianMs', F.p2pMedianMs),
    p2pP99Ms: num('p2pP99Ms', F.p2pP99Ms),
    failureRate,
    prepareFailureRate: num('prepareFailureRate', failureRate),
    clockStepsPerVmPerMinute: num('clockStepRate', F.clockStepsPerVmPerMinute),
    clockStepMs: num('clockStepMs', F.clockStepMs),
  };
  if (fleet.vms < 1) problems.push('--vms must be at least 1');
  if (fleet.p2pP99Ms < fleet.p2pMedianMs) problems.push('--p2p-p99-ms must be >= --p2p-median-ms');
  if (fleet.seed > 0xffffffff) problems.push('--seed must be at most 4294967295');
  if (fleet.clockStepsPerVmPerMinute < 0) problems.push('--clock-step-rate must be >= 0');
  if (fleet.clockStepMs < 0) problems.push('--clock-step-ms must be >= 0');
  const tcpPort = parsed['tcpPort'] as number | undefined;
  if (tcpPort !== undefined && tcpPort + fleet.vms - 1 > 65535) {
    problems.push(`--tcp-port ${tcpPort} leaves no room for ${fleet.vms} VMs below 65536`);
  }
  if (problems.length > 0) throw new TelemetryError('USAGE', problems.join('; '));

  const config: SimulateConfig = {
    dir: (parsed['dir'] as string | undefined) ?? join(tmpdir(), 'vfio-telemetry-simulator'),
    pretty: parsed['pretty'] === true,
    speed: (parsed['speed'] as Speed | undefined) ?? 1,
    waitForClients: parsed['waitForClients'] === true,
    progressSeconds: num('progressSeconds', 5),
    fleet,
  };
  if (tcpPort !== undefined) config.tcpPort = tcpPort;
  const duration = parsed['duration'];
  if (typeof duration === 'number') config.durationSeconds = duration;
  const migrations = parsed['migrations'];
  if (typeof migrations === 'number') config.migrations = migrations;
  const transcripts = parsed['transcripts'];
  if (typeof transcripts === 'string') config.transcripts = transcripts;
  return config;
}

function convert(kind: Kind, raw: unknown): number | string | boolean | { problem: string } {
  if (kind === 'boolean')
    return typeof raw === 'boolean' ? raw : { problem: 'must be true or false' };
  const text = typeof raw === 'number' ? String(raw) : raw;
  if (typeof text !== 'string') return { problem: 'must be a string or number' };
  if (kind === 'string') return text !== '' ? text : { problem: 'must not be empty' };
  if (kind === 'speed' && text === 'max') return 'max';
  const value = text.trim() === '' ? NaN : Number(text);
  switch (kind) {
    case 'int':
      return Number.isInteger(value) && value >= 0
        ? value
        : { problem: 'must be a whole number >= 0' };
    case 'port':
      return Number.isInteger(value) && value >= 1 && value <= 65535
        ? value
        : { problem: 'must be a port 1..65535' };
    case 'ratio':
      return value >= 0 && value <= 1 ? value : { problem: 'must be a number in 0..1' };
    case 'speed':
      return value > 0 && Number.isFinite(value)
        ? value
        : { problem: 'must be a positive number or max' };
    case 'positive':
      return value > 0 && Number.isFinite(value) ? value : { problem: 'must be a positive number' };
    default:
      return Number.isFinite(value) ? value : { problem: 'must be a number' };
  }
}

export function simulateHelp(): string {
  const rows = SIMULATE_OPTIONS.map((s) => {
    const left = `--${s.flag}${s.kind === 'boolean' ? '' : ' ' + metavar(s)}`;
    const shown = s.shown === undefined ? '' : ` (default ${s.shown})`;
    return `  ${left.padEnd(30)} ${s.doc}${shown}`;
  });
  return `Usage: vfio-telemetry simulate [options]

Plays a fleet of QEMU VMs with VFIO devices migrating: one QMP server per VM that greets,
negotiates and emits VFIO_MIGRATION (with pre-copy-p2p-prepare), MIGRATION, MIGRATION_PASS,
STOP, RESUME and SHUTDOWN events in QEMU's order and shape, failures included. One client per
socket, as QEMU; events while no client is negotiated are lost, as in QEMU.

Options:
${rows.join('\n')}
  --config FILE                  JSON or YAML with the keys ${SIMULATE_OPTIONS.slice(0, 3)
    .map((s) => s.key)
    .join(', ')}, ...
                                 (camelCase flag names); flags override it
  -h, --help                     show this help

Without --duration or --migrations it runs until SIGINT/SIGTERM. Progress goes to stderr as
JSON log lines. Exit status: 0 when done, 1 on a runtime error, 2 on bad usage.
`;
}

const METAVARS: Readonly<Record<string, string>> = {
  dir: 'DIR',
  transcripts: 'DIR',
  duration: 'SECONDS',
  'progress-seconds': 'SECONDS',
  rate: 'R',
  'p2p-median-ms': 'MS',
  'p2p-p99-ms': 'MS',
  'clock-step-ms': 'MS',
  'tcp-port': 'BASE',
  seed: 'S',
};

function metavar(spec: OptionSpec): string {
  const named = METAVARS[spec.flag];
  if (named !== undefined) return named;
  if (spec.kind === 'speed') return 'X|max';
  return spec.kind === 'int' ? 'N' : 'F';
}
