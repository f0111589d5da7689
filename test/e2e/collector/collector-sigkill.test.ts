import assert from 'node:assert/strict';
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
} from './collector-harness.ts';
import { fetchMetricsText, metricValue } from '../../helpers/metrics-text.ts';

const BIN = fileURLToPath(new URL('../../../bin/vfio-telemetry.js', import.meta.url));

interface Child {
  process: ChildProcess;
  url: string;
}

/** `vfio-telemetry collect` as a child process; killed by PID after the test if still running. */
async function spawnCollector(t: TestContext, args: string[]): Promise<Child> {
  const child = spawn(
    process.execPath,
    [BIN, 'collect', '--http-port', '0', '--log-level', 'warn', ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
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
  return { process: child, url };
}

async function metric(url: string, name: string): Promise<number> {
  return metricValue(await fetchMetricsText(url), name, {}, NaN);
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

test('SIGKILL of the collector loses nothing it had written to its spool', async (t) => {
  const brokers = brokersFromEnv();
  const topic = await uniqueTopic(t, 'collector-sigkill', { numPartitions: 2 });
  const fleet = await startFakeFleet(t, 10);
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
  ];
  common.push(
    '--reconnect-initial-ms',
    '20',
    '--reconnect-max-ms',
    '200',
    '--rescan-interval-ms',
    '100',
  );

  // A linger far longer than the test keeps every accepted event unacknowledged in the spool.
  const first = await spawnCollector(t, [
    ...common,
    '--linger-ms',
    '10000',
    '--batch-max-events',
    '100000',
  ]);
  await waitFor(() => fleet.servers.every((s) => s.negotiated), {
    description: 'first run negotiated',
  });
  for (let round = 0; round < 30; round++) fleet.emitRound(round);
  const accepted = fleet.emitted.length;
  await waitFor(async () => (await metric(first.url, 'vfio_collector_spool_events')) === accepted, {
    description: 'every event written to the spool',
  });
  assert.equal(await metric(first.url, 'vfio_collector_events_published_total'), 0);
  process.kill(first.process.pid as number, 'SIGKILL');
  await exited(first.process);
  await waitFor(() => fleet.servers.every((s) => !s.negotiated), {
    description: 'sockets released',
  });

  const second = await spawnCollector(t, common);
  await waitFor(() => fleet.servers.every((s) => s.negotiated), {
    description: 'second run negotiated',
  });
  for (let round = 30; round < 40; round++) fleet.emitRound(round);

  const records = await consumeUntil(t, brokers, topic, (r) => r.length >= fleet.emitted.length);
  assertDeliveredInOrder(records, fleet.emitted);
  assert.equal((await metric(second.url, 'vfio_collector_events_spooled_total')) >= accepted, true);

  // SIGTERM: a clean shutdown, exit status 0.
  process.kill(second.process.pid as number, 'SIGTERM');
  await exited(second.process);
  assert.equal(second.process.exitCode, 0);
});
