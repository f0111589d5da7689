/**
 * Time a host does not control (issue 18). One collector host whose clock is a year ahead —
 * QEMU's and the collector's alike (libfaketime under both the simulator and the collector, so
 * the host is self-consistent and passes every same-host check) — shares one partition with a
 * host whose clock is right. Before, the partition clock was the newest receive time: the host
 * ahead could not deliver at all (Kafka 4 refuses CreateTime timestamps over an hour ahead), and
 * had it delivered, it would have timed out the other host's prepares. Now the events topic
 * keeps broker time: every event of both hosts is delivered and processed exactly as `replay`
 * computes it from each host's transcripts, and the processor reports the host's offset.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createEventCodec, createTransitionCodec } from '../../../services/shared/io/avro-codec.ts';
import type { RunningProcessor } from '../../../services/processor/main.ts';
import { brokersFromEnv, tailTopic, testKafkaPort } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { tempDir } from '../collector/collector-harness.ts';
import {
  describeTransition,
  expectedTransitions,
  pipelineTopics,
  runFleet,
  startProcessorInProcess,
} from './pipeline-harness.ts';
import { metricValue } from '../../helpers/metrics-text.ts';

const BIN = fileURLToPath(new URL('../../../bin/vfio-telemetry.js', import.meta.url));
const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const YEAR_SECONDS = 365 * 24 * 3600;
const FLEET = ['--vms', '3', '--devices', '2', '--rate', '2', '--failure-rate', '0.1'];

/** `vfio-telemetry ARGS` with the wall clock a year ahead; killed by PID after the test. */
function spawnAYearAhead(
  t: TestContext,
  args: string[],
): { exited: Promise<number | null>; firstLine: Promise<string>; stderr: () => string } {
  assert.ok(
    existsSync(LIBFAKETIME),
    `${LIBFAKETIME} is missing (infra/setup-system.sh installs faketime)`,
  );
  const child = spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      LD_PRELOAD: LIBFAKETIME,
      FAKETIME: '+365d',
      // Timers and performance.now() stay real; only the wall clock is wrong.
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
    },
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const firstLine = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`${args[0]} exited (${code}):\n${stderr}`)));
  });
  firstLine.catch(() => undefined);
  return { exited, firstLine, stderr: () => stderr };
}

