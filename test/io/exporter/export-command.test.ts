import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCli } from '../../helpers/cli.ts';

test('export --help lists every option with its env variable', async () => {
  const { status, stdout } = await runCli(['export', '--help']);
  assert.equal(status, 0);
  for (const text of [
    '--no-host-label',
    'KAFKA_BROKERS',
    'VFIO_EXPORTER_MAX_HOSTS',
    '--config FILE',
  ]) {
    assert.ok(stdout.includes(text), text);
  }
});

test('export lists every configuration problem and exits 2', async () => {
  const saved = process.env['KAFKA_BROKERS'];
  delete process.env['KAFKA_BROKERS'];
  try {
    const { status, stderr } = await runCli(['export', '--http-port', '99999', '--topic', 'a b']);
    assert.equal(status, 2);
    assert.match(stderr, /brokers is required/);
    assert.match(stderr, /--http-port: must be at most 65535/);
    assert.match(stderr, /--topic: "a b" is not a Kafka topic name/);
  } finally {
    if (saved !== undefined) process.env['KAFKA_BROKERS'] = saved;
  }
});

test('export rejects --host-label with --no-host-label, and unknown flags', async () => {
  assert.equal((await runCli(['export', '--host-label', '--no-host-label'])).status, 2);
  assert.equal((await runCli(['export', '--colour', 'blue'])).status, 2);
});
