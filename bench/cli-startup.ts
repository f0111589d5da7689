/**
 * Start-up to ready, for each command, from the single executable, from the bundle on the repo's
 * Node.js and from source (tsx), beside the floor `node -e 0` (bench/shipped-cli.ts builds the
 * artifacts). "Ready" is what a caller waits for: /readyz answering 200 for the services
 * (`collect`, `process`, `export`; the URL is their first stdout line), the first output line for
 * `--version` and `replay`, the "QMP servers listening" log line for `simulate`, the exit for
 * `audit` (a one-shot report) and for the floor.
 *
 * Wall clock from spawn, so the machine's load counts: the launches alternate within each round
 * (executable, bundle, source, floor, then the next command) and the table gives the median and
 * the range over the rounds. The services run against the bench's broker (KAFKA_BROKERS), each
 * start on fresh topics' names of this run and a fresh group, spool and state directory.
 *
 *   KAFKA_BROKERS=... node --import tsx bench/cli-startup.ts    (BENCH_STARTUP_ROUNDS, default 5)
 */
import { spawn } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchSection } from './harness.ts';
import { benchBrokers, benchDir, loadText, openBenchAdmin, sleep } from './kafka-bench-support.ts';
import { cliLaunch, type CliLaunch, type CliLaunchKind } from './shipped-cli.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ROUNDS = Number(process.env['BENCH_STARTUP_ROUNDS'] ?? 5);
const LAUNCHES: CliLaunchKind[] = ['executable', 'bundle', 'source'];
/** Longest a start may take before the bench gives up on it (a group join can take seconds). */
const DEADLINE_MS = 120_000;

type Ready =
  | { kind: 'first-line' }
  | { kind: 'readyz' }
  | { kind: 'exit' }
  | { kind: 'stderr'; pattern: RegExp };

interface Topics {
  events: string;
  transitions: string;
  state: string;
  deadLetter: string;
}

interface Command {
  name: string;
  ready: Ready;
  readyText: string;
  /** Arguments for one start; `dir` is a fresh directory of that start. */
  args(topics: Topics, dir: string, unique: string): string[];
}

const FIXTURES = join(ROOT, 'test/fixtures/qmp/vfio');

const COMMANDS: Command[] = [
  {
    name: '--version',
    ready: { kind: 'first-line' },
    readyText: 'first line',
    args: () => ['--version'],
  },
  {
    name: 'replay',
    ready: { kind: 'first-line' },
    readyText: 'first line',
    args: () => [
      'replay',
      ...readdirSync(FIXTURES)
        .sort()
        .map((f) => join(FIXTURES, f)),
    ],
  },
  {
    name: 'simulate',
    ready: { kind: 'stderr', pattern: /QMP servers listening/ },
    readyText: 'its "QMP servers listening" log line',
    args: (_t, dir) => ['simulate', '--dir', dir, '--vms', '10'],
  },
  {
    name: 'collect',
    ready: { kind: 'readyz' },
    readyText: '/readyz 200',
    args: (t, dir) => [
      'collect',
      '--topic',
      t.events,
      '--socket-dir',
      dir,
      '--spool-dir',
      join(dir, 'spool'),
      '--http-port',
      '0',
      '--log-level',
      'warn',
    ],
  },
  {
    name: 'process',
    ready: { kind: 'readyz' },
    readyText: '/readyz 200',
    args: (t, dir, unique) => [
      'process',
      '--events-topic',
      t.events,
      '--transitions-topic',
      t.transitions,
      '--state-topic',
      t.state,
      '--dead-letter-topic',
      t.deadLetter,
      '--group-id',
      `startup-${unique}`,
      '--state-dir',
      dir,
      '--http-port',
      '0',
      '--log-level',
      'warn',
    ],
  },
  {
    name: 'export',
    ready: { kind: 'readyz' },
    readyText: '/readyz 200',
    args: (t, _dir, unique) => [
      'export',
      '--topic',
      t.transitions,
      '--group-id',
      `startup-${unique}`,
      '--http-port',
      '0',
      '--log-level',
      'warn',
    ],
  },
  {
    name: 'audit',
    ready: { kind: 'exit' },
    readyText: 'exit (report written)',
    args: (t) => [
      'audit',
      '--events-topic',
      t.events,
      '--transitions-topic',
      t.transitions,
      '--format',
      'json',
    ],
  },
];

