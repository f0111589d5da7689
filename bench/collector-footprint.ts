/**
 * Collector footprint: CPU and RSS of the collector as it ships (the single executable's
 * `collect`, the ExecStart of the .deb's unit, default options; BENCH_FOOTPRINT_LAUNCH=bundle or
 * source runs the bundle on Node.js or the clone's bin/vfio-telemetry.js instead, see
 * bench/shipped-cli.ts),
 * idle with no VM and idle with 1,000 connected VMs, side by side with floors: a bare Node process
 * doing nothing, and a bare Node process that only holds the same 1,000 sockets open (connected,
 * capabilities negotiated, nothing else).
 *
 * The VMs are a QMP server in this process: one unix socket per VM in the collector's socket
 * directory, each sending QEMU's greeting and answering `qmp_capabilities`, then silent. CPU is
 * the process's own utime + stime from /proc over the window (the machine is shared, so its load
 * does not count), RSS the largest VmRSS seen in the window (sampled every second), split into
 * anonymous memory and file-backed pages (mostly the node binary, shared with every Node process
 * on the host).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchSection } from './harness.ts';
import { benchBrokers, benchDir, loadText, openBenchAdmin, sleep } from './kafka-bench-support.ts';
import { cliLaunch, launchKindFromEnv, type CliLaunch } from './shipped-cli.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const VMS = Number(process.env['BENCH_FOOTPRINT_VMS'] ?? 1000);
/** Measurement window per row, seconds (at least 30: idle CPU is a few clock ticks a minute). */
const WINDOW_SECONDS = Number(process.env['BENCH_FOOTPRINT_SECONDS'] ?? 30);
/** Wait after a phase starts (connections, JIT, the first GCs) before its window opens. */
const SETTLE_SECONDS = 10;
/** Node flags before the script (bundle or source launches), e.g. to compare V8 heap settings. */
const NODE_FLAGS = (process.env['BENCH_FOOTPRINT_NODE_FLAGS'] ?? '').split(' ').filter(Boolean);
/** Issue 19 ("A light agent"); CPU as issue 9 set it. */
const TARGETS = {
  idle: { cpu: 0.5, rssMiB: 60 },
  vms: { cpu: 2, rssMiB: 70 },
};

const GREETING =
  '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 11}, "package": "bench"}, "capabilities": ["oob"]}}\r\n';
const CAPABILITIES = 'qmp_capabilities';
const RETURN = '{"return": {}}\r\n';

/** QEMU's side of `vms` monitors, up to the handshake; counts the negotiated connections. */
interface QmpServers {
  negotiated(): number;
  close(): Promise<void>;
}

async function startQmpServers(dir: string, vms: number): Promise<QmpServers> {
  const servers: Server[] = [];
  const open = new Set<Socket>();
  let negotiated = 0;
  for (let i = 0; i < vms; i++) {
    const server = createServer((socket) => {
      open.add(socket);
      let done = false;
      let pending = '';
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        if (done) return;
        pending += chunk.toString('latin1');
        if (!pending.includes(CAPABILITIES)) return;
        done = true;
        negotiated++;
        socket.write(RETURN);
      });
      socket.on('close', () => {
        open.delete(socket);
        if (done) negotiated--;
      });
      socket.write(GREETING);
    });
    servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(join(dir, `vm-${i}.qmp`), () => resolve());
    });
  }
  return {
    negotiated: () => negotiated,
    close: async () => {
      for (const socket of open) socket.destroy();
      await Promise.all(
        servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
      );
    },
  };
}

/**
 * The floor: plain `node` (no loader, no flags), connecting to every socket in the directory,
 * sending the collector's one command after the greeting, then holding the connections.
 */
const FLOOR_HOLDING_SOCKETS = `
import { readdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
const dir = process.argv[1];
for (const name of readdirSync(dir)) {
  if (!name.endsWith('.qmp')) continue;
  const socket = createConnection({ path: join(dir, name) });
  socket.on('error', () => {});
  socket.once('data', () => socket.write('{"execute":"qmp_capabilities"}\\r\\n'));
  socket.on('data', () => {});
}
`;
const FLOOR_IDLE = 'setInterval(() => {}, 1 << 30);';

interface Footprint {
  cpuPercent: number;
  rssMiB: number;
  anonMiB: number;
  fileMiB: number;
}

const KIB_PER_MIB = 1024;

