/**
 * An operator resets the processor group's offsets past a backlog of 500,000 records
 * (`kafka-consumer-groups --reset-offsets --to-latest`, here a commit by hand). After the restores
 * agree, the hole is read again through the consumer's normal batches: no transaction holds more
 * than `--max-records-per-transaction` records of it, the other partition keeps committing
 * while the hole is filled, and the transitions topic ends equal to the recomputation. Before,
 * the hole went into one array and `unshift(...found)`: beyond ~10^5 records a RangeError,
 * caught as a failed transaction, forever, and every partition stalled.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseProcessorConfig } from '../../../services/processor/config.ts';
import { startProcessor, type RunningProcessor } from '../../../services/processor/main.ts';
import type { EventRecord } from '../../../services/shared/core/event-record.ts';
import { createEventCodec } from '../../../services/shared/io/avro-codec.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import type { OutgoingRecord } from '../../../services/shared/kafka/io/port.ts';
import { brokersFromEnv, testKafkaPort } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import {
  counterValue,
  pipelineTopics,
  processorFlags,
  type PipelineTopics,
} from '../pipeline/pipeline-harness.ts';
import { publishedAndRecomputed } from './processor-e2e.ts';

const HOLE = 500_000;
const CAP = 5000;
const VMS = 50;
const WALK = ['running', 'pre-copy-prepare', 'pre-copy', 'stop-copy-prepare', 'stop-copy', 'stop'];
const T0 = 1_795_798_176_000_000;

interface Committed {
  inputs: { partition: number; first: string; next: number }[];
}

/** The processor in this process, its transactions' input ranges collected from its debug log. */
async function startWithLog(
  brokers: readonly string[],
  topics: PipelineTopics,
  groupId: string,
  committed: Committed[],
): Promise<RunningProcessor> {
  const flags: Record<string, string | string[]> = {};
  const list = processorFlags(brokers, topics, groupId);
  for (let i = 0; i < list.length; i += 2)
    flags[(list[i] as string).slice(2)] = list[i + 1] as string;
  flags['brokers'] = [...brokers];
  flags['max-records-per-transaction'] = String(CAP);
  const logger = createLogger({
    level: 'debug',
    write: (line) => {
      if (line.includes('"msg":"Transaction committed."'))
        committed.push(JSON.parse(line) as Committed);
      else if (process.env['VFIO_TEST_LOG'] === '1') console.error(line);
    },
  });
  return startProcessor(parseProcessorConfig({ env: {}, flags }), logger);
}

