import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isTelemetryError } from '../../../services/shared/core/errors.ts';
import { parseSimulateConfig, simulateHelp } from '../../../services/simulator/config.ts';

test('defaults, flags, and flags over the config file', () => {
  const config = parseSimulateConfig('/tmp', {
    flags: { vms: '100', speed: 'max', pretty: true, 'failure-rate': '0.1' },
    file: { vms: 3, devices: 4, seed: 9 },
  });
  assert.equal(config.fleet.vms, 100);
  assert.equal(config.fleet.devicesPerVm, 4);
  assert.equal(config.fleet.seed, 9);
  assert.equal(config.speed, 'max');
  assert.equal(config.pretty, true);
  assert.equal(config.fleet.prepareFailureRate, 0.1, 'defaults to --failure-rate');
  assert.equal(config.durationSeconds, undefined);
  assert.equal(config.dir, '/tmp/vfio-telemetry-simulator');
});

test('a speed in the config file may be a number', () => {
  assert.equal(parseSimulateConfig('/tmp', { file: { speed: 10 } }).speed, 10);
});

test('every bad value is reported at once, as CONFIG_INVALID', () => {
  assert.throws(
    () =>
      parseSimulateConfig('/tmp', {
        flags: { vms: '0', rate: '-1', seed: 'x' },
        file: { nope: 1, speed: 'fast' },
        fileName: 'sim.yaml',
      }),
    (error: unknown) => {
      assert.ok(isTelemetryError(error, 'CONFIG_INVALID'));
      for (const part of ['--vms', '--rate', '--seed', 'speed (sim.yaml)', '"nope"']) {
        assert.ok(error.message.includes(part), `${part} in: ${error.message}`);
      }
      return true;
    },
  );
  assert.throws(
    () => parseSimulateConfig('/tmp', { flags: { 'p2p-median-ms': '500', 'p2p-p99-ms': '100' } }),
    (error: unknown) =>
      isTelemetryError(error, 'CONFIG_INVALID') && error.message.includes('--p2p-p99-ms'),
  );
});

test('help states every flag and its default', () => {
  const help = simulateHelp('/tmp');
  for (const flag of [
    '--dir',
    '--tcp-port',
    '--vms',
    '--speed X|max',
    '--migrations',
    '--transcripts',
    '--config',
  ]) {
    assert.ok(help.includes(flag), flag);
  }
  assert.match(help, /--vms N +number of VMs \[default 10\]/);
});
