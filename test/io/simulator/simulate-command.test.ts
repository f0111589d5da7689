import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CommandIo } from '../../../services/shared/io/command-io.ts';
import { main } from '../../../services/cli/main.ts';

function captureIo(): CommandIo & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    write: (text: string) => {
      io.out += text;
      return Promise.resolve();
    },
    error: (text: string) => {
      io.err += text;
    },
  };
  return io;
}

test('vfio-telemetry simulate runs to its migration limit, logs progress as JSON, removes its sockets', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sim-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const io = captureIo();
  const status = await main(
    [
      'simulate',
      '--dir',
      join(dir, 'qmp'),
      '--vms',
      '3',
      '--speed',
      'max',
      '--migrations',
      '5',
      '--transcripts',
      join(dir, 't'),
    ],
    io,
  );
  assert.equal(status, 0, io.err);
  const lines = io.err
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const finished = lines.find((l) => l['msg'] === 'Simulation finished.');
  assert.equal(finished?.['migrations'], 5);
  assert.deepEqual(await readdir(join(dir, 'qmp')), []);
  assert.deepEqual((await readdir(join(dir, 't'))).sort(), [
    'vm-000.qmp',
    'vm-001.qmp',
    'vm-002.qmp',
  ]);
});

test('vfio-telemetry simulate with bad flags exits 2 naming them all', async () => {
  const io = captureIo();
  assert.equal(await main(['simulate', '--vms', '0', '--speed', 'slow', '--nope'], io), 2);
  for (const part of ['--vms', '--speed', '--nope']) assert.ok(io.err.includes(part), io.err);
  const all = captureIo();
  const args = ['--vms', 'x', '--bogus', '--rate', '-1', 'extra', '--pretty=yes', '--seed'];
  assert.equal(await main(['simulate', ...args], all), 2);
  for (const part of ['--vms', '--bogus', '--rate', '"extra"', '--pretty', '--seed']) {
    assert.ok(all.err.includes(part), `${part} in: ${all.err}`);
  }
});

test('vfio-telemetry simulate --help lists the options', async () => {
  const io = captureIo();
  assert.equal(await main(['simulate', '--vms', '2', '-h'], io), 0);
  assert.match(io.out, /--speed X\|max/);
});
