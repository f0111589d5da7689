import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MultipleErrors, NetworkError, ResponseError } from '@platformatic/kafka';
import { createLogger } from '../../../../services/shared/io/logger.ts';
import { kafkaError, kafkaErrorLabels } from '../../../../services/shared/kafka/io/errors.ts';

/** What the client's retry loop throws when every attempt met a broker refusing a timestamp. */
function refusedTimestamps(): Error {
  const attempt = () =>
    new ResponseError(
      0,
      11,
      { '/topics/0/partitions/0': [32, 'Timestamp 1828000000000 is out of range'] },
      {},
    );
  return new MultipleErrors('Producing messages failed.', [attempt(), attempt(), attempt()]);
}

test('the Kafka error inside PLT_KFK_MULTIPLE names the failure in counters and logs', () => {
  const wrapped = kafkaError(
    'KAFKA_PUBLISH_FAILED',
    'Producing to Kafka failed.',
    refusedTimestamps(),
  );
  assert.deepEqual(kafkaErrorLabels(wrapped), ['INVALID_TIMESTAMP']);

  const lines: string[] = [];
  createLogger({ write: (l) => lines.push(l) }).error('Kafka publish failed.', { error: wrapped });
  const logged = JSON.parse(lines[0] ?? '{}') as { error: Record<string, unknown> };
  assert.deepEqual(logged.error['details'], { kafkaErrors: ['INVALID_TIMESTAMP'] });
  const cause = logged.error['cause'] as Record<string, unknown>;
  assert.equal(cause['code'], 'PLT_KFK_MULTIPLE');
  // Three identical attempts are logged once, with their count.
  assert.equal(cause['errorsTotal'], 3);
  const [response] = cause['errors'] as Array<Record<string, unknown>>;
  const [protocol] = (response?.['errors'] ?? []) as Array<Record<string, unknown>>;
  assert.equal(protocol?.['apiId'], 'INVALID_TIMESTAMP');
  assert.equal(protocol?.['serverErrorMessage'], 'Timestamp 1828000000000 is out of range');
});

test('without a Kafka error the client error code is the label; the wrappers never are', () => {
  const network = new MultipleErrors('Producing messages failed.', [
    new NetworkError('Connection closed'),
  ]);
  assert.deepEqual(kafkaErrorLabels(network), ['PLT_KFK_NETWORK']);
  assert.deepEqual(kafkaErrorLabels(new MultipleErrors('x', [])), ['unknown']);
  assert.deepEqual(kafkaErrorLabels(new Error('boom')), ['unknown']);
});
