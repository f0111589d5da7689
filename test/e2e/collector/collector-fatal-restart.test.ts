/**
 * The last resort, end to end: an internal error in the collector's event path exits the process
 * (status 1) after writing the spool's queue, and a supervisor's restart with the same spool
 * directory delivers every event the QMP servers sent, in order per VM, to real Kafka.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { brokersFromEnv, uniqueTopic } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import {
  assertDeliveredInOrder,
  consumeUntil,
  startFakeFleet,
  tempDir,
  type Emitted,
} from './collector-harness.ts';
import { fetchMetricsText, metricValue } from '../../helpers/metrics-text.ts';

const BIN = fileURLToPath(new URL('../../../bin/vfio-telemetry.js', import.meta.url));
const FAULT = fileURLToPath(new URL('./fault-injection.ts', import.meta.url));

interface Child {
  process: ChildProcess;
  url: string;
  stderr: () => string;
}

async function spawnCollector(
  t: TestContext,
  args: string[],
  options: { faultMarker?: string } = {},
): Promise<Child> {
  const preload = options.faultMarker === undefined ? [] : ['--import', 'tsx', '--import', FAULT];
  const child = spawn(
    process.execPath,
    [...preload, BIN, 'collect', '--http-port', '0', '--log-level', 'warn', ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, VFIO_TEST_FAULT_MARKER: options.faultMarker ?? '' },
    },
  );
  const pid = child.pid;
  assert.ok(pid !== undefined);
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const url = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) =>
      reject(new Error(`collector exited (${code}) before starting:\n${stderr}`)),
    );
  });
  return { process: child, url, stderr: () => stderr };
}

/** The sum of a metric's samples over all its labels; NaN when it has none. */
async function metric(url: string, name: string): Promise<number> {
  return metricValue(await fetchMetricsText(url), name, {}, NaN);
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

const qmpEvent = (ts: number, event: string, data: Record<string, unknown>): string =>
  JSON.stringify({
    timestamp: { seconds: Math.floor(ts / 1e6), microseconds: ts % 1e6 },
    event,
    data,
  }) + '\r\n';

test('an internal error exits 1 after writing the spool; the restart delivers every event sent, in order per VM', async (t) => {
  const brokers = brokersFromEnv();
  const topic = await uniqueTopic(t, 'collector-fatal', { numPartitions: 2 });
  const fleet = await startFakeFleet(t, 5);
  const spoolDir = tempDir(t, 'spool-');
  const common = [
    '--socket-dir',
    fleet.dir,
    '--spool-dir',
    spoolDir,
    '--brokers',
    brokers.join(','),
    '--topic',
    topic,
    '--reconnect-initial-ms',
    '20',
    '--reconnect-max-ms',
    '200',
    '--rescan-interval-ms',
    '100',
  ];
  const marker = `fault-${randomUUID()}`;
  // A linger longer than the first run: it publishes nothing, all waits in the spool.
  const first = await spawnCollector(
    t,
    [...common, '--linger-ms', '10000', '--batch-max-events', '100000'],
    {
      faultMarker: marker,
    },
  );
  await waitFor(() => fleet.servers.every((s) => s.negotiated), {
    description: 'first run negotiated',
    timeoutMs: 30_000,
  });
  for (let round = 0; round < 20; round++) fleet.emitRound(round);
  const written = fleet.emitted.length;
  await waitFor(async () => (await metric(first.url, 'vfio_collector_spool_events')) === written, {
    description: 'the first rounds written to the spool',
    timeoutMs: 30_000,
  });

  // Two events in ONE write: both are appended in the same read; the second trips the fault
  // while both still wait in the spool's queue. Only the last resort's flush can save them.
  const vm0 = fleet.servers[0];
  assert.ok(vm0 !== undefined);
  const lastTs = Math.max(...fleet.emitted.filter((e) => e.vm === 'vm-0').map((e) => e.ts));
  const doomed: Emitted[] = [
    { vm: 'vm-0', event: 'RESUME', ts: lastTs + 1000 },
    { vm: 'vm-0', event: 'STOP', ts: lastTs + 2000 },
  ];
  vm0.sendRaw(
    qmpEvent(lastTs + 1000, 'RESUME', { n: 1 }) + qmpEvent(lastTs + 2000, 'STOP', { marker }),
  );
  fleet.emitted.push(...doomed);
  await waitFor(() => first.process.exitCode !== null || first.process.signalCode !== null, {
    description: 'the first run exits after the fault',
    timeoutMs: 30_000,
  });
  assert.equal(first.process.exitCode, 1, first.stderr());
  assert.match(first.stderr(), /A fatal internal error/);
  assert.match(first.stderr(), /injected fault/);
  await waitFor(() => fleet.servers.every((s) => !s.negotiated), {
    description: 'sockets released',
  });

  // The supervisor's restart: same spool directory, no fault.
  const second = await spawnCollector(t, common);
  await waitFor(() => fleet.servers.every((s) => s.negotiated), {
    description: 'second run negotiated',
    timeoutMs: 30_000,
  });
  for (let round = 20; round < 30; round++) fleet.emitRound(round);

  const records = await consumeUntil(
    t,
    brokers,
    topic,
    (r) =>
      new Set(r.map((x) => `${x.record.sessionId}/${x.record.sequence}`)).size >=
      fleet.emitted.length,
    120_000,
  );
  assertDeliveredInOrder(records, fleet.emitted);
  assert.equal(await metric(second.url, 'vfio_collector_events_dropped_total'), 0);

  process.kill(second.process.pid as number, 'SIGTERM');
  await exited(second.process);
  assert.equal(second.process.exitCode, 0);
});
