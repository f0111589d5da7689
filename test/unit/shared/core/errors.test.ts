import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  ERROR_CODES,
  isTelemetryError,
  TelemetryError,
} from '../../../../services/shared/core/errors.ts';

const SERVICES = new URL('../../../../services/', import.meta.url).pathname;

function sources(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => readFileSync(join(dir, f), 'utf8'));
}

test('every error code is raised somewhere in services/ (or carried by a tagged invalid result)', () => {
  const text = sources(SERVICES).join('\n');
  const unused = ERROR_CODES.filter(
    (code) =>
      !new RegExp(`new TelemetryError\\(\\s*'${code}'`).test(text) &&
      !new RegExp(`\\bcode: '${code}'`).test(text),
  );
  assert.deepEqual(unused, [], `codes nobody raises: ${unused.join(', ')} — raise or remove them`);
});

test('a TelemetryError carries its code, retriability, cause and details', () => {
  const cause = new Error('ECONNREFUSED');
  const error = new TelemetryError('QMP_CONNECT_FAILED', 'no greeting', {
    cause,
    details: { vm: 'vm-1' },
  });
  assert.equal(error.code, 'QMP_CONNECT_FAILED');
  assert.equal(error.retriable, true);
  assert.equal(error.cause, cause);
  assert.deepEqual(error.details, { vm: 'vm-1' });
  assert.equal(new TelemetryError('CONFIG_INVALID', 'bad').retriable, false);
  assert.equal('cause' in new TelemetryError('USAGE', 'bad'), false);
});

test('isTelemetryError matches the type and, when given, the code', () => {
  const error = new TelemetryError('USAGE', 'bad flag');
  assert.equal(isTelemetryError(error), true);
  assert.equal(isTelemetryError(error, 'USAGE'), true);
  assert.equal(isTelemetryError(error, 'INTERNAL'), false);
  assert.equal(isTelemetryError(new Error('plain')), false);
});
