/**
 * infra/package/bundle.ts with its plugins (infra/package/bundle-plugins.ts), on a small entry
 * (test/fixtures/bundle/entry.ts) built with the CLI's options: node:tls loads only when a
 * member is read, @platformatic/kafka's option validation (compiled on first use in the bundle)
 * says what it says from source, the bundle is ASCII, and a thrown error maps back to its
 * TypeScript line with --enable-source-maps.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { compileFunction } from 'node:vm';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bundleCli } from '../../../infra/package/bundle.ts';
import { lazyBuiltinSource } from '../../../infra/package/bundle-plugins.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ENTRY = join(ROOT, 'test/fixtures/bundle/entry.ts');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: ROOT, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

interface Report {
  atStart: boolean;
  connectType: string;
  afterUse: boolean;
  wasmAtStart: number;
  crc: string;
  wasmAfterUse: number;
  validation: string;
}

const report = (r: Run): Report => JSON.parse(r.stdout.split('\n')[0] ?? '') as Report;

test('the bundle: lazy node:tls and wasm-utils, the same validation, ASCII, mapped stack traces', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'vfio-bundle-'));
  t.after(() => rm(out, { recursive: true, force: true }));
  const { file } = await bundleCli(out, ENTRY);

  const text = await readFile(file, 'utf8');
  assert.ok(
    [...text].every((c) => c.charCodeAt(0) < 0x80),
    'the bundle is ASCII',
  );

  const [bundled, source] = await Promise.all([
    run(['--enable-source-maps', file]),
    run(['--import', 'tsx', ENTRY]),
  ]);
  const b = report(bundled);
  const s = report(source);
  assert.equal(b.atStart, false, 'node:tls is not loaded by the import');
  assert.equal(b.connectType, 'function');
  assert.equal(b.afterUse, true, 'node:tls is loaded when a member is read');
  assert.equal(s.atStart, true, 'from source the import loads it (the fixture can tell)');
  assert.equal(b.wasmAtStart, 0, 'wasm-utils compiles nothing at import');
  assert.equal(s.wasmAtStart, 1, 'from source it compiles its module at import');
  // The CRC-32C check value of "123456789" (RFC 3720, B.4).
  assert.equal(b.crc, 'e3069283');
  assert.equal(s.crc, b.crc);
  assert.equal(b.wasmAfterUse, 1, 'the first call compiles it, once');
  assert.match(s.validation, /^Error: \/options\/timeout must be >= 0\.$/);
  assert.equal(b.validation, s.validation);

  assert.notEqual(bundled.code, 0);
  assert.match(bundled.stderr, /Error: failed from the fixture/);
  assert.match(bundled.stderr, /at fail \(.*test\/fixtures\/bundle\/throws\.ts:3:\d+\)/);
});

test('a lazy builtin stands in with every member of the real one', () => {
  const source = lazyBuiltinSource('https');
  const exports: Record<string, unknown> = {};
  const load = compileFunction(source, ['module', 'require']) as (
    module: { exports: Record<string, unknown> },
    require: (id: string) => unknown,
  ) => void;
  load({ exports }, (id) => {
    assert.equal(id, 'node:https');
    return { request: 'the real request', Agent: 'the real Agent' };
  });
  assert.ok(Object.keys(exports).includes('createServer'));
  assert.ok(Object.keys(exports).includes('Agent'));
  assert.equal(exports['request'], 'the real request');
});
