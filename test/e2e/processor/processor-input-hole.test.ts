/**
 * The processor's state is behind its consumer: the group's committed offset is past the meta
 * record of the state topic (here moved by hand; in the fault matrix's rolling restart it came
 * from transactions that did not commit while the consumer fetched on). After the restores agree,
 * the records between them are read again from the events topic and processed first — nothing
 * is skipped, so the transitions topic still equals the recomputation.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { brokersFromEnv, testKafkaPort } from '../../helpers/kafka.ts';
import { metricValue } from '../../helpers/metrics-text.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { pipelineTopics, startProcessorInProcess } from '../pipeline/pipeline-harness.ts';
import { inputHoles, resetGroupOffset, walkingEvents } from './input-hole-harness.ts';
import { publishedAndRecomputed } from './processor-e2e.ts';

const VMS = 6;

test('a group offset past the restored state: the hole is read again, no transition is lost', async (t) => {
  const brokers = brokersFromEnv();
  const topics = await pipelineTopics(t, brokers, 1);
  const groupId = `processor-${randomUUID()}`;
  const producer = await testKafkaPort(t, brokers).producer();
  t.after(() => producer.close());
  const events = walkingEvents(topics.events, VMS);
  const consumed = async (processor: { registry: { metrics(): Promise<string> } }) =>
    metricValue(await processor.registry.metrics(), 'vfio_processor_records_consumed_total');

  // 1. 20 events per VM processed and committed (state meta: nextOffset 120), then stopped.
  assert.deepEqual((await producer.send(events(0, 20 * VMS))).refused, []);
  const first = await startProcessorInProcess(t, brokers, topics, groupId);
  await waitFor(async () => (await consumed(first)) >= 20 * VMS, {
    timeoutMs: 60_000,
    intervalMs: 100,
    description: 'the first 120 events processed',
  });
  await first.stop();

  // 2. 40 more per VM; the group's offset is moved past 30 of them, outside any transaction.
  assert.deepEqual((await producer.send(events(0, 40 * VMS))).refused, []);
  await resetGroupOffset(brokers, groupId, topics.events, 0, 50 * VMS);

  // 3. The restarted processor starts at offset 300 with state saying 120.
  const second = await startProcessorInProcess(t, brokers, topics, groupId);
  const holes = async (result: 'filled' | 'accepted' | 'restored_again'): Promise<number> =>
    inputHoles(await second.registry.metrics(), result);
  await waitFor(async () => (await holes('filled')) + (await holes('accepted')) >= 1, {
    timeoutMs: 60_000,
    intervalMs: 200,
    description: 'the restores agreeing on the hole',
  });
  // Then until the transitions topic stops growing (2 s without a new record).
  let last = -1;
  let still = 0;
  await waitFor(
    async () => {
      const count = (await publishedAndRecomputed(t, brokers, topics)).published.get(0)?.length;
      still = count === last ? still + 1 : 0;
      last = count ?? 0;
      return still >= 4;
    },
    { timeoutMs: 60_000, intervalMs: 500, description: 'the transitions topic settled' },
  );
  const after = await publishedAndRecomputed(t, brokers, topics);
  assert.ok((after.recomputed.get(0)?.length ?? 0) > 100, 'the events make transitions');
  assert.deepEqual(after.published, after.recomputed);
  assert.equal(await holes('filled'), 1);
  assert.equal(await holes('accepted'), 0, 'nothing taken as gone');
  assert.equal(await holes('restored_again'), 5, 'the state was read again five times first');
});
