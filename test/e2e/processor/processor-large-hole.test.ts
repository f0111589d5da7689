/**
 * An operator resets the processor group's offsets past a backlog of 500,000 records
 * (`kafka-consumer-groups --reset-offsets --to-latest`). After the restores agree, the hole is
 * read again through the consumer's normal batches, and the processor (its own OS process, so
 * its /metrics measure it alone) proves what issue 18 asks:
 *
 * - every partition keeps moving: partition 1's fresh events, published while partition 0's hole
 *   is filled, are committed before the fill ends;
 * - memory stays bounded: resident set and heap, sampled from its /metrics all along, under
 *   RSS_BOUND_BYTES and HEAP_BOUND_BYTES (the hole's records alone, read into one array as before,
 *   would be over 200 MiB of heap);
 * - no transaction holds more than `--max-records-per-transaction` records;
 * - the transitions topic ends equal to the recomputation from the events topic.
 *
 * Before, the hole went into one array and `unshift(...found)`: beyond ~10^5 records a
 * RangeError, caught as a failed transaction, forever, and every partition stalled. After that
 * was fixed, partition 1 still stood still during the fill (every fetch response was filled with
 * partition 0's backlog: kafka/core/fetch-order.ts), and the group consumer's buffer kept every
 * record fetched during the fill (416 MiB of heap; 78 MiB since). The processor runs with a
 * 256 MiB old space, so a leak like that one kills it and the test fails.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { OutgoingRecord } from '../../../services/shared/kafka/io/port.ts';
import { brokersFromEnv, testKafkaPort } from '../../helpers/kafka.ts';
import { fetchMetricsText, metricValue } from '../../helpers/metrics-text.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import {
  pipelineTopics,
  spawnProcessor,
  startProcessorInProcess,
} from '../pipeline/pipeline-harness.ts';
import { inputHoles, resetGroupOffset, walkingEvents } from './input-hole-harness.ts';
import { publishedAndRecomputed } from './processor-e2e.ts';

const HOLE = 500_000;
const CAP = 5000;
const VMS = 50;
const MIB = 2 ** 20;
/** V8's old space for the processor: the fill must fit, or the process dies (heap out of memory). */
const OLD_SPACE_MIB = 256;
/**
 * V8 sizes the young generation from the old space: with 256 MiB it would scavenge so often that
 * the fill took twice as long. 16 MiB is what it picks for the processor's default heap.
 */
const SEMI_SPACE_MIB = 16;
const RSS_BOUND_BYTES = 400 * MIB;
const HEAP_BOUND_BYTES = 200 * MIB;

interface Committed {
  time: string;
  inputs: { partition: number; first: string; next: number }[];
}

