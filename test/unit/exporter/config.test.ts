import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseExporterConfig } from '../../../services/exporter/config.ts';
import { isTelemetryError } from '../../../services/shared/core/errors.ts';
import { TRANSITIONS_TOPIC } from '../../../services/shared/core/topics.ts';

test('defaults plus KAFKA_BROKERS make a valid config', () => {
  const c = parseExporterConfig({ env: { KAFKA_BROKERS: 'k1:9092,k2:9092' } });
  assert.deepEqual(c.brokers, ['k1:9092', 'k2:9092']);
  assert.equal(c.topic, TRANSITIONS_TOPIC);
  assert.equal(c.hostLabel, true);
  assert.equal(c.fromBeginning, true);
  assert.equal(c.fetchMaxBytes, 4 * 1024 * 1024);
  assert.equal(c.batchMaxRecords, 2000);
  assert.ok(Object.isFrozen(c));
});

test('fetches are bounded: --fetch-max-bytes and --batch-max-records within their limits', () => {
  const c = parseExporterConfig({
    env: { KAFKA_BROKERS: 'k:9092' },
    flags: { 'fetch-max-bytes': '65536', 'batch-max-records': '10' },
  });
  assert.deepEqual([c.fetchMaxBytes, c.batchMaxRecords], [65_536, 10]);
  assert.throws(
    () =>
      parseExporterConfig({
        env: { KAFKA_BROKERS: 'k:9092' },
        flags: { 'fetch-max-bytes': '10', 'batch-max-records': '0' },
      }),
    (e: unknown) =>
      isTelemetryError(e, 'CONFIG_INVALID') &&
      /--fetch-max-bytes/.test(e.message) &&
      /--batch-max-records/.test(e.message),
  );
});

test('flags win over env, env over file', () => {
  const c = parseExporterConfig({
    file: { hostLabel: true, maxHosts: 5, groupId: 'from-file' },
    env: { KAFKA_BROKERS: 'k:1', VFIO_EXPORTER_MAX_HOSTS: '7', VFIO_EXPORTER_HOST_LABEL: 'false' },
    flags: { 'max-hosts': '9' },
  });
  assert.equal(c.maxHosts, 9);
  assert.equal(c.hostLabel, false);
  assert.equal(c.groupId, 'from-file');
});

test('every problem is listed at once', () => {
  try {
    parseExporterConfig({
      file: { httpPort: 70000, colour: 'blue' },
      env: { VFIO_EXPORTER_MAX_HOSTS: 'many', VFIO_EXPORTER_TYPO: '1' },
      flags: { topic: 'bad topic' },
    });
    assert.fail('expected CONFIG_INVALID');
  } catch (error) {
    assert.ok(isTelemetryError(error, 'CONFIG_INVALID'));
    const problems = error.details['problems'] as string[];
    assert.equal(problems.length, 6, problems.join('\n'));
    for (const needle of [
      'brokers',
      'topic',
      'maxHosts',
      'httpPort',
      'colour',
      'VFIO_EXPORTER_TYPO',
    ]) {
      assert.ok(
        problems.some((p) => p.includes(needle) || p.includes('MAX_HOSTS')),
        `${needle} not in ${problems.join('; ')}`,
      );
    }
  }
});

test('the quantile window must cover an interval', () => {
  assert.throws(
    () =>
      parseExporterConfig({
        env: { KAFKA_BROKERS: 'k:1' },
        flags: { 'quantile-interval-ms': '5000', 'quantile-window-seconds': '2' },
      }),
    (e: unknown) => isTelemetryError(e, 'CONFIG_INVALID'),
  );
});

test('the OTLP output is off unless --otlp-endpoint names an http(s) URL', () => {
  const off = parseExporterConfig({ env: { KAFKA_BROKERS: 'k:9092' } });
  assert.equal(off.otlpEndpoint, undefined);
  assert.equal(off.otlpIntervalMs, 15_000);
  const on = parseExporterConfig({
    env: {
      KAFKA_BROKERS: 'k:9092',
      VFIO_EXPORTER_OTLP_ENDPOINT: 'http://prometheus:9090/api/v1/otlp/v1/metrics',
    },
    flags: { 'otlp-interval-ms': '5000' },
  });
  assert.equal(on.otlpEndpoint, 'http://prometheus:9090/api/v1/otlp/v1/metrics');
  assert.equal(on.otlpIntervalMs, 5000);
  assert.throws(
    () =>
      parseExporterConfig({
        env: { KAFKA_BROKERS: 'k:9092' },
        flags: { 'otlp-endpoint': 'prometheus:9090', 'otlp-interval-ms': '10' },
      }),
    (e: unknown) =>
      isTelemetryError(e, 'CONFIG_INVALID') &&
      /--otlp-endpoint: must be an http/.test(e.message) &&
      /--otlp-interval-ms/.test(e.message),
  );
});