function packageVersion(name: string): string {
  const file = join(ROOT, 'node_modules', name, 'package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

async function memory(pid: number): Promise<{ rss: number; anon: number; file: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rss: kib('VmRSS'), anon: kib('RssAnon'), file: kib('RssFile') };
}

async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime + stime, in clock ticks of 1/100 s.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU over the window and the largest RSS seen in it (sampled every second). */
async function measure(pid: number): Promise<Footprint> {
  const cpuBefore = await cpuSeconds(pid);
  const start = performance.now();
  let peak = await memory(pid);
  for (let s = 0; s < WINDOW_SECONDS; s++) {
    await sleep(1000);
    const now = await memory(pid);
    if (now.rss > peak.rss) peak = now;
  }
  const cpu = (await cpuSeconds(pid)) - cpuBefore;
  return {
    cpuPercent: (cpu / ((performance.now() - start) / 1000)) * 100,
    rssMiB: peak.rss / KIB_PER_MIB,
    anonMiB: peak.anon / KIB_PER_MIB,
    fileMiB: peak.file / KIB_PER_MIB,
  };
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited(child);
  clearTimeout(timer);
}

async function until(what: string, done: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = performance.now() + 120_000;
  while (!(await done())) {
    if (performance.now() > deadline) throw new Error(`footprint bench: timed out: ${what}`);
    await sleep(50);
  }
}

/** Starts the shipped CLI's `collect`; resolves with the process and its /metrics URL. */
async function startCollector(
  cli: CliLaunch,
  args: string[],
  stderr: string[],
): Promise<{ child: ChildProcess; url: string }> {
  const flags = cli.kind === 'executable' ? [] : NODE_FLAGS;
  const child = spawn(cli.command, [...flags, ...cli.prefix, 'collect', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n');
      if (line.length > 1) resolve((line[0] as string).trim());
    });
    child.once('exit', (code) =>
      reject(new Error(`the collector exited (${code}) before starting: ${stderr.join('')}`)),
    );
  });
  return { child, url };
}

async function kafkaUp(url: string): Promise<boolean> {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    return /^vfio_collector_kafka_up 1$/m.test(text);
  } catch {
    return false;
  }
}

interface Run {
  idle: Footprint;
  vms: Footprint;
  floorIdle: Footprint;
  floorVms: Footprint;
  connectSeconds: number;
  /** The collector's command line as the kernel has it (after the bin re-executed itself). */
  commandLine: string;
  load: { idle: string; vms: string; floorIdle: string; floorVms: string };
}

async function run(cli: CliLaunch, brokers: string[], topic: string): Promise<Run> {
  const sockets = benchDir('footprint-vms');
  const spool = benchDir('footprint-spool');
  const stderr: string[] = [];
  let collector: ChildProcess | undefined;
  let floor: ChildProcess | undefined;
  let servers: QmpServers | undefined;
  try {
    const started = await startCollector(
      cli,
      [
        '--brokers',
        brokers.join(','),
        '--topic',
        topic,
        '--socket-dir',
        sockets,
        '--spool-dir',
        spool,
        '--host',
        'bench-host',
        '--http-port',
        '0',
        '--log-level',
        'warn',
      ],
      stderr,
    );
    collector = started.child;
    const pid = collector.pid as number;
    await until('the collector connected to Kafka', () => kafkaUp(started.url));
    const commandLine = (await readFile(`/proc/${pid}/cmdline`, 'utf8'))
      .split('\0')
      .filter(Boolean)
      .map((arg) => arg.replace(ROOT, '').replace(sockets, 'DIR').replace(spool, 'SPOOL'))
      .slice(0, 5)
      .join(' ');
    await sleep(SETTLE_SECONDS * 1000);
    const idleLoad = loadText();
    const idle = await measure(pid);

    const connectStart = performance.now();
    servers = await startQmpServers(sockets, VMS);
    const s = servers;
    await until(`${VMS} VMs negotiated by the collector`, () => s.negotiated() === VMS);
    const connectSeconds = (performance.now() - connectStart) / 1000;
    await sleep(SETTLE_SECONDS * 1000);
    const vmsLoad = loadText();
    const vms = await measure(pid);
    await stopChild(collector);
    await until('the collector gone from the sockets', () => s.negotiated() === 0);

    floor = spawn(process.execPath, ['--input-type=module', '-e', FLOOR_HOLDING_SOCKETS, sockets], {
      stdio: 'ignore',
    });
    await until(`${VMS} VMs negotiated by the floor`, () => s.negotiated() === VMS);
    await sleep(SETTLE_SECONDS * 1000);
    const floorVmsLoad = loadText();
    const floorVms = await measure(floor.pid as number);
    await stopChild(floor);

    floor = spawn(process.execPath, ['-e', FLOOR_IDLE], { stdio: 'ignore' });
    await sleep(SETTLE_SECONDS * 1000);
    const floorIdleLoad = loadText();
    const floorIdle = await measure(floor.pid as number);
    return {
      idle,
      vms,
      floorIdle,
      floorVms,
      connectSeconds,
      commandLine,
      load: { idle: idleLoad, vms: vmsLoad, floorIdle: floorIdleLoad, floorVms: floorVmsLoad },
    };
  } finally {
    if (collector !== undefined) await stopChild(collector);
    if (floor !== undefined) await stopChild(floor);
    await servers?.close();
    rmSync(sockets, { recursive: true, force: true });
    rmSync(spool, { recursive: true, force: true });
  }
}

