import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { createLogger } from '../../../../services/shared/io/logger.ts';
import type { Refusal } from '../../../../services/shared/kafka/core/refusal.ts';
import { createKafkaRefusals } from '../../../../services/shared/kafka/io/kafka-refusals.ts';
import { metricValue } from '../../../helpers/metrics-text.ts';

const REFUSED = new Error('refused');
const refusal: Refusal = {
  reason: 'authorization',
  resource: 'group g',
  detail: 'no ACL allows READ on group g',
};

function refusals(signal?: AbortSignal) {
  const registry = new Registry();
  const lines: Record<string, unknown>[] = [];
  const seen: Record<string, unknown>[] = [];
  const kafka = createKafkaRefusals({
    registry,
    metricPrefix: 'vfio_test_',
    stage: 'test stage',
    logger: createLogger({
      level: 'info',
      write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>),
    }),
    diagnose: (error, details) => {
      seen.push(details ?? {});
      return Promise.resolve(error === REFUSED ? refusal : undefined);
    },
    retry: { initialMs: 1, maxMs: 2, multiplier: 2 },
    ...(signal === undefined ? {} : { signal }),
  });
  const counted = async (reason: string): Promise<number> =>
    metricValue(await registry.metrics(), 'vfio_test_kafka_refused_total', { reason }, NaN);
  return { kafka, lines, seen, counted };
}

test('refused twice, then accepted: counted twice, one log line, /readyz cause kept until success', async () => {
  const { kafka, lines, seen, counted } = refusals();
  let calls = 0;
  let currentWhileRefused: Refusal | undefined;
  const result = await kafka.retryWhileRefused(
    'joining',
    () => {
      calls++;
      if (calls === 2) currentWhileRefused = kafka.current;
      return calls <= 2 ? Promise.reject(REFUSED) : Promise.resolve('joined');
    },
    { groupId: 'g' },
  );
  assert.equal(result, 'joined');
  assert.equal(calls, 3);
  assert.deepEqual(currentWhileRefused, refusal);
  assert.equal(kafka.current, undefined);
  assert.deepEqual(seen[0], { groupId: 'g' });
  assert.equal(await counted('authorization'), 2);
  assert.equal(await counted('tls'), 0);
  const refusedLines = lines.filter((l) => l['reason'] === 'authorization');
  assert.equal(refusedLines.length, 1, 'rate-limited to one line');
  assert.equal(refusedLines[0]?.['level'], 'error');
  assert.equal(refusedLines[0]?.['resource'], 'group g');
  assert.ok(lines.some((l) => l['msg'] === 'Kafka accepts the test stage again.'));
});

test('a failure that is no refusal is thrown at once, not counted', async () => {
  const { kafka, counted } = refusals();
  const down = new Error('broker down');
  let calls = 0;
  await assert.rejects(
    kafka.retryWhileRefused('joining', () => {
      calls++;
      return Promise.reject(down);
    }),
    (error) => error === down,
  );
  assert.equal(calls, 1);
  assert.equal(await counted('authorization'), 0);
});

test('a stop while refused ends the wait with the refusal', async () => {
  const controller = new AbortController();
  const { kafka } = refusals(controller.signal);
  let calls = 0;
  await assert.rejects(
    kafka.retryWhileRefused('joining', () => {
      if (++calls === 3) controller.abort();
      return Promise.reject(REFUSED);
    }),
    (error) => error === REFUSED,
  );
  assert.equal(calls, 3);
});
