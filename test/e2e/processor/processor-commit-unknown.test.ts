/**
 * An unanswered EndTxn (issue 18: "a commit whose outcome is unknown"), injected into a real Kafka
 * port: one transaction commits but its answer is lost, another is never sent and "times out".
 * Both reach the processor as KAFKA_OUTCOME_UNKNOWN; the restore after InitProducerId decides
 * (committed / not_committed), `transitions_published_total` counts exactly the transitions in the
 * topic, and the topic equals its recomputation.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { parseProcessorConfig } from '../../../services/processor/config.ts';
import { startProcessor } from '../../../services/processor/main.ts';
import { TelemetryError } from '../../../services/shared/core/errors.ts';
import type { KafkaPort, Producer } from '../../../services/shared/kafka/io/port.ts';
import { brokersFromEnv, testKafkaPort } from '../../helpers/kafka.ts';
import { metricValue } from '../../helpers/metrics-text.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { quietLogger } from '../collector/collector-harness.ts';
import {
  expectedTransitions,
  pipelineTopics,
  processorFlags,
  readTransitions,
  runFleet,
} from '../pipeline/pipeline-harness.ts';
import { assertEqualsRecomputation } from './processor-e2e.ts';

const FLEET = { vms: 6, devicesPerVm: 2, migrationsPerVmPerMinute: 2, failureRate: 0.1, seed: 18 };
/** Which commits (1-based) lose their answer: the first after it committed, the second unsent. */
const COMMITTED_UNANSWERED = 3;
const UNSENT_UNANSWERED = 6;

const unanswered = (): TelemetryError =>
  new TelemetryError(
    'KAFKA_OUTCOME_UNKNOWN',
    'injected: the transaction commit was not answered: committed or not is unknown.',
    { details: { refused: [], written: [], kafkaErrors: [] } },
  );

test('unanswered commits: the restore decides, transitions_published_total counts what committed', async (t) => {
  const brokers = brokersFromEnv();
  const topics = await pipelineTopics(t, brokers, 1);
  const real = testKafkaPort(t, brokers, 'processor-commit-unknown');
  let commits = 0;
  const injected: string[] = [];
  const port: KafkaPort = {
    ...real,
    producer: async (options) => {
      const producer = await real.producer(options);
      const faulty: Producer = {
        initTransactions: () => producer.initTransactions(),
        connect: (topics) => producer.connect(topics),
        send: (records) => producer.send(records),
        close: () => producer.close(),
        commitTransaction: async (transaction) => {
          commits++;
          if (commits === COMMITTED_UNANSWERED) {
            await producer.commitTransaction(transaction);
            injected.push(`commit ${commits}: committed, answer lost`);
            throw unanswered();
          }
          if (commits === UNSENT_UNANSWERED) {
            injected.push(`commit ${commits}: never sent`);
            throw unanswered();
          }
          return producer.commitTransaction(transaction);
        },
      };
      return faulty;
    },
  };
  const flags: Record<string, string | string[]> = {};
  const list = processorFlags(brokers, topics, `processor-${randomUUID()}`);
  for (let i = 0; i < list.length; i += 2)
    flags[(list[i] as string).slice(2)] = list[i + 1] as string;
  flags['brokers'] = [...brokers];
  // Small transactions, so that the injected ones come early and others follow.
  flags['max-records-per-transaction'] = '20';
  const processor = await startProcessor(
    parseProcessorConfig({ env: {}, flags }),
    quietLogger(),
    port,
  );
  t.after(() => processor.stop());

  const fleet = await runFleet(t, brokers, topics.events, { ...FLEET, migrations: 60, speed: 20 });
  await fleet.delivered;
  const expected = expectedTransitions(fleet.transcripts);
  const actual = await readTransitions(t, brokers, topics.transitions, expected.length);
  assert.deepEqual(actual, expected);
  await assertEqualsRecomputation(t, brokers, topics);

  const metric = async (name: string, labels: Record<string, string> = {}) =>
    metricValue(await processor.registry.metrics(), name, labels, NaN);
  assert.deepEqual(injected, [
    `commit ${COMMITTED_UNANSWERED}: committed, answer lost`,
    `commit ${UNSENT_UNANSWERED}: never sent`,
  ]);
  const outcomes = 'vfio_processor_commit_outcomes_unknown_total';
  await waitFor(
    async () =>
      (await metric(outcomes, { settled: 'committed' })) +
        (await metric(outcomes, { settled: 'not_committed' })) ===
      2,
    { timeoutMs: 30_000, description: 'both unanswered commits settled' },
  );
  assert.equal(await metric(outcomes, { settled: 'committed' }), 1);
  assert.equal(await metric(outcomes, { settled: 'not_committed' }), 1);
  assert.equal(
    await metric('vfio_processor_transaction_failures_total', { kind: 'outcome_unknown' }),
    2,
  );
  // The transaction that committed without an answer is counted once, the unsent one not at all.
  assert.equal(await metric('vfio_processor_transitions_published_total'), expected.length);
});
