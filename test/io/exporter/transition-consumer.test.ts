/**
 * The exporter's consumer against an in-memory group consumer (the real adapter is covered by
 * test/e2e/exporter): what it asks the port for, readiness from membership, background commits of
 * observed offsets only, and what it does with errors.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  startTransitionConsumer,
  type TransitionConsumerOptions,
} from '../../../services/exporter/io/transition-consumer.ts';
import type { MessageRef } from '../../../services/exporter/io/transition-sink.ts';
import { TelemetryError } from '../../../services/shared/core/errors.ts';
import type {
  ConsumedBatch,
  ConsumedRecord,
  GroupConsumer,
  GroupConsumerOptions,
  GroupMembership,
  TopicPartitionOffset,
} from '../../../services/shared/kafka/io/port.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const TOPIC = 'transitions';

function membership(generationId: number, partitions: number[]): GroupMembership {
  return {
    groupId: 'g',
    generationId,
    memberId: 'm',
    assigned: partitions.map((partition) => ({ topic: TOPIC, partition })),
  };
}

function record(partition: number, offset: bigint): ConsumedRecord {
  return {
    topic: TOPIC,
    partition,
    offset,
    key: null,
    value: Buffer.from([Number(offset)]),
    headers: [],
    timestampMs: 0,
  };
}

/** A group consumer fed by the test: `push` queues a batch or an error for `nextBatch`. */
function fakeGroupConsumer() {
  const queue: Array<ConsumedRecord[] | Error> = [];
  const listeners: Array<(m: GroupMembership | null) => void> = [];
  const commits: TopicPartitionOffset[][] = [];
  const maxRecordsSeen: number[] = [];
  let current: GroupMembership | null = null;
  let closed = false;
  const consumer: GroupConsumer = {
    async nextBatch(maxRecords, waitMs): Promise<ConsumedBatch | null> {
      maxRecordsSeen.push(maxRecords);
      const deadline = Date.now() + waitMs;
      while (!closed && queue.length === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 5));
      }
      if (closed) return null;
      const next = queue.shift();
      if (next instanceof Error) throw next;
      return { records: next ?? [], membership: current ?? membership(0, []) };
    },
    membership: () => current,
    seek: () => false,
    onMembershipChange: (listener) => void listeners.push(listener),
    commit: (offsets) => {
      commits.push([...offsets]);
      return Promise.resolve();
    },
    close: () => {
      closed = true;
      return Promise.resolve();
    },
  };
  return {
    consumer,
    commits,
    maxRecordsSeen,
    push: (item: ConsumedRecord[] | Error) => queue.push(item),
    setMembership(m: GroupMembership | null) {
      current = m;
      for (const l of listeners) l(m);
    },
    isClosed: () => closed,
  };
}

async function start(
  t: import('node:test').TestContext,
  overrides: Partial<TransitionConsumerOptions> = {},
) {
  const fake = fakeGroupConsumer();
  const asked: GroupConsumerOptions[] = [];
  const seen: MessageRef[] = [];
  const fatal: unknown[] = [];
  const running = await startTransitionConsumer({
    port: {
      groupConsumer: (o) => {
        asked.push(o);
        return Promise.resolve(fake.consumer);
      },
    },
    topic: TOPIC,
    groupId: 'g',
    fromBeginning: true,
    sink: { observe: (_value, _now, where) => void seen.push(where) },
    logger: createLogger({ level: 'error', write: () => {} }),
    maxRecords: 50,
    maxBytes: 65_536,
    onFatal: (error) => fatal.push(error),
    commitIntervalMs: 20,
    ...overrides,
  });
  t.after(() => running.stop());
  return { fake, asked, seen, fatal, running };
}

test('asks for a read_committed group consumer with bounded fetches', async (t) => {
  const { asked, fake } = await start(t, { fromBeginning: false });
  assert.deepEqual(asked, [
    {
      groupId: 'g',
      topics: [TOPIC],
      isolation: 'read_committed',
      startWith: 'latest',
      maxBytes: 65_536,
    },
  ]);
  await waitFor(() => fake.maxRecordsSeen.length > 0, { description: 'a fetch' });
  assert.ok(fake.maxRecordsSeen.every((n) => n === 50));
});

test('readiness follows membership', async (t) => {
  const { fake, running } = await start(t);
  assert.deepEqual(running.readiness(), { ready: false, reasons: ['kafka: joining g'] });
  fake.setMembership(membership(1, []));
  assert.equal(running.readiness().ready, false);
  assert.match(running.readiness().reasons[0] ?? '', /no partition of transitions/);
  fake.setMembership(membership(2, [2, 0]));
  assert.deepEqual(running.readiness(), {
    ready: true,
    reasons: ['kafka: transitions partitions 0,2'],
  });
  fake.setMembership(null);
  assert.equal(running.readiness().ready, false);
  await running.stop();
  assert.deepEqual(running.readiness(), { ready: false, reasons: ['kafka: consumer stopped'] });
});

test('observes every record; commits the next offset per partition in the background', async (t) => {
  const { fake, seen } = await start(t);
  fake.setMembership(membership(1, [0, 1]));
  fake.push([record(0, 10n), record(1, 3n), record(0, 11n)]);
  await waitFor(() => fake.commits.length > 0, { description: 'a background commit' });
  assert.deepEqual(seen, [
    { partition: 0, offset: '10' },
    { partition: 1, offset: '3' },
    { partition: 0, offset: '11' },
  ]);
  assert.deepEqual(
    fake.commits.flat().sort((a, b) => a.partition - b.partition),
    [
      { topic: TOPIC, partition: 0, offset: 12n },
      { topic: TOPIC, partition: 1, offset: 4n },
    ],
  );
});

test('stop commits what was observed, then closes; a lost partition is not committed', async (t) => {
  const { fake, running, seen } = await start(t, { commitIntervalMs: 60_000 });
  fake.setMembership(membership(1, [0, 1]));
  fake.push([record(0, 5n), record(1, 7n)]);
  await waitFor(() => seen.length === 2, { description: 'two records observed' });
  fake.setMembership(membership(2, [1]));
  await running.stop();
  assert.deepEqual(fake.commits, [[{ topic: TOPIC, partition: 1, offset: 8n }]]);
  assert.ok(fake.isClosed());
});

test('a retriable fetch error is retried and not ready meanwhile; another is fatal', async (t) => {
  const { fake, running, fatal, seen } = await start(t);
  fake.setMembership(membership(1, [0]));
  fake.push(new TelemetryError('KAFKA_UNAVAILABLE', 'broker gone'));
  await waitFor(() => !running.readiness().ready, { description: 'not ready while retrying' });
  assert.match(running.readiness().reasons[0] ?? '', /retrying: broker gone/);
  fake.push([record(0, 1n)]);
  await waitFor(() => seen.length === 1 && running.readiness().ready, {
    timeoutMs: 5000,
    description: 'fetching again after the retry',
  });
  assert.equal(fatal.length, 0);

  const bug = new Error('not a Kafka error');
  fake.push(bug);
  await waitFor(() => fatal.length === 1, { description: 'fatal' });
  assert.equal(fatal[0], bug);
  assert.match(running.readiness().reasons[0] ?? '', /consumer failed/);
});
