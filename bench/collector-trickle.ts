/**
 * Collector CPU per event at a trickle: one collector process holding `VMS` connected VMs
 * (default 1,000) that emit `RATE` events/s in total (default 100), against the same process
 * holding the same VMs with no event. CPU is the process's utime + stime from /proc, so the
 * machine's load (shared with other runs) does not count; the per-event figure is
 * (CPU with events − CPU without) / events. Run on its own (`node --import tsx
 * bench/collector-trickle.ts`, KAFKA_BROKERS set) or from bench/collector-throughput.ts.
 *
 * On its own, BENCH_TRICKLE_LAUNCH=executable (or bundle, source) runs the CLI's `collect` as it
 * ships (bench/shipped-cli.ts) instead of the collector in a bench stage process, and
 * BENCH_TRICKLE_STEADY_AFTER=S measures a second window once the trickle has run S seconds: the
 * first window opens 3 s into the trickle, while much of the per-event code is not optimised yet;
 * a fleet agent runs for weeks. BENCH_TRICKLE_COMMAND=PATH runs that prebuilt executable instead
 * (no build), so that two builds can alternate in one period.
 */
import { rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import {
  benchDir,
  sampleProcess,
  sleep,
  spawnStage,
  type ProcSample,
} from './kafka-bench-support.ts';
import { fleetEvent, qmpLine, vmName } from './fleet-events.ts';
import { startQmpFeeder } from './qmp-feeder.ts';
import { spawn } from 'node:child_process';
import type { CliLaunch } from './shipped-cli.ts';

/** The CLI's `collect` as a bench stage: ready when /readyz answers 200. */
function spawnCli(
  cli: CliLaunch,
  flags: Record<string, string>,
): { pid: number; ready: Promise<void>; stop(): Promise<void> } {
  const args = Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v]);
  const child = spawn(cli.command, [...cli.prefix, 'collect', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = (async () => {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')).trim());
      });
      void exited.then(() => reject(new Error('collect exited before it printed its URL')));
    });
    for (;;) {
      const ok = await fetch(`${url}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) return;
      await sleep(100);
    }
  })();
  return {
    pid: child.pid as number,
    ready,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * The floor: plain `node` (no loader) that connects to every socket in the directory, sends the
 * collector's one command after the greeting, and JSON.parses every line it reads after that.
 */
const FLOOR = `
import { readdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
const dir = process.argv[1];
let parsed = 0;
process.on('message', () => {
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.qmp')) continue;
    const socket = createConnection({ path: join(dir, name) });
    socket.on('error', () => {});
    socket.once('data', () => socket.write('{"execute":"qmp_capabilities"}\\r\\n'));
    let tail = '';
    socket.on('data', (chunk) => {
      const lines = (tail + chunk.toString('utf8')).split('\\n');
      tail = lines.pop();
      for (const line of lines) if (line.trim() !== '') { JSON.parse(line); parsed++; }
    });
  }
});
process.on('disconnect', () => process.exit(0));
`;

function spawnFloor(dir: string): {
  pid: number;
  ready: Promise<void>;
  connect(): void;
  stop(): Promise<void>;
} {
  const child = spawn(process.execPath, ['--input-type=module', '-e', FLOOR, dir], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    pid: child.pid as number,
    ready: Promise.resolve(),
    connect: () => child.send('connect'),
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface Trickle {
  vms: number;
  rate: number;
  seconds: number;
  /** % of one core with the VMs connected and silent. */
  silentCpu: number;
  /** % of one core at `rate` events/s. */
  loadedCpu: number;
  events: number;
  /** (loaded − silent) CPU seconds per event, µs. */
  perEventMicros: number;
  /** All the loaded CPU over the events, µs (what a host pays per event, idle cost included). */
  perEventTotalMicros: number;
  rssBytes: number;
  userMicrosPerEvent: number;
  systemMicrosPerEvent: number;
  /** The same figures over a second window, `steadyAfter` s into the trickle (if asked). */
  steady?: { after: number; events: number; perEventMicros: number; loadedCpu: number };
}

async function splitTicks(pid: number): Promise<{ user: number; system: number }> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]), system: Number(fields[12]) };
}

const cpuSeconds = (a: ProcSample, b: ProcSample): number => b.cpuSeconds - a.cpuSeconds;

export async function runTrickle(
  brokers: string[],
  topic: string,
  options: {
    vms?: number;
    rate?: number;
    seconds?: number;
    flags?: Record<string, string>;
    /** Run the floor instead of the collector: bare `node` reading the same sockets. */
    floor?: boolean;
    /** Run the CLI's `collect` (the executable, bundle or source) instead of a stage process. */
    launch?: CliLaunch;
    /** Also measure a window that opens this many seconds into the trickle. */
    steadyAfter?: number;
  } = {},
): Promise<Trickle> {
  const vms = options.vms ?? 1000;
  const rate = options.rate ?? 100;
  const seconds = options.seconds ?? 20;
  const flagsFromEnv = Object.fromEntries(
    (process.env['BENCH_TRICKLE_FLAGS'] ?? '')
      .split(' ')
      .filter(Boolean)
      .map((f) => f.replace(/^--/, '').split('=') as [string, string]),
  );
  const sockets = benchDir('trickle-vms');
  const spool = benchDir('trickle-spool');
  const floorChild = options.floor === true ? spawnFloor(sockets) : undefined;
  const flags = {
    brokers: brokers.join(','),
    topic,
    'socket-dir': sockets,
    'spool-dir': spool,
    'http-port': '0',
    'log-level': 'warn',
    ...flagsFromEnv,
    ...options.flags,
  };
  const stage =
    floorChild ??
    (options.launch === undefined
      ? spawnStage({ role: 'collector', flags: { ...flags, brokers } })
      : spawnCli(options.launch, flags));
  let feeder: Awaited<ReturnType<typeof startQmpFeeder>> | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    await stage.ready;
    feeder = await startQmpFeeder(sockets, vms, vmName);
    floorChild?.connect();
    await feeder.allNegotiated;
    await sleep(3000);
    const a = await sampleProcess(stage.pid);
    await sleep(seconds * 1000);
    const b = await sampleProcess(stage.pid);
    const silent = cpuSeconds(a, b) / ((b.atMs - a.atMs) / 1000);
    let n = 0;
    const f = feeder;
    const started = performance.now();
    // `rate` events/s spread over the fleet, one VM at a time, paced on the clock.
    timer = setInterval(() => {
      const due = Math.floor(((performance.now() - started) / 1000) * rate);
      for (; n < due; n++) {
        const vm = n % vms;
        f.send(vm, qmpLine(fleetEvent(vm, Math.floor(n / vms), 4)));
      }
    }, 5);
    await sleep(3000);
    const n0 = n;
    const c = await sampleProcess(stage.pid);
    const cs = await splitTicks(stage.pid);
    await sleep(seconds * 1000);
    const d = await sampleProcess(stage.pid);
    const ds = await splitTicks(stage.pid);
    const events = n - n0;
    if (process.env['BENCH_TRICKLE_PID'] !== undefined) process.stderr.write(`pid ${stage.pid}\n`);
    const loaded = cpuSeconds(c, d) / ((d.atMs - c.atMs) / 1000);
    let steady: Trickle['steady'];
    if (options.steadyAfter !== undefined && options.steadyAfter > 0) {
      await sleep(Math.max(0, started + options.steadyAfter * 1000 - performance.now()));
      const n1 = n;
      const e = await sampleProcess(stage.pid);
      await sleep(seconds * 1000);
      const g = await sampleProcess(stage.pid);
      const steadyLoaded = cpuSeconds(e, g) / ((g.atMs - e.atMs) / 1000);
      steady = {
        after: options.steadyAfter,
        events: n - n1,
        perEventMicros: (((steadyLoaded - silent) * (g.atMs - e.atMs)) / 1000 / (n - n1)) * 1e6,
        loadedCpu: steadyLoaded * 100,
      };
    }
    return {
      ...(steady === undefined ? {} : { steady }),
      vms,
      rate,
      seconds,
      silentCpu: silent * 100,
      loadedCpu: loaded * 100,
      events,
      perEventMicros: (((loaded - silent) * (d.atMs - c.atMs)) / 1000 / events) * 1e6,
      perEventTotalMicros: (cpuSeconds(c, d) / events) * 1e6,
      rssBytes: d.rssBytes,
      userMicrosPerEvent: ((ds.user - cs.user) / 100 / events) * 1e6,
      systemMicrosPerEvent: ((ds.system - cs.system) / 100 / events) * 1e6,
    };
  } finally {
    clearInterval(timer);
    await stage.stop();
    await feeder?.close();
    rmSync(sockets, { recursive: true, force: true });
    rmSync(spool, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { benchBrokers, openBenchAdmin } = await import('./kafka-bench-support.ts');
  const { cliLaunch, launchKindFromEnv } = await import('./shipped-cli.ts');
  const launchName = process.env['BENCH_TRICKLE_LAUNCH'];
  // A prebuilt executable (e.g. a copy of main's, to alternate with this tree's in one period).
  const command = process.env['BENCH_TRICKLE_COMMAND'];
  const launch =
    command !== undefined
      ? { kind: 'executable' as const, command, prefix: [], label: command }
      : launchName === undefined || launchName === 'stage'
        ? undefined
        : await cliLaunch(launchKindFromEnv('BENCH_TRICKLE_LAUNCH'));
  const brokers = benchBrokers();
  const admin = openBenchAdmin(brokers);
  const topics = await admin.createTopics([{ prefix: 'trickle', partitions: 6 }]);
  try {
    const r = await runTrickle(brokers, topics.names[0] as string, {
      seconds: Number(process.env['BENCH_TRICKLE_SECONDS'] ?? 20),
      floor: process.env['BENCH_TRICKLE_FLOOR'] === '1',
      steadyAfter: Number(process.env['BENCH_TRICKLE_STEADY_AFTER'] ?? 0),
      ...(launch === undefined ? {} : { launch }),
    });
    process.stdout.write(JSON.stringify(r) + '\n');
  } finally {
    await topics.drop();
    await admin.close();
  }
  setImmediate(() => process.exit(0));
}