export async function runCollectorFootprint(): Promise<BenchSection> {
  const brokers = benchBrokers();
  const admin = openBenchAdmin(brokers);
  const topics = await admin.createTopics([{ prefix: 'footprint', partitions: 6 }]);
  try {
    const cli = await cliLaunch(launchKindFromEnv('BENCH_FOOTPRINT_LAUNCH'));
    const r = await run(cli, brokers, topics.names[0] as string);
    const cpu = (f: Footprint): string => `${f.cpuPercent.toFixed(2)}%`;
    const rss = (f: Footprint): string =>
      `${f.rssMiB.toFixed(1)} MiB (anon ${f.anonMiB.toFixed(1)}, file ${f.fileMiB.toFixed(1)})`;
    const over = (f: Footprint, floor: Footprint): string =>
      `+${(f.cpuPercent - floor.cpuPercent).toFixed(2)} pt, +${(f.rssMiB - floor.rssMiB).toFixed(1)} MiB`;
    const verdict = (f: Footprint, target: { cpu: number; rssMiB: number }): string => {
      const cpuOk = f.cpuPercent <= target.cpu;
      const rssOk = f.rssMiB <= target.rssMiB;
      return `≤ ${target.cpu}% and ≤ ${target.rssMiB} MiB: CPU ${cpuOk ? 'met' : 'NOT met'}, RSS ${rssOk ? 'met' : 'NOT met'}`;
    };
    const flags =
      cli.kind === 'executable' || NODE_FLAGS.length === 0 ? '' : ` with ${NODE_FLAGS.join(' ')}`;
    const launch = `${cli.label} collect${flags}`;
    return {
      title: 'Collector footprint, idle (process CPU and RSS, with floors)',
      columns: ['measurement', 'process CPU', 'RSS, largest in the window', 'vs floor', 'target'],
      rows: [
        [
          `collector idle, no VM (load ${r.load.idle})`,
          cpu(r.idle),
          rss(r.idle),
          over(r.idle, r.floorIdle),
          verdict(r.idle, TARGETS.idle),
        ],
        [
          `floor: bare \`node\`, an idle timer (load ${r.load.floorIdle})`,
          cpu(r.floorIdle),
          rss(r.floorIdle),
          '',
          '',
        ],
        [
          `collector, ${VMS.toLocaleString('en')} connected idle VMs (load ${r.load.vms})`,
          cpu(r.vms),
          rss(r.vms),
          over(r.vms, r.floorVms),
          verdict(r.vms, TARGETS.vms),
        ],
        [
          `floor: bare \`node\` holding the same ${VMS.toLocaleString('en')} sockets (load ${r.load.floorVms})`,
          cpu(r.floorVms),
          rss(r.floorVms),
          '',
          '',
        ],
      ],
      notes: [
        `Collector launched as ${launch} (running as \`${r.commandLine} ...\`) with the bench's Kafka, a fresh 6-partition topic, an empty socket directory and spool, \`--http-port 0\`, \`--log-level warn\`, every other option at its default (socket directory watched with fs.watch, safety listing every 30 s; spool fsync timer only while something is unsynced). Nothing scrapes /metrics during the windows.`,
        `Each window: ${WINDOW_SECONDS} s, opened ${SETTLE_SECONDS} s after its phase started (the collector connected to Kafka; all VMs negotiated). CPU: utime + stime of the process from /proc over the window, % of one core. RSS: largest VmRSS sampled every second, with RssAnon and RssFile (file-backed pages are mostly the node binary's, shared with every Node process on the host; the executable is a fresh copy of the build's, see bench/shipped-cli.ts, as how a binary came into the page cache changes how many of its pages a process maps).`,
        `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${cpus().length} vCPU ${cpus()[0]?.model ?? ''} (${release()}), shared with other engineers' runs (1-minute load average per row); Node.js ${process.version}; ${['@platformatic/kafka', 'prom-client', 'avsc', 'tsx'].map((p) => `${p} ${packageVersion(p)}`).join(', ')}.`,
        `VMs: a QMP server in the bench process, one unix socket per VM in the collector's socket directory, greeting + \`qmp_capabilities\` answered, then silent; all ${VMS.toLocaleString('en')} were picked up through fs.watch and negotiated in ${r.connectSeconds.toFixed(1)} s. The floor process connects to the same sockets after the collector has stopped, sends the same one command, and holds them.`,
      ],
    };
  } finally {
    await topics.drop();
    await admin.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const section = await runCollectorFootprint();
  process.stdout.write(JSON.stringify(section) + '\n');
  setImmediate(() => process.exit(0));
}
