import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { parseProcessorConfig } from '../../../services/processor/config.ts';
import { startProcessor } from '../../../services/processor/main.ts';
import type { KafkaPort } from '../../../services/shared/kafka/io/port.ts';
import { brokersFromEnv, testKafkaPort } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { quietLogger } from '../collector/collector-harness.ts';
import { pipelineTopics, processorFlags } from '../pipeline/pipeline-harness.ts';

// Issue 9: a processor whose loop fails does not limp on (not ready, consuming nothing, but
// alive): it reports the failure so that `vfio-telemetry process` exits non-zero and its
// supervisor restarts it. The consumer's failure is injected into a real Kafka port.
test('a failed processor loop is reported for the command to exit non-zero', async (t) => {
  const brokers = brokersFromEnv();
  const topics = await pipelineTopics(t, brokers, 1);
  const real = testKafkaPort(t, brokers, 'processor-loop-failure');
  const broken = new Error('injected: the consumer broke');
  let calls = 0;
  const port: KafkaPort = {
    ...real,
    groupConsumer: async (options) => {
      const consumer = await real.groupConsumer(options);
      return {
        ...consumer,
        nextBatch: (maxRecords, waitMs) => {
          calls++;
          return calls > 2 ? Promise.reject(broken) : consumer.nextBatch(maxRecords, waitMs);
        },
        membership: () => consumer.membership(),
        onMembershipChange: (listener) => consumer.onMembershipChange(listener),
        commit: (offsets) => consumer.commit(offsets),
        close: () => consumer.close(),
      };
    },
  };
  const flags: Record<string, string | string[]> = {};
  const list = processorFlags(brokers, topics, `processor-${randomUUID()}`);
  for (let i = 0; i < list.length; i += 2)
    flags[(list[i] as string).slice(2)] = list[i + 1] as string;
  flags['brokers'] = [...brokers];
  const failures: unknown[] = [];
  const processor = await startProcessor(
    parseProcessorConfig({ env: {}, flags }),
    quietLogger(),
    port,
    { onLoopFailed: (error) => failures.push(error) },
  );
  t.after(() => processor.stop());

  await waitFor(() => failures.length > 0, {
    timeoutMs: 60_000,
    intervalMs: 100,
    description: 'the loop failure reported',
  });
  assert.deepEqual(failures, [broken]);
  const ready = await fetch(`${processor.http.url}/readyz`);
  assert.equal(ready.status, 503);
  // The command's shutdown still completes after the failure.
  await processor.stop();
});
