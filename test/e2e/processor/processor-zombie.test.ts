import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { brokersFromEnv } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import {
  counterValue,
  expectedTransitions,
  pipelineTopics,
  readTransitions,
  runFleet,
  spawnProcessor,
} from '../pipeline/pipeline-harness.ts';
import { assertEqualsRecomputation } from './processor-e2e.ts';

const FLEET = { vms: 8, devicesPerVm: 2, migrationsPerVmPerMinute: 2, failureRate: 0.1, seed: 21 };

const publishing = async (url: string): Promise<boolean> =>
  counterValue(
    await (await fetch(`${url}/metrics`)).text(),
    'vfio_processor_transitions_published_total',
  ) > 0;

test('a zombie (SIGSTOP past the session timeout, then SIGCONT) doubles and loses nothing', async (t) => {
  const brokers = brokersFromEnv();
  const topics = await pipelineTopics(t, brokers);
  const group = `processor-${randomUUID()}`;
  const fleet = await runFleet(t, brokers, topics.events, {
    ...FLEET,
    migrations: 240,
    speed: 20,
  });
  const zombie = spawnProcessor(t, brokers, topics, group);
  const zombieUrl = await zombie.url;
  const other = spawnProcessor(t, brokers, topics, group);
  const otherUrl = await other.url;
  await waitFor(async () => (await publishing(zombieUrl)) && (await publishing(otherUrl)), {
    timeoutMs: 60_000,
    intervalMs: 100,
    description: 'both processors publishing',
  });
  zombie.child.kill('SIGSTOP');
  // Past the 6 s session timeout: the other processor takes every partition over.
  await sleep(9000);
  zombie.child.kill('SIGCONT');
  assert.equal(fleet.simulator.stats().migrations < 240, true, 'the fleet was still migrating');
  await fleet.delivered;
  const expected = expectedTransitions(fleet.transcripts);
  const actual = await readTransitions(t, brokers, topics.transitions, expected.length);
  assert.deepEqual(actual, expected);
  await assertEqualsRecomputation(t, brokers, topics);
});
