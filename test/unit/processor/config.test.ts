import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseProcessorConfig } from '../../../services/processor/config.ts';
import { isTelemetryError } from '../../../services/shared/core/errors.ts';

test('the VM retention defaults to 7 days and is read from --vm-retention-ms or the environment', () => {
  const env = { KAFKA_BROKERS: 'k:9092' };
  assert.equal(parseProcessorConfig({ env }).vmRetentionMs, 7 * 24 * 3600 * 1000);
  assert.equal(
    parseProcessorConfig({ env: { ...env, VFIO_PROCESSOR_VM_RETENTION_MS: '3600000' } })
      .vmRetentionMs,
    3_600_000,
  );
  assert.equal(
    parseProcessorConfig({ env, flags: { 'vm-retention-ms': '60000' } }).vmRetentionMs,
    60_000,
  );
});

test('a VM retention not longer than the prepare timeout is refused', () => {
  assert.throws(
    () =>
      parseProcessorConfig({
        env: { KAFKA_BROKERS: 'k:9092' },
        flags: { 'vm-retention-ms': '10000', 'prepare-timeout': '10' },
      }),
    (e: unknown) => isTelemetryError(e, 'CONFIG_INVALID') && /vmRetentionMs/.test(e.message),
  );
});
