import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  instanceIdProblem,
  parseInstanceIdFile,
  processorKafkaIds,
} from '../../../services/processor/core/instance-identity.ts';
import { parseProcessorConfig } from '../../../services/processor/config.ts';
import { isTelemetryError } from '../../../services/shared/core/errors.ts';

test('instance ids: what Kafka accepts as group.instance.id, a Kubernetes pod name included', () => {
  for (const ok of [
    'processor-7d9f8b6c4-x2x9q',
    'vfio.processor_0',
    '0b1c1c3e-4f1e-4c2a-9f55-5a1f2b3c4d5e',
  ]) {
    assert.equal(instanceIdProblem(ok), null, ok);
  }
  for (const bad of ['', 'a b', 'a/b', 'é', 'x'.repeat(250)]) {
    assert.notEqual(instanceIdProblem(bad), null, bad);
  }
});

test('the id file: trimmed; torn or edited into something invalid is no id', () => {
  assert.equal(parseInstanceIdFile('abc-1\n'), 'abc-1');
  assert.equal(parseInstanceIdFile(''), null);
  assert.equal(parseInstanceIdFile('ab\u0000'), null);
});

test('Kafka ids: transactional.id <group>-<instance>, group.instance.id the instance; a configured transactional id wins', () => {
  assert.deepEqual(processorKafkaIds('vfio-processor', 'p-0', ''), {
    transactionalId: 'vfio-processor-p-0',
    groupInstanceId: 'p-0',
  });
  assert.deepEqual(processorKafkaIds('g', 'p-0', 'fixed'), {
    transactionalId: 'fixed',
    groupInstanceId: 'p-0',
  });
});

test('--instance-id and VFIO_PROCESSOR_INSTANCE_ID are checked like group.instance.id', () => {
  const env = { KAFKA_BROKERS: 'k:9092' };
  assert.equal(parseProcessorConfig({ env }).instanceId, '');
  assert.equal(
    parseProcessorConfig({ env: { ...env, VFIO_PROCESSOR_INSTANCE_ID: 'pod-1' } }).instanceId,
    'pod-1',
  );
  assert.throws(
    () => parseProcessorConfig({ env, flags: { 'instance-id': 'a b' } }),
    (e: unknown) => isTelemetryError(e, 'CONFIG_INVALID') && /instance id/.test(e.message),
  );
});
