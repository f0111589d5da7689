/**
 * Tests mirror their sources (STYLE.md, docs/architecture.md): every `core/` module has a unit
 * test of the same name, or a one-line reason in untested-core.json; no unit test is named for
 * an `io/` module (those are test/io's).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = new URL('../../', import.meta.url).pathname;
const ALLOWLIST = 'test/unit/untested-core.json';

const listTs = (dir: string): string[] =>
  readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => `${dir}/${f}`)
    .sort();

/**
 * The unit test of a core module: services/<stage>/core/X.ts → test/unit/<stage>/X.test.ts;
 * shared keeps its `core/` (test/unit/shared/core/X.test.ts).
 */
function unitTestOf(file: string): string {
  const [, area = '', ...rest] = file.replace(/\.ts$/, '.test.ts').split('/');
  const path = area === 'shared' ? rest : rest.slice(rest.indexOf('core') + 1);
  return ['test/unit', area, ...path].join('/');
}

test('every core/ module has a unit test of the same name, or a reason in untested-core.json', () => {
  const allowed = JSON.parse(readFileSync(join(ROOT, ALLOWLIST), 'utf8')) as Record<string, string>;
  const core = listTs('services').filter((f) => f.split('/').includes('core'));
  const missing = core.filter((f) => !existsSync(join(ROOT, unitTestOf(f))) && !(f in allowed));
  assert.deepEqual(
    missing.map((f) => `${f}: write ${unitTestOf(f)} or give a reason in ${ALLOWLIST}`),
    [],
  );
  const stale = Object.keys(allowed).filter(
    (f) => !core.includes(f) || existsSync(join(ROOT, unitTestOf(f))),
  );
  assert.deepEqual(stale, [], `${ALLOWLIST} lists modules that are gone or now have a test`);
  for (const [f, reason] of Object.entries(allowed)) assert.ok(reason.trim() !== '', f);
});

test('no unit test is named for an io/ module (a test of an adapter belongs under test/io/)', () => {
  const misplaced = listTs('test/unit')
    .filter((f) => f.endsWith('.test.ts'))
    .filter((file) => {
      const [, , area = '', ...rest] = file.replace(/\.test\.ts$/, '.ts').split('/');
      return existsSync(join(ROOT, 'services', area, 'io', ...rest));
    });
  assert.deepEqual(misplaced, [], 'move these tests under test/io/');
});

test('the mirror of a core module', () => {
  assert.equal(
    unitTestOf('services/collector/core/spool-entry.ts'),
    'test/unit/collector/spool-entry.test.ts',
  );
  assert.equal(
    unitTestOf('services/shared/core/avro/crc64-avro.ts'),
    'test/unit/shared/core/avro/crc64-avro.test.ts',
  );
});
