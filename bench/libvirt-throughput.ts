/**
 * The libvirt source against a real libvirtd (session daemon, test/helpers/libvirtd.ts) and a
 * real broker: events/s from a TCG domain looping suspend/resume (one virsh process running
 * `suspend; resume; ...` so that no process start sits between commands), and the idle cost of
 * one registered connection against the same collector with an empty socket directory. The
 * collector runs in its own process (bench/stage-process.ts); CPU from /proc.
 */
import { rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { startLibvirtd, type Libvirtd } from '../test/helpers/libvirtd.ts';
import type { BenchSection } from './harness.ts';
import {
  benchBrokers,
  benchDir,
  cpuPercent,
  fmt,
  loadText,
  openBenchAdmin,
  pollUntil,
  sampleProcess,
  sleep,
  spawnStage,
  type StageChild,
} from './kafka-bench-support.ts';

const PAIRS = Number(process.env['BENCH_LIBVIRT_PAIRS'] ?? 500);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const IDLE_SECONDS = 10;

/** Runs `commands` (`;`-separated) in one virsh process. */
function virshBatch(libvirtd: Libvirtd, commands: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('virsh', ['-q', '-c', libvirtd.uri, commands], { stdio: 'ignore' });
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`virsh ${code}`))));
  });
}

async function idle(stage: StageChild): Promise<{ cpu: number; rss: number }> {
  await stage.ready;
  await sleep(2000);
  const a = await sampleProcess(stage.pid);
  await sleep(IDLE_SECONDS * 1000);
  const b = await sampleProcess(stage.pid);
  return { cpu: cpuPercent(a, b), rss: b.rssBytes };
}

export async function runLibvirtThroughput(): Promise<BenchSection> {
  const brokers = benchBrokers();
  const admin = openBenchAdmin(brokers);
  const cleanups: (() => unknown)[] = [];
  const topics = await admin.createTopics([
    { prefix: 'libvirt-idle', partitions: 1 },
    { prefix: 'libvirt', partitions: 1 },
  ]);
  const sockets = benchDir('libvirt-none');
  const spools = [benchDir('libvirt-spool-a'), benchDir('libvirt-spool-b')];
  try {
    const libvirtd = await startLibvirtd({ after: (fn) => cleanups.push(fn) });
    libvirtd.createDomain('bench');
    const common = { brokers, 'http-port': '0', 'log-level': 'warn' };

    const plain = spawnStage({
      role: 'collector',
      flags: {
        ...common,
        topic: topics.names[0] as string,
        'socket-dir': sockets,
        'spool-dir': spools[0] as string,
      },
    });
    const baseline = await idle(plain).finally(() => plain.stop());

    const stage = spawnStage({
      role: 'collector',
      flags: {
        ...common,
        topic: topics.names[1] as string,
        libvirt: [libvirtd.uri],
        'spool-dir': spools[1] as string,
      },
    });
    try {
      await stage.ready;
      // Registered once the first events arrive (the registration is asynchronous).
      await pollUntil(
        stage,
        (r) => {
          if ((r.counters['published'] ?? 0) >= 2) return true;
          void virshBatch(libvirtd, 'suspend bench; resume bench');
          return false;
        },
        { intervalMs: 500, timeoutMs: 30_000 },
      );
      const registered = await idle(stage);
      const libvirtdPid = libvirtd.pid();

      const runs: { perSecond: number; cpu: number; libvirtdCpu: number; load: string }[] = [];
      const commands = Array.from({ length: PAIRS }, () => 'suspend bench; resume bench').join(
        '; ',
      );
      for (let round = 0; round < ROUNDS; round++) {
        const start = (await stage.query()).counters['published'] ?? 0;
        const [a, la] = await Promise.all([sampleProcess(stage.pid), sampleProcess(libvirtdPid)]);
        const t0 = performance.now();
        await virshBatch(libvirtd, commands);
        await pollUntil(stage, (r) => (r.counters['published'] ?? 0) >= start + PAIRS * 2, {
          intervalMs: 10,
        });
        const seconds = (performance.now() - t0) / 1000;
        const [b, lb] = await Promise.all([sampleProcess(stage.pid), sampleProcess(libvirtdPid)]);
        runs.push({
          perSecond: (PAIRS * 2) / seconds,
          cpu: cpuPercent(a, b),
          libvirtdCpu: cpuPercent(la, lb),
          load: loadText(),
        });
      }
      const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
      return {
        title: 'libvirt source, QEMU monitor events through a real libvirtd → Kafka (2 cores)',
        columns: [
          'measurement',
          'events/s',
          'collector CPU',
          'libvirtd CPU',
          'collector CPU per event',
          'load',
        ],
        rows: [
          ...runs.map((r, i) => [
            `round ${i + 1}: ${fmt(PAIRS)} × suspend+resume`,
            fmt(r.perSecond),
            `${r.cpu.toFixed(0)}%`,
            `${r.libvirtdCpu.toFixed(0)}%`,
            `${((r.cpu / 100 / r.perSecond) * 1e6).toFixed(0)} µs`,
            r.load,
          ]),
          [
            `idle, empty socket directory (${IDLE_SECONDS} s)`,
            '0',
            `${baseline.cpu.toFixed(2)}%, ${mib(baseline.rss)}`,
            '',
            '',
            loadText(),
          ],
          [
            `idle, one registered libvirt connection, one running domain (${IDLE_SECONDS} s)`,
            '0',
            `${registered.cpu.toFixed(2)}%, ${mib(registered.rss)}`,
            '',
            '',
            loadText(),
          ],
        ],
        notes: [
          `libvirtd ${'9.0'} session daemon run as nobody, one TCG domain (64 MiB, no disk); one virsh process runs ${fmt(PAIRS)} suspend/resume pairs (${fmt(PAIRS * 2)} STOP/RESUME events) per round. The clock runs from the virsh start to the last record Kafka acknowledged (events_published_total over IPC). The rate is libvirt's: each suspend/resume is a libvirt job with its own QMP round trips, so the collector's share is the CPU column, not the rate; compare its CPU per event with the QMP-socket collector above.`,
          `Idle: CPU from /proc over ${IDLE_SECONDS} s after a 2 s settle; the libvirt connection sends a keepalive ping only after ${5} s of silence (libvirtKeepaliveMs), libvirtd answers it.`,
        ],
      };
    } finally {
      await stage.stop();
    }
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    await topics.drop();
    await admin.close();
    rmSync(sockets, { recursive: true, force: true });
    for (const dir of spools) rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const section = await runLibvirtThroughput();
  process.stdout.write(JSON.stringify(section) + '\n');
  setImmediate(() => process.exit(0));
}