async function readyzOk(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/readyz`);
    await response.arrayBuffer();
    return response.status === 200;
  } catch {
    return false;
  }
}

/** Spawns `command args`, resolves with the milliseconds to `ready`, then stops it. */
async function timeToReady(command: string, args: string[], ready: Ready): Promise<number> {
  const started = performance.now();
  const child = spawn(command, args, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KAFKA_BROKERS: benchBrokers().join(',') },
  });
  let stdout = '';
  let stderr = '';
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code) => {
      exitCode = code;
      resolve();
    }),
  );
  const firstLine = new Promise<string>((resolve) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('\n')) resolve(stdout.slice(0, stdout.indexOf('\n')).trim());
    });
  });
  const stderrMatch = new Promise<void>((resolve) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (ready.kind === 'stderr' && ready.pattern.test(stderr)) resolve();
    });
  });
  const failed = (): Error =>
    new Error(`${args.join(' ')} exited (${exitCode}) before ready: ${stderr.slice(-1500)}`);
  try {
    if (ready.kind === 'exit') {
      await exited;
      if (exitCode !== 0) throw failed();
      return performance.now() - started;
    }
    if (ready.kind === 'first-line') {
      await Promise.race([firstLine, exited.then(() => firstLine)]);
      return performance.now() - started;
    }
    if (ready.kind === 'stderr') {
      await Promise.race([stderrMatch, exited.then(() => Promise.reject(failed()))]);
      return performance.now() - started;
    }
    const url = await Promise.race([firstLine, exited.then(() => Promise.reject(failed()))]);
    for (;;) {
      if (await readyzOk(url)) return performance.now() - started;
      if (exitCode !== undefined) throw failed();
      if (performance.now() - started > DEADLINE_MS) throw new Error(`${args[0]}: not ready`);
      await sleep(10);
    }
  } finally {
    if (exitCode === undefined) {
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(kill);
    }
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

export async function runCliStartup(): Promise<BenchSection> {
  const brokers = benchBrokers();
  const admin = openBenchAdmin(brokers);
  const created = await admin.createTopics([
    { prefix: 'startup-events', partitions: 6, brokerTime: true },
    { prefix: 'startup-transitions', partitions: 6 },
    { prefix: 'startup-state', partitions: 6, compact: true },
    { prefix: 'startup-dead-letter', partitions: 1 },
  ]);
  const [events, transitions, state, deadLetter] = created.names as [
    string,
    string,
    string,
    string,
  ];
  const topics: Topics = { events, transitions, state, deadLetter };
  const launches: CliLaunch[] = [];
  for (const kind of LAUNCHES) launches.push(await cliLaunch(kind));
  const times = new Map<string, number[]>();
  const add = (key: string, ms: number): void => {
    times.set(key, [...(times.get(key) ?? []), ms]);
  };
  const loads: string[] = [];
  let unique = 0;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      loads.push(loadText());
      add('floor', await timeToReady(process.execPath, ['-e', '0'], { kind: 'exit' }));
      for (const command of COMMANDS) {
        for (const launch of launches) {
          const dir = benchDir('startup');
          try {
            const args = command.args(topics, dir, `${process.pid}-${unique++}`);
            add(
              `${command.name}/${launch.kind}`,
              await timeToReady(launch.command, [...launch.prefix, ...args], command.ready),
            );
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        }
      }
    }
  } finally {
    await created.drop();
    await admin.close();
  }
  const floor = median(times.get('floor') ?? [0]);
  const cell = (key: string): string => {
    const xs = times.get(key) ?? [];
    const m = median(xs);
    return `${Math.round(m)} ms (${Math.round(Math.min(...xs))}–${Math.round(Math.max(...xs))}), ${(m / floor).toFixed(1)}x`;
  };
  return {
    title: 'Start-up to ready, per command (wall clock, median of rounds, vs `node -e 0`)',
    columns: ['command', 'ready when', ...launches.map((l) => l.label)],
    rows: [
      ...COMMANDS.map((c) => [
        `\`${c.name}\``,
        c.readyText,
        ...launches.map((l) => cell(`${c.name}/${l.kind}`)),
      ]),
      ['floor: `node -e 0`', 'exit', cell('floor'), '', ''],
    ],
    notes: [
      `${ROUNDS} rounds; in each the floor, then every command from the executable, the bundle and the source in turn (alternating, so all saw the same load); 1-minute load average at the rounds' starts: ${loads.join(', ')}. Ratios are to the floor's median.`,
      `Services against the bench's broker with fresh names (topics of this run, a new group per start, fresh spool, state and socket directories); \`replay\` reads the ${readdirSync(FIXTURES).length} transcripts of test/fixtures/qmp/vfio; \`simulate\` 10 VMs; \`audit\` the run's (empty) topics.`,
      `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${cpus().length} vCPU ${cpus()[0]?.model ?? ''} (${release()}), Node.js ${process.version}.`,
    ],
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const section = await runCliStartup();
  process.stdout.write(JSON.stringify(section) + '\n');
  setImmediate(() => process.exit(0));
}
