/**
 * `npm run bench`: runs each benchmark in its own process (pinned to one core where the figure
 * is "on one core"), prints the tables, and rewrites BENCHMARKS.md with them, the machine, the
 * date and the versions. `npm run bench -- --only core` runs one entry; `--no-write` only prints.
 * Benchmarks are never run as tests: their figures depend on the machine's load.
 */
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { BenchSection } from './harness.ts';

interface Entry {
  name: string;
  file: string;
  /** Pin to one core (taskset -c 0) for one-core figures. */
  pinned: boolean;
  /** Needs a Kafka broker: KAFKA_BROKERS, or a local one this orchestrator starts and stops. */
  kafka: boolean;
}

const ENTRIES: Entry[] = [
  { name: 'core', file: 'bench/core-throughput.ts', pinned: true, kafka: false },
  { name: 'collector', file: 'bench/collector-throughput.ts', pinned: false, kafka: true },
  { name: 'processor', file: 'bench/processor-throughput.ts', pinned: false, kafka: true },
  { name: 'end-to-end', file: 'bench/pipeline-end-to-end.ts', pinned: false, kafka: true },
];

/** State directory of the broker started for a bench run (wiped first: every run starts empty). */
const BENCH_KAFKA_DIR = '.cache/bench-kafka';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PACKAGES = ['avsc', 'kafkajs', 'prom-client', 'rxjs', 'tsx'];

async function runEntry(entry: Entry): Promise<BenchSection> {
  const node = [process.execPath, '--import', 'tsx', entry.file];
  const [command, ...args] = entry.pinned ? ['taskset', '-c', '0', ...node] : node;
  const { stdout } = await promisify(execFile)(command as string, args, {
    cwd: ROOT,
    maxBuffer: 16 * 1024 * 1024,
    env: process.env,
  });
  const last = stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last) as BenchSection;
}

function renderSection(section: BenchSection): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [
    `### ${section.title}`,
    '',
    line(section.columns),
    line(section.columns.map(() => '---')),
    ...section.rows.map(line),
    '',
    ...section.notes.map((n) => `- ${n}`),
    '',
  ].join('\n');
}

function environment(): string {
  const version = (name: string): string =>
    (
      JSON.parse(readFileSync(`${ROOT}node_modules/${name}/package.json`, 'utf8')) as {
        version: string;
      }
    ).version;
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return [
    `- Date: ${new Date().toISOString().slice(0, 10)}`,
    `- Machine: ${cpus().length} vCPU ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, ${process.platform} ${process.arch}`,
    `- Node.js ${process.version}; ${PACKAGES.map((p) => `${p} ${version(p)}`).join(', ')}`,
  ].join('\n');
}

/** The Kafka release start.sh runs, from the jars fetch.sh cached (e.g. `kafka 4.1.1`). */
function kafkaVersion(): string {
  const fetch = readFileSync(`${ROOT}infra/kafka/fetch.sh`, 'utf8');
  const version = /KAFKA_VERSION:-([0-9.]+)/.exec(fetch)?.[1];
  return version === undefined ? 'Kafka' : `Kafka ${version}`;
}

/** Replaces the text between a section's markers, or appends the section. */
function upsert(document: string, name: string, body: string): string {
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  const block = `${start}\n${body}${end}`;
  const i = document.indexOf(start);
  const j = document.indexOf(end);
  if (i !== -1 && j > i) return document.slice(0, i) + block + document.slice(j + end.length);
  return `${document.trimEnd()}\n\n${block}\n`;
}

async function runScript(script: string, args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)('bash', [script, ...args], {
    cwd: ROOT,
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout.trim().split('\n').at(-1) ?? '';
}

/**
 * Starts a single-node broker with infra/kafka/start.sh in BENCH_KAFKA_DIR and returns a function
 * that stops it by its PID (stop.sh). A broker left there by an interrupted run is stopped first.
 */
async function startBenchBroker(): Promise<{ address: string; stop: () => Promise<void> }> {
  const dir = ['--dir', `${ROOT}${BENCH_KAFKA_DIR}`];
  await runScript('infra/kafka/stop.sh', dir);
  rmSync(`${ROOT}${BENCH_KAFKA_DIR}`, { recursive: true, force: true });
  process.stderr.write(`bench: starting a local Kafka broker in ${BENCH_KAFKA_DIR}...\n`);
  const address = await runScript('infra/kafka/start.sh', dir);
  return { address, stop: () => runScript('infra/kafka/stop.sh', dir).then(() => undefined) };
}

async function main(argv: string[]): Promise<void> {
  const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : undefined;
  const write = !argv.includes('--no-write');
  const entries = ENTRIES.filter((e) => only === undefined || e.name === only);
  if (entries.length === 0)
    throw new Error(`no benchmark named "${only}"; have: ${ENTRIES.map((e) => e.name).join(', ')}`);
  let document = readFileSync(`${ROOT}BENCHMARKS.md`, 'utf8');
  let broker: Awaited<ReturnType<typeof startBenchBroker>> | undefined;
  const ownBroker = entries.some((e) => e.kafka) && (process.env['KAFKA_BROKERS'] ?? '') === '';
  const kafkaNote = ownBroker
    ? `- Kafka: single-node broker started by \`infra/kafka/start.sh\` on the same machine (${kafkaVersion()}, heap ${process.env['KAFKA_HEAP_OPTS'] ?? '-Xms256m -Xmx768m'}), started after the one-core entries so that its JVM does not share their core while warming up`
    : `- Kafka: \`KAFKA_BROKERS\`=${process.env['KAFKA_BROKERS'] ?? '(unset)'}`;
  try {
    document = upsert(
      document,
      'environment',
      `${environment()}\n${entries.some((e) => e.kafka) ? `${kafkaNote}\n` : ''}`,
    );
    for (const entry of entries) {
      if (entry.kafka && ownBroker && broker === undefined) {
        broker = await startBenchBroker();
        process.env['KAFKA_BROKERS'] = broker.address;
      }
      process.stderr.write(`bench: running ${entry.name}...\n`);
      const section = await runEntry(entry);
      const text = renderSection(section);
      process.stdout.write(text + '\n');
      document = upsert(document, entry.name, text);
    }
  } finally {
    await broker?.stop();
  }
  if (write) writeFileSync(`${ROOT}BENCHMARKS.md`, document);
}

await main(process.argv.slice(2));
