/**
 * Conformance suite of the Kafka port (services/shared/io/kafka-port.ts) against the real broker
 * in KAFKA_BROKERS: what the port's file comment promises, checked through the port only.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test, type TestContext } from 'node:test';
import { isTelemetryError } from '../../../services/shared/core/errors.ts';
import { createKafkaPort } from '../../../services/shared/io/kafka-client.ts';
import type {
  ConsumedRecord,
  GroupConsumer,
  GroupMembership,
  KafkaPort,
  OutgoingRecord,
} from '../../../services/shared/io/kafka-port.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { brokersFromEnv } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const createdTopics = new WeakMap<KafkaPort, string[]>();

/** A port closed after the test, once the topics made with `newTopic` are deleted. */
function openPort(t: TestContext): KafkaPort {
  const port = createKafkaPort({
    brokers: brokersFromEnv(),
    clientId: 'kafka-port-test',
    logger: createLogger({ level: process.env['TEST_LOG_LEVEL'] === 'debug' ? 'debug' : 'error' }),
  });
  createdTopics.set(port, []);
  t.after(async () => {
    try {
      await port.deleteTopics(createdTopics.get(port) ?? []);
    } finally {
      await port.close();
    }
  });
  return port;
}

async function newTopic(
  port: KafkaPort,
  numPartitions = 1,
  configs: Record<string, string> = {},
): Promise<string> {
  const name = `port-${randomUUID()}`;
  createdTopics.get(port)?.push(name);
  await port.createTopics([{ name, numPartitions, replicationFactor: 1, configs }]);
  return name;
}

function record(
  topic: string,
  partition: number,
  value: string,
  key: string | null = null,
): OutgoingRecord {
  return {
    topic,
    partition,
    key: key === null ? null : Buffer.from(key),
    value: Buffer.from(value),
  };
}

async function readAll(
  port: KafkaPort,
  topic: string,
  partitions: number,
  isolation: 'read_committed' | 'read_uncommitted' = 'read_committed',
): Promise<ConsumedRecord[]> {
  const records: ConsumedRecord[] = [];
  await port.readToEnd(
    Array.from({ length: partitions }, (_, partition) => ({ topic, partition, offset: 0n })),
    (r) => records.push(r),
    isolation,
  );
  return records;
}

const values = (records: readonly ConsumedRecord[]): string[] =>
  records.map((r) => r.value?.toString() ?? 'null');

test('send acknowledges each partition with the base offset Kafka assigned, and readToEnd reads it back', async (t) => {
  const port = openPort(t);
  const topic = await newTopic(port, 3);
  const producer = await port.producer();
  t.after(() => producer.close());

  const first = await producer.send([
    record(topic, 0, 'a0', 'k'),
    record(topic, 1, 'b0'),
    record(topic, 0, 'a1'),
    { ...record(topic, 2, 'c0'), headers: [{ key: 'h', value: Buffer.from('v') }] },
  ]);
  assert.deepEqual(first.refused, []);
  const byPartition = new Map(first.acks.map((a) => [a.partition, a]));
  assert.deepEqual(
    [...byPartition.values()].map((a) => [a.partition, a.baseOffset, a.count]).sort(),
    [
      [0, 0n, 2],
      [1, 0n, 1],
      [2, 0n, 1],
    ],
  );
  const second = await producer.send([
    record(topic, 0, 'a2'),
    { ...record(topic, 1, 'tomb'), value: null },
  ]);
  assert.deepEqual(second.acks.map((a) => [a.partition, a.baseOffset, a.count]).sort(), [
    [0, 2n, 1],
    [1, 1n, 1],
  ]);

  const records = await readAll(port, topic, 3);
  const p0 = records.filter((r) => r.partition === 0);
  assert.deepEqual(values(p0), ['a0', 'a1', 'a2']);
  assert.deepEqual(
    p0.map((r) => r.offset),
    [0n, 1n, 2n],
  );
  assert.equal(p0[0]!.key?.toString(), 'k');
  assert.equal(p0[1]!.key, null);
  assert.deepEqual(values(records.filter((r) => r.partition === 1)), ['b0', 'null']);
  const c0 = records.find((r) => r.partition === 2)!;
  assert.deepEqual(
    c0.headers.map((h) => [h.key, h.value.toString()]),
    [['h', 'v']],
  );
  assert.ok(Math.abs(c0.timestampMs - Date.now()) < 60_000);

  const ends = await port.endOffsets(
    [0, 1, 2].map((partition) => ({ topic, partition })),
    'read_uncommitted',
  );
  assert.deepEqual(
    ends.map((e) => e.offset),
    [3n, 2n, 1n],
  );
});

test('describeTopics reports partitions, replication factor, leaders and effective configs', async (t) => {
  const port = openPort(t);
  const topic = await newTopic(port, 2, {
    'cleanup.policy': 'compact',
    'max.message.bytes': '4096',
  });
  const described = await port.describeTopics([topic, `missing-${randomUUID()}`]);
  assert.equal(described.size, 1);
  const description = described.get(topic)!;
  assert.equal(description.partitions, 2);
  assert.equal(description.replicationFactor, 1);
  assert.equal(description.leaders.length, 2);
  assert.ok(description.leaders.every((l) => l >= 0));
  assert.equal(description.configs['cleanup.policy'], 'compact');
  assert.equal(description.configs['max.message.bytes'], '4096');
  assert.ok(description.configs['min.insync.replicas'] !== undefined);

  await port.alterTopicConfigs(topic, { 'retention.ms': '3600000' });
  const altered = (await port.describeTopics([topic])).get(topic)!;
  assert.equal(altered.configs['retention.ms'], '3600000');
  assert.equal(altered.configs['cleanup.policy'], 'compact');

  const brokers = await port.brokerIds();
  assert.ok(brokers.length >= 1);
});

