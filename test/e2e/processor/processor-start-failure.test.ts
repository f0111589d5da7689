/**
 * The stage contract for the processor (services/shared/io/stage.ts): start-up fails after the
 * HTTP server, the producer and the group consumer have started against a real broker (the
 * consumer breaks as the loop is wired); the consumer (leaving its group), the producer and the
 * port are closed in reverse order, then the HTTP server, and no socket or timer is left running.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setImmediate as tick } from 'node:timers/promises';
import { test } from 'node:test';
import { parseProcessorConfig } from '../../../services/processor/config.ts';
import { startProcessor } from '../../../services/processor/main.ts';
import { isTelemetryError, TelemetryError } from '../../../services/shared/core/errors.ts';
import type { KafkaPort } from '../../../services/shared/kafka/io/port.ts';
import { brokersFromEnv, kafkaPortFor } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { quietLogger } from '../collector/collector-harness.ts';
import { pipelineTopics, processorFlags } from '../pipeline/pipeline-harness.ts';

test('processor: start-up fails after the consumer joined → consumer, producer, Kafka port and HTTP server closed in reverse order, nothing left running', async (t) => {
  const brokers = brokersFromEnv();
  const topics = await pipelineTopics(t, brokers, 1);

  // A fresh broker loads its group coordinator lazily (COORDINATOR_LOAD_IN_PROGRESS): join a
  // throwaway group first, so that the processor's start fails where this test wants it to.
  const warmUp = kafkaPortFor(brokers, 'processor-start-failure-warm-up');
  await waitFor(
    async () => {
      const consumer = await warmUp.groupConsumer({
        groupId: `warm-up-${randomUUID()}`,
        topics: [topics.events],
        isolation: 'read_committed',
        startWith: 'earliest',
        sessionTimeoutMs: 10_000,
        heartbeatIntervalMs: 3000,
        maxWaitMs: 100,
      });
      await consumer.close();
      return true;
    },
    { timeoutMs: 60_000, intervalMs: 500, description: 'the group coordinator is loaded' },
  );
  await warmUp.close();

  await tick();
  const before = process
    .getActiveResourcesInfo()
    .filter((r) => r.endsWith('Wrap') || r === 'Timeout');
  const closed: string[] = [];
  /** `target` with its close recorded (a Proxy: the port's objects are class instances). */
  const recordingClose = <T extends { close(): Promise<void> }>(
    target: T,
    name: string,
    broken?: string,
  ): T =>
    new Proxy(target, {
      get: (object, key) => {
        if (key === broken) {
          return () => {
            throw new TelemetryError('KAFKA_UNAVAILABLE', `${String(key)} broke (injected).`);
          };
        }
        if (key === 'close') {
          return () => {
            closed.push(name);
            return object.close();
          };
        }
        const value = Reflect.get(object, key, object) as unknown;
        // Bound: the client's methods use private fields, which a Proxy as `this` has not.
        return typeof value === 'function' ? (value as () => unknown).bind(object) : value;
      },
    });
  const real = kafkaPortFor(brokers, 'processor-start-failure');
  const port: KafkaPort = {
    ...real,
    producer: async (options) => {
      return recordingClose(await real.producer(options), 'producer');
    },
    groupConsumer: async (options) => {
      return recordingClose(await real.groupConsumer(options), 'consumer', 'onMembershipChange');
    },
    close: () => (closed.push('port'), real.close()),
  };
  const flags: Record<string, string | string[]> = {};
  const list = processorFlags(brokers, topics, `processor-${randomUUID()}`);
  for (let i = 0; i < list.length; i += 2)
    flags[(list[i] as string).slice(2)] = list[i + 1] as string;
  flags['brokers'] = [...brokers];
  flags['http-host'] = '127.0.0.1';
  await assert.rejects(
    startProcessor(parseProcessorConfig({ env: {}, flags }), quietLogger(), port),
    (error) => isTelemetryError(error, 'KAFKA_UNAVAILABLE'),
  );
  assert.deepEqual(closed, ['consumer', 'producer', 'port']);
  const left = (): string[] => {
    const pool = [...before];
    return process
      .getActiveResourcesInfo()
      .filter((r) => r.endsWith('Wrap') || r === 'Timeout')
      .filter((r) => {
        const i = pool.indexOf(r);
        if (i === -1) return true;
        pool.splice(i, 1);
        return false;
      });
  };
  await waitFor(() => left().length === 0, {
    timeoutMs: 15_000,
    description: `no socket or timer left running (left: ${left().join(',')})`,
  });
});
