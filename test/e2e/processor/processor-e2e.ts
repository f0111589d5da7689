/**
 * The processor's own e2e check, stronger than "equal to replay": every partition of the
 * transitions topic (read_committed) equals `recomputePartition` over the same partition of the
 * events topic, record for record and in order.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { recomputePartition } from '../../../services/processor/core/recompute-partition.ts';
import type { TransitionRecord } from '../../../services/shared/core/transition-record.ts';
import { createEventCodec, createTransitionCodec } from '../../../services/shared/io/avro-codec.ts';
import type { ConsumedRecord } from '../../../services/shared/kafka/io/port.ts';
import { tailTopic, testKafkaPort } from '../../helpers/kafka.ts';
import { describeTransition } from '../pipeline/pipeline-harness.ts';

async function readAll(t: TestContext, brokers: readonly string[], topic: string) {
  const tail = await tailTopic(testKafkaPort(t, brokers, 'processor-e2e-reader'), topic);
  const byPartition = new Map<number, ConsumedRecord[]>();
  for (const record of await tail.next()) {
    const list = byPartition.get(record.partition) ?? [];
    list.push(record);
    byPartition.set(record.partition, list);
  }
  return byPartition;
}

/** Partition → described transitions, as published and as recomputed from the events topic. */
export async function publishedAndRecomputed(
  t: TestContext,
  brokers: readonly string[],
  topics: { events: string; transitions: string },
  prepareTimeoutSeconds = 10,
): Promise<{ published: Map<number, string[]>; recomputed: Map<number, string[]> }> {
  const eventCodec = createEventCodec();
  const transitionCodec = createTransitionCodec();
  const describe = (r: TransitionRecord & { sessionId?: string | null }) =>
    `${describeTransition(r)} ${r.host} ${r.sessionId ?? ''}`;
  const recomputed = new Map<number, string[]>();
  for (const [partition, records] of await readAll(t, brokers, topics.events)) {
    const transitions = recomputePartition(records, {
      decodeEvent: (value) => eventCodec.decode(value),
      prepareTimeoutSeconds,
    });
    if (transitions.length > 0) recomputed.set(partition, transitions.map(describe));
  }
  const published = new Map<number, string[]>();
  for (const [partition, records] of await readAll(t, brokers, topics.transitions)) {
    published.set(
      partition,
      records.map((r) => {
        const decoded = transitionCodec.decode(r.value ?? Buffer.alloc(0));
        assert.equal(decoded.kind, 'record');
        return decoded.kind === 'record' ? describe(decoded.value) : '';
      }),
    );
  }
  return { published, recomputed };
}

export async function assertEqualsRecomputation(
  t: TestContext,
  brokers: readonly string[],
  topics: { events: string; transitions: string },
): Promise<void> {
  const { published, recomputed } = await publishedAndRecomputed(t, brokers, topics);
  assert.deepEqual(published, recomputed);
}