test('a send to a partition the topic does not have fails before anything is written', async (t) => {
  const port = openPort(t);
  const topic = await newTopic(port, 1);
  const producer = await port.producer();
  t.after(() => producer.close());
  await assert.rejects(
    producer.send([record(topic, 0, 'ok'), record(topic, 1, 'nowhere')]),
    (error) => {
      assert.ok(isTelemetryError(error, 'KAFKA_PUBLISH_FAILED'));
      assert.deepEqual(error.details['written'], []);
      return true;
    },
  );
  assert.deepEqual(await readAll(port, topic, 1), []);
});

test('issue 13: 1,000 records to a topic with max.message.bytes 2048 are split, all arrive in order, none refused', async (t) => {
  const port = openPort(t);
  const topic = await newTopic(port, 2, { 'max.message.bytes': '2048' });
  const producer = await port.producer();
  t.after(() => producer.close());
  const records = Array.from({ length: 1000 }, (_, i) =>
    record(topic, i % 2, `value-${i}-${'x'.repeat(100)}`, `key-${i}`),
  );
  const result = await producer.send(records);
  assert.deepEqual(result.refused, []);
  assert.deepEqual(result.acks.map((a) => [a.partition, a.baseOffset, a.count]).sort(), [
    [0, 0n, 500],
    [1, 0n, 500],
  ]);
  const read = await readAll(port, topic, 2);
  for (const partition of [0, 1]) {
    assert.deepEqual(
      values(read.filter((r) => r.partition === partition)),
      records.filter((r) => r.partition === partition).map((r) => r.value!.toString()),
    );
  }
});

test('one record too large for the topic is refused with MESSAGE_TOO_LARGE; its neighbours arrive', async (t) => {
  const port = openPort(t);
  const topic = await newTopic(port, 1, { 'max.message.bytes': '2048' });
  const producer = await port.producer();
  t.after(() => producer.close());
  const result = await producer.send([
    record(topic, 0, 'before'),
    record(topic, 0, 'x'.repeat(4096)),
    record(topic, 0, 'after'),
  ]);
  assert.deepEqual(
    result.refused.map((r) => [r.index, r.reason]),
    [[1, 'MESSAGE_TOO_LARGE']],
  );
  assert.deepEqual(
    result.acks.map((a) => [a.partition, a.count]),
    [[0, 2]],
  );
  assert.deepEqual(values(await readAll(port, topic, 1)), ['before', 'after']);
});

async function joined(consumer: GroupConsumer, assigned: number): Promise<GroupMembership> {
  await waitFor(() => (consumer.membership()?.assigned.length ?? -1) === assigned, {
    timeoutMs: 60_000,
    description: `consumer never got ${assigned} partitions`,
  });
  return consumer.membership()!;
}

test('group consumer: nextBatch hands over records with the membership they were fetched under; commit moves the group', async (t) => {
  const port = openPort(t);
  const topic = await newTopic(port, 2);
  const groupId = `group-${randomUUID()}`;
  const producer = await port.producer();
  t.after(() => producer.close());
  await producer.send(Array.from({ length: 10 }, (_, i) => record(topic, i % 2, `v${i}`)));

  const consumer = await port.groupConsumer({ groupId, topics: [topic] });
  t.after(() => consumer.close());
  const membership = await joined(consumer, 2);
  assert.ok(membership.generationId > 0);
  assert.ok(membership.memberId.length > 0);

  const received: ConsumedRecord[] = [];
  while (received.length < 10) {
    const batch = await consumer.nextBatch(3, 5000);
    assert.ok(batch !== null);
    assert.ok(batch.records.length <= 3);
    assert.deepEqual(batch.membership, membership);
    received.push(...batch.records);
  }
  assert.deepEqual(values(received.filter((r) => r.partition === 0)), [
    'v0',
    'v2',
    'v4',
    'v6',
    'v8',
  ]);
  await consumer.commit([
    { topic, partition: 0, offset: 5n },
    { topic, partition: 1, offset: 3n },
  ]);
  assert.deepEqual(
    (
      await port.committedOffsets(groupId, [
        { topic, partition: 0 },
        { topic, partition: 1 },
      ])
    ).map((c) => c.offset),
    [5n, 3n],
  );
  await consumer.close();
  assert.equal(await consumer.nextBatch(10, 10), null);

  // A new member starts where the group committed.
  const again = await port.groupConsumer({ groupId, topics: [topic] });
  t.after(() => again.close());
  await joined(again, 2);
  const resumed: ConsumedRecord[] = [];
  await waitFor(
    async () => {
      const batch = await again.nextBatch(100, 500);
      resumed.push(...(batch?.records ?? []));
      return resumed.length >= 2;
    },
    { timeoutMs: 30_000, description: 'the resumed consumer read nothing' },
  );
  assert.deepEqual(values(resumed.filter((r) => r.partition === 1)), ['v7', 'v9']);
  assert.deepEqual(values(resumed.filter((r) => r.partition === 0)), []);
});
