/**
 * The three-node cluster of infra/kafka (`start.sh --nodes 3`, `node.sh`, `stop.sh`) is the
 * replicated Kafka the stages are written for: three brokers in the metadata, every partition on
 * three of them with two in sync for acks=all. Losing any one node leaves produce working; with a
 * second one hung, acks=all stops acknowledging instead of acknowledging what one broker alone
 * holds; nodes brought back catch up; every acknowledged record is read back; and stop.sh leaves
 * no process of the cluster behind.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  Admin,
  Consumer,
  Producer,
  ProduceAcks,
  findErrorBy,
  stringDeserializers,
  stringSerializers,
} from '@platformatic/kafka';
import { leaderOf, partitionOf, startCluster } from '../../helpers/kafka-cluster.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const PARTITION = 0;
const BATCH = 20;

type StringProducer = Producer<string, string, string, string>;

/** Whether `pid` is still the JVM of node `id` in `dir` (a zombie or a recycled PID is not). */
async function isClusterProcess(pid: number, dir: string, id: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    return cmdline.includes(`${dir}/node-${id}/server.properties`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

test(
  'three-node cluster: RF 3 with min ISR 2 survives one node, stops acking with two gone, stops by PID',
  { timeout: 180_000 },
  async (t) => {
    // Registered before startCluster registers its cleanup, so clients close before the nodes stop.
    const clients: { close(): Promise<void> }[] = [];
    t.after(async () => {
      await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    });
    const cluster = await startCluster(t, { nodes: 3 });
    const bootstrapBrokers = cluster.brokers.split(',');
    const topic = `cluster-${randomUUID()}`;

    const admin = new Admin({ clientId: 'test-cluster-admin', bootstrapBrokers });
    clients.push(admin);
    const metadata = await admin.metadata({ topics: [], forceUpdate: true });
    assert.deepEqual(
      [...metadata.brokers].map(([id, broker]) => [id, `${broker.host}:${broker.port}`]).sort(),
      cluster.nodes.map((node) => [node.id, node.address]),
    );

    await admin.createTopics({
      topics: [topic],
      partitions: 1,
      replicas: 3,
      configs: [{ name: 'min.insync.replicas', value: '2' }],
    });
    await waitFor(
      async () => {
        const state = await partitionOf(cluster.brokers, topic, PARTITION);
        return state.leader > 0 && state.isr.length === 3;
      },
      { timeoutMs: 30_000, intervalMs: 200, description: `${topic} led with 3 replicas in sync` },
    );

    // Idempotent, so acks=all, and retried long enough to ride out a leader change: a leader that
    // is killed is only fenced (and replaced) after broker.session.timeout.ms, 9 s by default.
    const producer: StringProducer = new Producer({
      clientId: 'test-cluster-producer',
      bootstrapBrokers,
      idempotent: true,
      serializers: stringSerializers,
      connectTimeout: 1000,
      retries: 80,
      retryDelay: 250,
    });
    clients.push(producer);
    // No retries and a 2 s acknowledgement timeout, to see a refusal as such.
    const strictProducer: StringProducer = new Producer({
      clientId: 'test-cluster-strict-producer',
      bootstrapBrokers,
      serializers: stringSerializers,
      connectTimeout: 1000,
      timeout: 2000,
      requestTimeout: 5000,
      retries: 0,
    });
    clients.push(strictProducer);

    const acknowledged: string[] = [];
    const sendBatch = async (sender: StringProducer, name: string): Promise<void> => {
      const values = Array.from({ length: BATCH }, (_, i) => `${name}-${i}`);
      // Per send: the client takes `acks` from the send options only (default 1 unless idempotent).
      const result = await sender.send({
        acks: ProduceAcks.ALL,
        messages: values.map((value) => ({ topic, partition: PARTITION, key: name, value })),
      });
      assert.equal(result.offsets?.length, 1, `${name}: one partition acknowledged`);
      acknowledged.push(...values);
    };

    await t.test('produces with acks=all while all three nodes run', async () => {
      await sendBatch(producer, 'all-up');
      await sendBatch(strictProducer, 'all-up-strict');
    });

    const killed = await leaderOf(cluster.brokers, topic, PARTITION);
    await t.test(`produces after the partition leader (node ${killed}) is killed`, async () => {
      await cluster.kill(killed);
      assert.equal(await cluster.pidOf(killed), undefined);
      await sendBatch(producer, 'one-killed');
      const state = await waitFor(
        async () => {
          const now = await partitionOf(cluster.brokers, topic, PARTITION);
          return !now.isr.includes(killed) && now;
        },
        { timeoutMs: 30_000, intervalMs: 200, description: `node ${killed} out of the ISR` },
      );
      assert.notEqual(state.leader, killed);
      assert.equal(state.isr.length, 2);
      await sendBatch(strictProducer, 'one-killed-strict');
    });

    const leader = await leaderOf(cluster.brokers, topic, PARTITION);
    const paused = cluster.nodes
      .map((node) => node.id)
      .find((id) => id !== killed && id !== leader);
    assert.ok(paused !== undefined);
    await t.test(
      `acks=all is not acknowledged by the leader alone (node ${paused} paused)`,
      async () => {
        // The paused node is the last other voter, so the controller quorum is gone too: the ISR
        // cannot shrink to the leader alone, and the leader waits for a follower that never fetches.
        await cluster.pause(paused);
        await assert.rejects(sendBatch(strictProducer, 'one-left'), (error: Error) => {
          assert.ok(
            findErrorBy(error, 'apiId', 'REQUEST_TIMED_OUT') !== null,
            `expected REQUEST_TIMED_OUT in ${error.stack ?? String(error)}`,
          );
          return true;
        });
      },
    );

    await t.test('the paused and the killed node come back and catch up', async () => {
      await cluster.resume(paused);
      await cluster.start(killed);
      await waitFor(
        async () => (await partitionOf(cluster.brokers, topic, PARTITION)).isr.length === 3,
        {
          timeoutMs: 60_000,
          intervalMs: 200,
          description: `${topic} with 3 replicas in sync again`,
        },
      );
      await sendBatch(producer, 'all-back');
    });

    await t.test('a consumer group reads every acknowledged record once, in order', async () => {
      const consumer = new Consumer({
        clientId: 'test-cluster-consumer',
        groupId: `test-${randomUUID()}`,
        bootstrapBrokers,
        deserializers: stringDeserializers,
        maxWaitTime: 500,
      });
      clients.push(consumer);
      const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: 100 });
      const received: string[] = [];
      const last = acknowledged.at(-1);
      // Ends the loop if the last record never arrives, so that the assertion says what is missing.
      const giveUp = setTimeout(() => void stream.close().catch(() => undefined), 30_000);
      for await (const message of stream) {
        received.push(message.value);
        if (message.value === last) break;
      }
      clearTimeout(giveUp);
      await stream.close();
      const acknowledgedSet = new Set(acknowledged);
      assert.deepEqual(
        received.filter((value) => acknowledgedSet.has(value)),
        acknowledged,
      );
      // @platformatic/kafka leaves internal topics out of its metadata; their replicas are on disk.
      for (const node of cluster.nodes) {
        await access(join(cluster.dir, `node-${node.id}`, 'data', '__consumer_offsets-0'));
      }
    });

    await t.test('stop.sh stops every node, by PID', async () => {
      await Promise.all(clients.map((client) => client.close()));
      clients.length = 0;
      const pids = await Promise.all(cluster.nodes.map((node) => cluster.pidOf(node.id)));
      assert.ok(pids.every((pid) => pid !== undefined));
      await cluster.stopAll();
      for (const [i, node] of cluster.nodes.entries()) {
        assert.equal(await isClusterProcess(pids[i] ?? 0, cluster.dir, node.id), false);
        assert.equal(await cluster.pidOf(node.id), undefined);
      }
    });
  },
);