test('a group offset reset past 500k records: the hole is filled in capped batches, every partition moves, memory stays bounded', async (t) => {
  const brokers = brokersFromEnv();
  const topics = await pipelineTopics(t, brokers, 2);
  const groupId = `processor-${randomUUID()}`;
  const producer = await testKafkaPort(t, brokers).producer();
  t.after(() => producer.close());
  const events = walkingEvents(topics.events, VMS);
  const send = async (records: OutgoingRecord[]) =>
    assert.deepEqual((await producer.send(records)).refused, []);

  // 1. Some events on both partitions processed and committed, then the processor stops.
  await send([...events(0, 600), ...events(1, 600)]);
  const first = await startProcessorInProcess(t, brokers, topics, groupId);
  await waitFor(
    async () =>
      metricValue(await first.registry.metrics(), 'vfio_processor_records_consumed_total') >= 1200,
    { timeoutMs: 60_000, intervalMs: 100, description: 'the first 1200 events processed' },
  );
  await first.stop();

  // 2. The backlog: 500k events on partition 0, in bulk; the group's offset moves past it.
  let started = Date.now();
  for (let sent = 0; sent < HOLE; sent += 50_000) await send(events(0, 50_000));
  t.diagnostic(`produced ${HOLE} events in ${Date.now() - started} ms`);
  const holeEnd = 600 + HOLE;
  await resetGroupOffset(brokers, groupId, topics.events, 0, holeEnd);
  await send(events(0, 60));

  // 3. Restarted: state says 600, the consumer starts at 500,600; partition 1 gets events all along.
  started = Date.now();
  const committed: Committed[] = [];
  /** What the processor said last besides debug lines, for a failure's message. */
  const lastLines: string[] = [];
  let p0Reached = 0;
  const second = spawnProcessor(t, brokers, topics, groupId, {
    nodeOptions: [
      `--max-old-space-size=${OLD_SPACE_MIB}`,
      `--max-semi-space-size=${SEMI_SPACE_MIB}`,
    ],
    flags: [
      '--log-level',
      'debug',
      '--max-records-per-transaction',
      String(CAP),
      // The five restores before a hole is believed back off 200, 400, 500, 500, 500 ms.
      '--publish-retry-max-ms',
      '500',
    ],
    onLogLine: (line) => {
      if (line.includes('"msg":"Transaction committed."')) {
        const c = JSON.parse(line) as Committed;
        committed.push(c);
        for (const i of c.inputs) if (i.partition === 0) p0Reached = Math.max(p0Reached, i.next);
      } else if (!line.includes('"level":"debug"')) lastLines.push(line.slice(0, 500));
      if (lastLines.length > 20) lastLines.shift();
    },
  });
  const url = await second.url;
  const metrics = async () => fetchMetricsText(url);
  let p1Published = 600;
  let feeding = true;
  const feeder = (async () => {
    while (feeding) {
      await send(events(1, 20));
      p1Published += 20;
      await sleep(200);
    }
  })();
  t.after(async () => {
    feeding = false;
    await feeder;
  });
  /** Partition 1's published count when partition 0's fill began (its first commit in the hole). */
  let p1AtFillStart: number | undefined;
  const peak = { rss: 0, heap: 0 };
  await waitFor(
    async () => {
      const text = await metrics();
      peak.rss = Math.max(
        peak.rss,
        metricValue(text, 'vfio_processor_process_resident_memory_bytes'),
      );
      peak.heap = Math.max(
        peak.heap,
        metricValue(text, 'vfio_processor_nodejs_heap_size_used_bytes'),
      );
      if (p1AtFillStart === undefined && p0Reached > 600) p1AtFillStart = p1Published;
      return p0Reached >= holeEnd + 60;
    },
    {
      timeoutMs: 150_000,
      intervalMs: 250,
      description: 'partition 0 through the hole and past it',
    },
  ).catch((error: unknown) => {
    throw new Error(
      `${(error as Error).message}: partition 0 committed up to ${p0Reached} of ${holeEnd + 60} in ${committed.length} transactions; processor exit code ${second.child.exitCode}; its last lines:\n${lastLines.join('\n')}`,
      { cause: error },
    );
  });
  feeding = false;
  await feeder;
  t.diagnostic(
    `hole filled ${Date.now() - started} ms after the start; peak RSS ${Math.round(peak.rss / MIB)} MiB, heap used ${Math.round(peak.heap / MIB)} MiB`,
  );

  // Every transaction within the cap (offsets span at least as many records as a transaction has).
  for (const c of committed) {
    const span = c.inputs.reduce((n, i) => n + (i.next - Number(i.first)), 0);
    assert.ok(span <= CAP, `a transaction of up to ${span} records: ${JSON.stringify(c.inputs)}`);
  }
  // The hole came in many transactions, and partition 1 moved meanwhile: events published after
  // the fill began were committed before it ended.
  const inHole = committed.filter((c) =>
    c.inputs.some((i) => i.partition === 0 && Number(i.first) < holeEnd),
  );
  assert.ok(inHole.length >= HOLE / CAP, `the hole took ${inHole.length} transactions`);
  const p1During = inHole.flatMap((c) => c.inputs.filter((i) => i.partition === 1));
  const p1Reached = Math.max(0, ...p1During.map((i) => i.next));
  t.diagnostic(
    `${inHole.length} transactions filled the hole, ${p1During.length} of them also carried partition 1 (up to offset ${p1Reached}; ${p1AtFillStart} published when the fill began)`,
  );
  assert.ok(p1AtFillStart !== undefined);
  assert.ok(
    p1Reached > p1AtFillStart,
    `partition 1 committed its events published during the fill (reached ${p1Reached}, ${p1AtFillStart} published when it began)`,
  );
  // Memory: the processor never held the hole.
  assert.ok(peak.rss > 0 && peak.heap > 0, 'memory read from /metrics');
  assert.ok(peak.rss < RSS_BOUND_BYTES, `peak RSS ${Math.round(peak.rss / MIB)} MiB`);
  assert.ok(peak.heap < HEAP_BOUND_BYTES, `peak heap used ${Math.round(peak.heap / MIB)} MiB`);

  const text = await metrics();
  assert.equal(inputHoles(text, 'filled'), 1);
  assert.equal(inputHoles(text, 'accepted'), 0);
  await waitFor(
    async () =>
      metricValue(await metrics(), 'vfio_processor_records_consumed_total') >=
      HOLE + 60 + (p1Published - 600),
    { timeoutMs: 60_000, intervalMs: 200, description: 'every record consumed' },
  );
  const cpu = process.cpuUsage();
  t.diagnostic(
    `CPU so far: processor ${metricValue(await metrics(), 'vfio_processor_process_cpu_seconds_total').toFixed(1)} s, test process ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s`,
  );
  second.child.kill('SIGTERM');
  assert.equal(await second.exited, 0);

  // Settled: the transitions topic equals the recomputation from the whole events topic.
  started = Date.now();
  const after = await publishedAndRecomputed(t, brokers, topics);
  t.diagnostic(`read and recomputed both topics in ${Date.now() - started} ms`);
  assert.ok((after.recomputed.get(0)?.length ?? 0) > HOLE / 2, 'the events make transitions');
  assert.deepEqual(after.published, after.recomputed);
});
