import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isTelemetryError } from '../../../services/shared/core/errors.ts';
import {
  parseSimulateArgs,
  resolveSimulateConfig,
  simulateHelp,
} from '../../../services/simulator/config.ts';

function resolve(args: string[], file: Record<string, unknown> = {}) {
  const parsed = parseSimulateArgs(args);
  assert.notEqual(parsed, 'help');
  if (parsed === 'help') throw new Error('help');
  return resolveSimulateConfig(parsed.values, file);
}

test('defaults, flags, and flags over the config file', () => {
  const config = resolve(['--vms', '100', '--speed', 'max', '--pretty', '--failure-rate', '0.1'], {
    vms: 3,
    devices: 4,
    seed: 9,
  });
  assert.equal(config.fleet.vms, 100);
  assert.equal(config.fleet.devicesPerVm, 4);
  assert.equal(config.fleet.seed, 9);
  assert.equal(config.speed, 'max');
  assert.equal(config.pretty, true);
  assert.equal(config.fleet.prepareFailureRate, 0.1, 'defaults to --failure-rate');
  assert.equal(config.durationSeconds, undefined);
  assert.equal(parseSimulateArgs(['--vms', '2', '-h']), 'help');
});

test('every bad flag is reported at once, as USAGE', () => {
  assert.throws(
    () =>
      parseSimulateArgs([
        '--vms',
        'x',
        '--bogus',
        '--rate',
        '-1',
        'extra',
        '--pretty=yes',
        '--seed',
      ]),
    (error: unknown) => {
      assert.ok(isTelemetryError(error, 'USAGE'));
      for (const part of ['--vms', '--bogus', '--rate', '"extra"', '--pretty', '--seed']) {
        assert.ok(error.message.includes(part), `${part} in: ${error.message}`);
      }
      return true;
    },
  );
  assert.throws(
    () => resolve(['--p2p-median-ms', '500', '--p2p-p99-ms', '100'], { nope: 1, speed: 'fast' }),
    (error: unknown) =>
      isTelemetryError(error, 'USAGE') &&
      error.message.includes('nope') &&
      error.message.includes('speed') &&
      error.message.includes('--p2p-p99-ms'),
  );
});

test('help states every flag and its default', () => {
  const help = simulateHelp();
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
  assert.match(help, /--vms N +number of VMs \(default 10\)/);
});
