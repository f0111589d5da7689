/**
 * The local broker (infra/kafka, Apache Kafka 4.x in KRaft mode) works with the Kafka port every
 * stage uses (services/shared/kafka/io/port.ts over @platformatic/kafka): idempotent produce with
 * acks=-1, a consumer group that commits, admin calls; and the scripts stop a broker by PID and
 * bring it back with its data on the same port.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { test } from 'node:test';
import type { KafkaPort, TopicPartitionOffset } from '../../services/shared/kafka/io/port.ts';
import {
  brokersFromEnv,
  startPrivateBroker,
  testKafkaPort,
  uniqueTopic,
} from '../helpers/kafka.ts';
import { waitFor } from '../helpers/wait-for.ts';

interface Received {
  key: string;
  value: string;
  partition: number;
}

/**
 * Sends `${key}:${i}` for i in [0, perKey) per key, interleaved, in batches of `batchSize`; key
 * number k goes to partition k mod `partitions` (the stages choose partitions themselves).
 */
async function produceKeyed(
  port: KafkaPort,
  topic: string,
  keys: readonly string[],
  perKey: number,
  batchSize: number,
  partitions = 1,
): Promise<void> {
  const producer = await port.producer();
  try {
    const records = Array.from({ length: perKey }, (_, i) =>
      keys.map((key, k) => ({
        topic,
        partition: k % partitions,
        key: Buffer.from(key),
        value: Buffer.from(`${key}:${i}`),
      })),
    ).flat();
    for (let start = 0; start < records.length; start += batchSize) {
      const batch = records.slice(start, start + batchSize);
      const result = await producer.send(batch);
      assert.deepEqual(result.refused, []);
      assert.equal(
        result.acks.reduce((sum, ack) => sum + ack.count, 0),
        batch.length,
      );
    }
  } finally {
    await producer.close();
  }
}

/** Reads `topic` from the beginning in a new group until `count` records arrived, committing each batch. */
async function consumeAll(
  port: KafkaPort,
  topic: string,
  count: number,
): Promise<{ groupId: string; received: Received[] }> {
  const groupId = `test-${randomUUID()}`;
  const consumer = await port.groupConsumer({ groupId, topics: [topic], maxWaitMs: 200 });
  const received: Received[] = [];
  try {
    await waitFor(
      async () => {
        const batch = await consumer.nextBatch(100, 500);
        if (batch === null || batch.records.length === 0) return received.length >= count;
        const next = new Map<number, TopicPartitionOffset>();
        for (const record of batch.records) {
          received.push({
            key: record.key?.toString() ?? '',
            value: record.value?.toString() ?? '',
            partition: record.partition,
          });
          next.set(record.partition, {
            topic,
            partition: record.partition,
            offset: record.offset + 1n,
          });
        }
        await consumer.commit([...next.values()]);
        return received.length >= count;
      },
      { timeoutMs: 30_000, description: `${count} messages from ${topic}` },
    );
  } finally {
    await consumer.close();
  }
  return { groupId, received };
}

function valuesOf(received: readonly Received[], key: string): string[] {
  return received.filter((r) => r.key === key).map((r) => r.value);
}

/** True while `pid` is a live process; a zombie keeps its /proc entry but counts as gone. */
function isRunning(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function refusesConnections(address: string): Promise<boolean> {
  const [host, port] = address.split(':');
  return new Promise((resolve) => {
    const socket = connect({ host, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

test('keyed messages from an idempotent producer come back in order per key through a group that commits', async (t) => {
  const brokers = brokersFromEnv();
  const topic = await uniqueTopic(t, 'kafka-broker', { brokers, numPartitions: 3 });
  const port = testKafkaPort(t, brokers);
  const keys = ['vm-a', 'vm-b', 'vm-c', 'vm-d', 'vm-e'];
  const perKey = 40;

  await produceKeyed(port, topic, keys, perKey, 25, 3);
  const { groupId, received } = await consumeAll(port, topic, keys.length * perKey);

  assert.equal(received.length, keys.length * perKey);
  for (const key of keys) {
    const expected = Array.from({ length: perKey }, (_, i) => `${key}:${i}`);
    assert.deepEqual(valuesOf(received, key), expected, `order of ${key}`);
    const partitions = new Set(received.filter((r) => r.key === key).map((r) => r.partition));
    assert.equal(partitions.size, 1, `${key} stays on one partition`);
  }

  const committed = (
    await port.committedOffsets(
      groupId,
      [0, 1, 2].map((partition) => ({ topic, partition })),
    )
  ).reduce((sum, p) => sum + Number(p.offset), 0);
  assert.equal(committed, keys.length * perKey, 'the group committed every message');
});

test('stop.sh stops a private broker by PID; start.sh brings it back on the same port with its data', async (t) => {
  const broker = await startPrivateBroker(t);
  const topic = await uniqueTopic(t, 'kafka-restart', { brokers: broker.brokers });
  const port = testKafkaPort(t, broker.brokers);
  await produceKeyed(port, topic, ['vm-a'], 10, 10);

  const pid = await broker.readPid();
  assert.ok(pid !== undefined && isRunning(pid));
  await broker.stop();
  assert.equal(isRunning(pid), false, 'the broker process is gone');
  assert.equal(await broker.readPid(), undefined, 'the pid file is removed');
  const [address = ''] = broker.brokers;
  assert.ok(await refusesConnections(address));

  await broker.start();
  const restartedPid = await broker.readPid();
  assert.ok(restartedPid !== undefined && restartedPid !== pid && isRunning(restartedPid));
  assert.equal((await readFile(`${broker.dir}/bootstrap`, 'utf8')).trim(), address);

  const { received } = await consumeAll(port, topic, 10);
  assert.deepEqual(
    valuesOf(received, 'vm-a'),
    Array.from({ length: 10 }, (_, i) => `vm-a:${i}`),
  );
});