test('a group offset reset past 500k records: the hole is filled in capped batches while the other partition moves', async (t) => {
  const brokers = brokersFromEnv();
  const topics = await pipelineTopics(t, brokers, 2);
  const groupId = `processor-${randomUUID()}`;
  const codec = createEventCodec();
  const port = testKafkaPort(t, brokers);
  const producer = await port.producer();
  t.after(() => producer.close());
  const sequences = new Map<string, number>();
  /** `count` events on `partition`, the VMs taking turns, each VM walking its states. */
  const events = (partition: number, count: number): OutgoingRecord[] => {
    const records: OutgoingRecord[] = [];
    for (let i = 0; i < count; i++) {
      const vm = `p${partition}-vm${i % VMS}`;
      const s = (sequences.get(vm) ?? 0) + 1;
      sequences.set(vm, s);
      const event: EventRecord = {
        host: 'h',
        vm,
        sessionId: 's1',
        sequence: s,
        qemuTimestampMicros: T0 + s * 10_000,
        receivedMicros: T0 + s * 10_000 + 500,
        event: 'VFIO_MIGRATION',
        qomPath: '/machine/peripheral/vf0',
        deviceId: 'vf0',
        deviceState: WALK[s % WALK.length] as string,
        migrationStatus: null,
        data: null,
      };
      records.push({
        topic: topics.events,
        partition,
        key: Buffer.from(`h/${vm}`),
        value: codec.encode(event),
      });
    }
    return records;
  };
  const send = async (records: OutgoingRecord[]) =>
    assert.deepEqual((await producer.send(records)).refused, []);
  const consumed = async (p: RunningProcessor) =>
    counterValue(await p.registry.metrics(), 'vfio_processor_records_consumed_total');

  // 1. Some events on both partitions processed and committed, then the processor stops.
  await send([...events(0, 600), ...events(1, 600)]);
  const committed: Committed[] = [];
  const first = await startWithLog(brokers, topics, groupId, committed);
  await waitFor(async () => (await consumed(first)) >= 1200, {
    timeoutMs: 60_000,
    intervalMs: 100,
    description: 'the first 1200 events processed',
  });
  await first.stop();

  // 2. The backlog: 500k events on partition 0, in bulk; the group's offset moves past it.
  const started = Date.now();
  for (let sent = 0; sent < HOLE; sent += 50_000) await send(events(0, 50_000));
  t.diagnostic(`produced ${HOLE} events in ${Date.now() - started} ms`);
  const mover = await port.groupConsumer({ groupId, topics: [topics.events] });
  await waitFor(async () => mover.membership() !== null || (await mover.nextBatch(1, 200), false), {
    timeoutMs: 30_000,
    intervalMs: 100,
    description: 'the offset mover in the group',
  });
  const holeEnd = 600 + HOLE;
  await mover.commit([{ topic: topics.events, partition: 0, offset: BigInt(holeEnd) }]);
  await mover.close();
  await send(events(0, 60));

  // 3. Restarted: state says 600, the consumer starts at 500,600. Partition 1 gets events all along.
  committed.length = 0;
  const second = await startWithLog(brokers, topics, groupId, committed);
  t.after(() => second.stop());
  let feeding = true;
  const feeder = (async () => {
    while (feeding) {
      await send(events(1, 20));
      await sleep(200);
    }
  })();
  let heapMax = 0;
  const p0Done = () =>
    committed.some((c) => c.inputs.some((i) => i.partition === 0 && i.next >= holeEnd + 60));
  await waitFor(
    () => {
      heapMax = Math.max(heapMax, process.memoryUsage().heapUsed);
      return p0Done();
    },
    {
      timeoutMs: 240_000,
      intervalMs: 100,
      description: 'partition 0 through the hole and past it',
    },
  );
  feeding = false;
  await feeder;
  t.diagnostic(`heap at most ${Math.round(heapMax / 2 ** 20)} MiB during the fill`);

  // Every transaction within the cap.
  for (const c of committed) {
    const records = c.inputs.reduce((n, i) => n + (i.next - Number(i.first)), 0);
    assert.ok(records <= CAP, `a transaction of ${records} records`);
  }
  // Partition 1 committed while partition 0 was still inside the hole.
  const p0Positions = committed.map((c) => c.inputs.find((i) => i.partition === 0)?.next ?? null);
  const lastInHole = p0Positions.findLastIndex((n) => n !== null && n < holeEnd);
  const firstInHole = p0Positions.findIndex((n) => n !== null && n < holeEnd);
  assert.ok(firstInHole >= 0 && lastInHole > firstInHole, 'the hole took several transactions');
  const p1During = committed
    .slice(firstInHole, lastInHole)
    .filter((c) => c.inputs.some((i) => i.partition === 1)).length;
  assert.ok(p1During > 0, 'partition 1 committed while partition 0 filled its hole');
  t.diagnostic(
    `${lastInHole - firstInHole + 1} transactions filled the hole; ${p1During} of them also carried partition 1`,
  );

  const holes = async (result: string): Promise<number> => {
    const line = (await second.registry.metrics())
      .split('\n')
      .find((l) => l.startsWith(`vfio_processor_input_holes_total{result="${result}"}`));
    return Number(line?.split(' ').at(-1) ?? NaN);
  };
  assert.equal(await holes('filled'), 1);
  assert.equal(await holes('accepted'), 0);

  // Settled: the transitions topic equals the recomputation from the whole events topic.
  await waitFor(async () => (await consumed(second)) >= HOLE + 60, {
    timeoutMs: 60_000,
    intervalMs: 200,
    description: 'every record consumed',
  });
  await second.stop();
  const after = await publishedAndRecomputed(t, brokers, topics);
  assert.ok((after.recomputed.get(0)?.length ?? 0) > HOLE / 2, 'the events make transitions');
  assert.deepEqual(after.published, after.recomputed);
});
