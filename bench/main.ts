/**
 * `npm run bench`: runs each benchmark in its own process (pinned to one core where the figure
 * is "on one core"), prints the tables, and rewrites BENCHMARKS.md with them, the machine, the
 * date and the versions. `npm run bench -- --only core` runs one entry; `--no-write` only prints.
 * Benchmarks are never run as tests: their figures depend on the machine's load.
 */
import '../bin/require-node.js';
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
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
  /** Runs on a three-node cluster this orchestrator starts (`infra/kafka/start.sh --nodes 3`). */
  cluster?: boolean;
  /** Also gets a secured broker (`start.sh --secure`) beside the plaintext one. */
  secure?: boolean;
}

const ENTRIES: Entry[] = [
  { name: 'core', file: 'bench/core-throughput.ts', pinned: true, kafka: false },
  { name: 'exporter', file: 'bench/exporter-exemplars.ts', pinned: true, kafka: false },
  { name: 'exporter-otlp', file: 'bench/exporter-otlp.ts', pinned: true, kafka: false },
  { name: 'collector', file: 'bench/collector-throughput.ts', pinned: false, kafka: true },
  {
    name: 'collector-footprint',
    file: 'bench/collector-footprint.ts',
    pinned: false,
    kafka: true,
  },
  { name: 'libvirt', file: 'bench/libvirt-throughput.ts', pinned: false, kafka: true },
  { name: 'startup', file: 'bench/cli-startup.ts', pinned: false, kafka: true },
  { name: 'processor', file: 'bench/processor-throughput.ts', pinned: false, kafka: true },
  { name: 'end-to-end', file: 'bench/pipeline-end-to-end.ts', pinned: false, kafka: true },
  {
    name: 'kafka-security',
    file: 'bench/kafka-security.ts',
    pinned: false,
    kafka: true,
    secure: true,
  },
  {
    name: 'end-to-end-cluster',
    file: 'bench/pipeline-end-to-end.ts',
    pinned: false,
    kafka: true,
    cluster: true,
  },
];

/** State directory of the broker started for a bench run (wiped first: every run starts empty). */
const BENCH_KAFKA_DIR = '.cache/bench-kafka';
/** The same for the three-node cluster of the `-cluster` entries. */
const BENCH_CLUSTER_DIR = '.cache/bench-kafka-cluster';
/** The secured broker of the `kafka-security` entry (`start.sh --secure`). */
const BENCH_SECURE_DIR = '.cache/bench-kafka-secure';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PACKAGES = ['@platformatic/kafka', 'avsc', 'prom-client', 'rxjs', 'tsx'];