test('a host a year ahead delivers every event and times out no other host: the partition clock is broker time', async (t) => {
  const brokers = brokersFromEnv();
  const topics = await pipelineTopics(t, brokers, 1);
  // A fresh broker may still be loading its group coordinator (COORDINATOR_LOAD_IN_PROGRESS).
  let processor: RunningProcessor | undefined;
  await waitFor(
    async () => {
      processor = await startProcessorInProcess(t, brokers, topics).catch(() => undefined);
      return processor !== undefined;
    },
    { timeoutMs: 60_000, intervalMs: 1000, description: 'the processor in its group' },
  );

  const sockets = tempDir(t, 'ahead-vms-');
  const aheadTranscripts = tempDir(t, 'ahead-transcripts-');
  const simulator = spawnAYearAhead(t, [
    'simulate',
    '--dir',
    sockets,
    ...FLEET,
    '--seed',
    '21',
    '--speed',
    '10',
    '--migrations',
    '12',
    '--transcripts',
    aheadTranscripts,
    '--wait-for-clients',
    '--progress-seconds',
    '3600',
  ]);
  const collector = spawnAYearAhead(t, [
    'collect',
    '--host',
    'ahead',
    '--socket-dir',
    sockets,
    '--spool-dir',
    tempDir(t, 'ahead-spool-'),
    '--brokers',
    brokers.join(','),
    '--topic',
    topics.events,
    '--http-port',
    '0',
    '--reconnect-initial-ms',
    '20',
    '--reconnect-max-ms',
    '200',
    '--rescan-interval-ms',
    '100',
    '--log-level',
    'warn',
  ]);
  const collectorUrl = await collector.firstLine;
  // The host with a right clock ('test-host'), on the same partition, at the same time.
  const good = await runFleet(t, brokers, topics.events, {
    vms: 3,
    devicesPerVm: 2,
    migrationsPerVmPerMinute: 2,
    failureRate: 0.1,
    seed: 22,
    migrations: 12,
    speed: 10,
  });
  assert.equal(await simulator.exited, 0, 'the simulator a year ahead finished');
  await good.delivered;

  // Every event the host ahead's QEMU sent is in the events topic, dated a year ahead: the
  // fault took effect, and the broker took the records anyway.
  const finished = simulator
    .stderr()
    .split('\n')
    .find((line) => line.includes('Simulation finished.'));
  const aheadSent = Number(/"eventsSent":(\d+)/.exec(finished ?? '')?.[1] ?? NaN);
  const eventCodec = createEventCodec();
  const events = await tailTopic(testKafkaPort(t, brokers), topics.events);
  const fromAhead: number[] = [];
  await waitFor(
    async () => {
      for (const r of await events.next()) {
        const decoded = eventCodec.decode(r.value ?? Buffer.alloc(0));
        if (decoded.kind === 'record' && decoded.value.host === 'ahead')
          fromAhead.push(decoded.value.receivedMicros / 1000 - r.timestampMs);
      }
      return fromAhead.length >= aheadSent;
    },
    { timeoutMs: 60_000, intervalMs: 200, description: `${aheadSent} events of the host ahead` },
  );
  assert.ok(aheadSent > 0);
  assert.equal(fromAhead.length, aheadSent);
  for (const offsetMs of fromAhead) {
    assert.ok(Math.abs(offsetMs / 1000 - YEAR_SECONDS) < 60, `offset ${offsetMs} ms`);
  }
  const collectorMetrics = await (await fetch(`${collectorUrl}/metrics`)).text();
  assert.equal(metricValue(collectorMetrics, 'vfio_collector_events_published_total'), aheadSent);
  assert.equal(metricValue(collectorMetrics, 'vfio_collector_publish_errors_total'), 0);

  // Both hosts' transitions are exactly what replay computes from their own transcripts.
  const expected = {
    ahead: expectedTransitions(aheadTranscripts),
    'test-host': expectedTransitions(good.transcripts),
  };
  const transitionCodec = createTransitionCodec();
  const transitions = await tailTopic(testKafkaPort(t, brokers), topics.transitions);
  const actual = new Map<string, string[]>([
    ['ahead', []],
    ['test-host', []],
  ]);
  const total = expected.ahead.length + expected['test-host'].length;
  let seen = 0;
  await waitFor(
    async () => {
      for (const r of await transitions.next()) {
        const decoded = transitionCodec.decode(r.value ?? Buffer.alloc(0));
        assert.equal(decoded.kind, 'record');
        if (decoded.kind !== 'record') continue;
        actual.get(decoded.value.host)?.push(describeTransition(decoded.value));
        seen++;
      }
      return seen >= total;
    },
    { timeoutMs: 90_000, intervalMs: 200, description: `${total} transitions` },
  );
  assert.deepEqual(actual.get('test-host')?.sort(), expected['test-host']);
  assert.deepEqual(actual.get('ahead')?.sort(), expected.ahead);
  assert.equal(seen, total);

  const metrics = (await processor?.registry.metrics()) ?? '';
  assert.equal(metricValue(metrics, 'vfio_processor_silent_vm_timeouts_total'), 0);
  const ahead = /^vfio_processor_host_clock_offset_seconds\{host="ahead"\} (\S+)$/m.exec(metrics);
  assert.ok(Math.abs(Number(ahead?.[1]) - YEAR_SECONDS) < 60, `host ahead's offset: ${ahead?.[1]}`);
  const right = /^vfio_processor_host_clock_offset_seconds\{host="test-host"\} (\S+)$/m.exec(
    metrics,
  );
  assert.ok(Math.abs(Number(right?.[1])) < 1, `the right host's offset: ${right?.[1]}`);
});
