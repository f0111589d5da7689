/**
 * The collector against real QEMU (Debian qemu-system-x86, TCG, no disk: SeaBIOS idles and the
 * migration moves about 1 MB). Recipe of the domain notes §4.1: each QEMU has two QMP sockets;
 * the collector reads the first, and THE TEST drives a local migration over the second
 * (`migrate-set-capabilities events=on` on both, `-incoming defer` + `migrate-incoming` on the
 * destination). QEMU broadcasts every event to every negotiated monitor with the same timestamp,
 * so what the test's monitor saw is exactly what must arrive in Kafka.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { startCollector } from '../../../services/collector/main.ts';
import { brokersFromEnv, uniqueTopic } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { byVm, collectorConfig, consumeUntil, quietLogger, tempDir } from './collector-harness.ts';
import { fetchMetricsText, metricValue } from '../../helpers/metrics-text.ts';

const QEMU = 'qemu-system-x86_64';
const WATCHED = new Set(['STOP', 'RESUME', 'MIGRATION', 'MIGRATION_PASS']);

interface SeenEvent {
  event: string;
  ts: number;
  status: string | null;
}

/** The test's own QMP client on a QEMU's second monitor: commands and the events it saw. */
class Driver {
  readonly events: SeenEvent[] = [];
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  private constructor(private readonly socket: Socket) {}

  static async open(path: string): Promise<Driver> {
    const socket = createConnection({ path });
    const driver = new Driver(socket);
    const greeting = new Promise<void>((resolve) => (driver.onGreeting = resolve));
    socket.on('data', (chunk: Buffer) => driver.onData(chunk));
    await greeting;
    await driver.command('qmp_capabilities');
    return driver;
  }

  private onGreeting: () => void = () => {};

  command(execute: string, args?: Record<string, unknown>): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(
        JSON.stringify({ execute, id, ...(args === undefined ? {} : { arguments: args }) }) + '\n',
      );
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buffer += chunk.toString('utf8');
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) !== -1) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line === '') continue;
      const msg = JSON.parse(line) as Record<string, unknown>;
      if ('QMP' in msg) this.onGreeting();
      else if (typeof msg['event'] === 'string') {
        const ts = msg['timestamp'] as { seconds: number; microseconds: number };
        const data = msg['data'] as { status?: string } | undefined;
        this.events.push({
          event: msg['event'],
          ts: ts.seconds * 1_000_000 + ts.microseconds,
          status: data?.status ?? null,
        });
      } else {
        const waiter = this.pending.get(msg['id'] as number);
        this.pending.delete(msg['id'] as number);
        if ('error' in msg) waiter?.reject(new Error(JSON.stringify(msg['error'])));
        else waiter?.resolve(msg['return']);
      }
    }
  }
}

function startQemu(
  t: TestContext,
  name: string,
  collectSocket: string,
  driveSocket: string,
  extra: string[],
): ChildProcess {
  const args = [
    '-nodefaults',
    '-display',
    'none',
    '-machine',
    'pc,accel=tcg',
    '-m',
    '64',
    '-smp',
    '1',
    '-name',
    name,
  ];
  args.push(
    '-qmp',
    `unix:${collectSocket},server=on,wait=off`,
    '-qmp',
    `unix:${driveSocket},server=on,wait=off`,
    ...extra,
  );
  const child = spawn(QEMU, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const pid = child.pid;
  assert.ok(pid !== undefined, `${QEMU} did not start`);
  t.after(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    process.kill(pid, 'SIGKILL');
    await gone;
  });
  return child;
}

test(
  "real QEMU: a local migration arrives in Kafka with QEMU's own timestamps",
  { timeout: 180_000 },
  async (t) => {
    const found = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
    assert.equal(
      found.status,
      0,
      `${QEMU} is missing: apt-get install -y --no-install-recommends qemu-system-x86`,
    );
    const brokers = brokersFromEnv();
    const topic = await uniqueTopic(t, 'collector-qemu');
    const dir = tempDir(t, 'collector-qemu-');
    const collectDir = join(dir, 'collect');
    const driveDir = join(dir, 'drive');
    mkdirSync(collectDir);
    mkdirSync(driveDir);
    const migrationUri = `unix:${join(dir, 'mig.sock')}`;

    startQemu(t, 'src', join(collectDir, 'src.qmp'), join(driveDir, 'src.qmp'), []);
    startQemu(t, 'dst', join(collectDir, 'dst.qmp'), join(driveDir, 'dst.qmp'), [
      '-incoming',
      'defer',
    ]);

    const collector = await startCollector(
      collectorConfig(brokers, topic, {
        'socket-dir': collectDir,
        'spool-dir': tempDir(t, 'spool-'),
      }),
      quietLogger(),
    );
    t.after(() => collector.stop());
    await waitFor(
      async () =>
        metricValue(await fetchMetricsText(collector.http.url), 'vfio_collector_vms_connected') ===
        2,
      { description: 'collector negotiated with both QEMUs', timeoutMs: 30_000 },
    );

    const src = await Driver.open(join(driveDir, 'src.qmp'));
    const dst = await Driver.open(join(driveDir, 'dst.qmp'));
    t.after(() => {
      src.close();
      dst.close();
    });
    const events = { capabilities: [{ capability: 'events', state: true }] };
    await src.command('migrate-set-capabilities', events);
    await dst.command('migrate-set-capabilities', events);
    await dst.command('migrate-incoming', { uri: migrationUri });
    await src.command('migrate', { uri: migrationUri });
    await waitFor(
      () => src.events.some((e) => e.event === 'MIGRATION' && e.status === 'completed'),
      {
        description: 'source MIGRATION completed',
        timeoutMs: 60_000,
      },
    );
    await waitFor(() => dst.events.some((e) => e.event === 'RESUME'), {
      description: 'destination RESUME',
      timeoutMs: 30_000,
    });
    await waitFor(
      () => dst.events.some((e) => e.event === 'MIGRATION' && e.status === 'completed'),
      {
        description: 'destination MIGRATION completed',
        timeoutMs: 30_000,
      },
    );

    const expected = {
      src: src.events.filter((e) => WATCHED.has(e.event)),
      dst: dst.events.filter((e) => WATCHED.has(e.event)),
    };
    assert.ok(
      expected.src.some((e) => e.event === 'STOP'),
      'the source stopped',
    );
    const records = await consumeUntil(t, brokers, topic, (r) => {
      const vms = byVm(r);
      return (['src', 'dst'] as const).every(
        (vm) =>
          (vms.get(vm) ?? []).filter((x) => WATCHED.has(x.record.event)).length >=
          expected[vm].length,
      );
    });
    const vms = byVm(records);
    for (const vm of ['src', 'dst'] as const) {
      const got = (vms.get(vm) ?? [])
        .filter((r) => WATCHED.has(r.record.event))
        .map((r) => ({
          event: r.record.event,
          ts: r.record.qemuTimestampMicros,
          status: r.record.migrationStatus,
        }));
      assert.deepEqual(
        got,
        expected[vm],
        `${vm}: the events QEMU emitted, with its timestamps, in order`,
      );
    }
  },
);