async function runEntry(entry: Entry, env: NodeJS.ProcessEnv): Promise<BenchSection> {
  const node = [process.execPath, '--import', 'tsx', entry.file];
  const [command, ...args] = entry.pinned ? ['taskset', '-c', '0', ...node] : node;
  const { stdout } = await promisify(execFile)(command as string, args, {
    cwd: ROOT,
    maxBuffer: 16 * 1024 * 1024,
    env,
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
  // os.cpus() reports 0 MHz in this VM; /proc/cpuinfo has what the guest sees.
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const field = (name: string): string =>
    new RegExp(`^${name}\\s*: (.*)$`, 'm').exec(cpuinfo)?.[1]?.trim() ?? '?';
  const cpuText = `${cpu} (family ${field('cpu family')} model ${field('model')}, ${Math.round(Number(field('cpu MHz')))} MHz, cache ${field('cache size')})`;
  const pom = readFileSync(`${ROOT}bench/kafka-streams/pom.xml`, 'utf8');
  const pomVersion = (name: string): string =>
    new RegExp(`<${name}>([^<]+)</${name}>`).exec(pom)?.[1] ?? '?';
  return [
    `- Date: ${new Date().toISOString().replace('T', ' ').slice(0, 16)} UTC`,
    `- Machine: ${cpus().length} vCPU ${cpuText}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, ${process.platform} ${process.arch} (kernel ${release()}); shared with other engineers' test runs (load average per run in the tables)`,
    `- Node.js ${process.version}; ${PACKAGES.map((p) => `${p} ${version(p)}`).join(', ')}`,
    `- Kafka Streams reference: kafka-streams ${pomVersion('kafka.version')}, Avro ${pomVersion('avro.version')}, ${javaVersion()}`,
  ].join('\n');
}

function javaVersion(): string {
  const java =
    process.env['JAVA_HOME'] === undefined ? 'java' : `${process.env['JAVA_HOME']}/bin/java`;
  // `java -version` writes to stderr.
  const result = spawnSync(java, ['-version'], { encoding: 'utf8' });
  return `${result.stderr}${result.stdout}`.split('\n')[0]?.trim() || 'Java (version unknown)';
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
 * Starts a single-node broker (or, with `nodes` 3, a three-node cluster) with
 * infra/kafka/start.sh in `dir` and returns a function that stops it by its PIDs (stop.sh).
 * Whatever an interrupted run left there is stopped first.
 */
async function startBenchKafka(
  dir: string,
  nodes: 1 | 3,
  secure = false,
): Promise<{ address: string; stop: () => Promise<void> }> {
  const args = ['--dir', `${ROOT}${dir}`];
  await runScript('infra/kafka/stop.sh', args);
  rmSync(`${ROOT}${dir}`, { recursive: true, force: true });
  process.stderr.write(
    `bench: starting ${nodes === 1 ? 'a local Kafka broker' : 'a three-node Kafka cluster'}${secure ? ' (secured)' : ''} in ${dir}...\n`,
  );
  const address = await runScript('infra/kafka/start.sh', [
    ...(nodes === 1 ? [] : ['--nodes', '3']),
    ...(secure ? ['--secure'] : []),
    ...args,
  ]);
  return { address, stop: () => runScript('infra/kafka/stop.sh', args).then(() => undefined) };
}

/** Whether infra/kafka/start.sh can start a cluster (`--nodes N`). */
function clusterSupported(): boolean {
  return /--nodes/.test(readFileSync(`${ROOT}infra/kafka/start.sh`, 'utf8'));
}

async function main(argv: string[]): Promise<void> {
  const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : undefined;
  const write = !argv.includes('--no-write');
  const entries = ENTRIES.filter((e) => only === undefined || e.name === only);
  if (entries.length === 0)
    throw new Error(`no benchmark named "${only}"; have: ${ENTRIES.map((e) => e.name).join(', ')}`);
  let document = readFileSync(`${ROOT}BENCHMARKS.md`, 'utf8');
  let broker: Awaited<ReturnType<typeof startBenchKafka>> | undefined;
  const given = process.env['KAFKA_BROKERS'] ?? '';
  const ownBroker = entries.some((e) => e.kafka && e.cluster !== true) && given === '';
  const heap = process.env['KAFKA_HEAP_OPTS'] ?? '-Xms256m -Xmx768m';
  const kafkaNote = ownBroker
    ? `- Kafka: ${kafkaVersion()} started by \`infra/kafka/start.sh\` on the same machine (single node, heap ${heap}; the cluster entry: \`start.sh --nodes 3\`, three JVMs with the same heap), started after the one-core entries so that its JVM does not share their core while warming up`
    : `- Kafka: \`KAFKA_BROKERS\`=${given === '' ? '(unset)' : given}`;
  try {
    document = upsert(
      document,
      'environment',
      `${environment()}\n${entries.some((e) => e.kafka) ? `${kafkaNote}\n` : ''}`,
    );
    for (const entry of entries) {
      const env: NodeJS.ProcessEnv = { ...process.env };
      let cluster: Awaited<ReturnType<typeof startBenchKafka>> | undefined;
      let secured: Awaited<ReturnType<typeof startBenchKafka>> | undefined;
      if (entry.cluster === true) {
        if (!clusterSupported()) {
          process.stderr.write(
            `bench: ${entry.name} skipped: infra/kafka/start.sh has no --nodes\n`,
          );
          continue;
        }
        // One Kafka at a time on these 2 cores: the single broker goes before the cluster starts.
        await broker?.stop();
        broker = undefined;
        cluster = await startBenchKafka(BENCH_CLUSTER_DIR, 3);
        env['KAFKA_BROKERS'] = cluster.address;
        env['BENCH_KAFKA_NODES'] = '3';
      } else if (entry.kafka) {
        if (ownBroker && broker === undefined) broker = await startBenchKafka(BENCH_KAFKA_DIR, 1);
        env['KAFKA_BROKERS'] = broker?.address ?? given;
        if (entry.secure === true) {
          secured = await startBenchKafka(BENCH_SECURE_DIR, 1, true);
          env['BENCH_SECURE_KAFKA_DIR'] = `${ROOT}${BENCH_SECURE_DIR}`;
        }
      }
      process.stderr.write(
        `bench: running ${entry.name} (loadavg ${loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')})...\n`,
      );
      try {
        const section = await runEntry(entry, env);
        const text = renderSection(section);
        process.stdout.write(text + '\n');
        document = upsert(document, entry.name, text);
      } finally {
        await cluster?.stop();
        await secured?.stop();
      }
    }
  } finally {
    await broker?.stop();
  }
  if (write) writeFileSync(`${ROOT}BENCHMARKS.md`, document);
}

await main(process.argv.slice(2));
