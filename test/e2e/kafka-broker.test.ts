/**
 * The local broker (infra/kafka, Apache Kafka 4.x in KRaft mode) works with kafkajs 2.2.4, the
 * client every stage uses: idempotent produce with acks=-1, a consumer group that commits, admin
 * calls; and the scripts stop a broker by PID and bring it back with its data on the same port.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { test } from 'node:test';
import { Partitioners, type Kafka } from 'kafkajs';
import { brokersFromEnv, startPrivateBroker, testKafka, uniqueTopic } from '../helpers/kafka.ts';
import { waitFor } from '../helpers/wait-for.ts';

interface Received {
  key: string;
  value: string;
  partition: number;
}

/** Sends `${key}:${i}` for i in [0, perKey) per key, interleaved, in batches of `batchSize`. */
async function produceKeyed(
  kafka: Kafka,
  topic: string,
  keys: readonly string[],
  perKey: number,
  batchSize: number,
): Promise<void> {
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  try {
    const messages = Array.from({ length: perKey }, (_, i) =>
      keys.map((key) => ({ key, value: `${key}:${i}` })),
    ).flat();
    for (let start = 0; start < messages.length; start += batchSize) {
      const metadata = await producer.send({
        topic,
        acks: -1,
        messages: messages.slice(start, start + batchSize),
      });
      assert.ok(metadata.every((m) => m.errorCode === 0));
    }
  } finally {
    await producer.disconnect();
  }
}

/** Reads `topic` from the beginning in a new group until `count` messages arrived. */
async function consumeAll(
  kafka: Kafka,
  topic: string,
  count: number,
): Promise<{ groupId: string; received: Received[] }> {
  const groupId = `test-${randomUUID()}`;
  // A short fetch long-poll: disconnect() waits for the fetch in flight (default up to 5 s).
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 });
  const received: Received[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: ({ message, partition }) => {
        received.push({
          key: message.key?.toString() ?? '',
          value: message.value?.toString() ?? '',
          partition,
        });
        return Promise.resolve();
      },
    });
    await waitFor(() => received.length >= count, {
      timeoutMs: 30_000,
      description: `${count} messages from ${topic}`,
    });
  } finally {
    await consumer.disconnect();
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
  const kafka = testKafka(brokers);
  const keys = ['vm-a', 'vm-b', 'vm-c', 'vm-d', 'vm-e'];
  const perKey = 40;

  await produceKeyed(kafka, topic, keys, perKey, 25);
  const { groupId, received } = await consumeAll(kafka, topic, keys.length * perKey);

  assert.equal(received.length, keys.length * perKey);
  for (const key of keys) {
    const expected = Array.from({ length: perKey }, (_, i) => `${key}:${i}`);
    assert.deepEqual(valuesOf(received, key), expected, `order of ${key}`);
    const partitions = new Set(received.filter((r) => r.key === key).map((r) => r.partition));
    assert.equal(partitions.size, 1, `${key} stays on one partition`);
  }

  const admin = kafka.admin();
  await admin.connect();
  t.after(() => admin.disconnect());
  const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
  const committed = (offsets?.partitions ?? []).reduce((sum, p) => sum + Number(p.offset), 0);
  assert.equal(committed, keys.length * perKey, 'the group committed every message');
});

test('stop.sh stops a private broker by PID; start.sh brings it back on the same port with its data', async (t) => {
  const broker = await startPrivateBroker(t);
  const topic = await uniqueTopic(t, 'kafka-restart', { brokers: broker.brokers });
  const kafka = testKafka(broker.brokers);
  await produceKeyed(kafka, topic, ['vm-a'], 10, 10);

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

  const { received } = await consumeAll(kafka, topic, 10);
  assert.deepEqual(
    valuesOf(received, 'vm-a'),
    Array.from({ length: 10 }, (_, i) => `vm-a:${i}`),
  );
});
