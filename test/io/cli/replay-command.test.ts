import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import { runCli } from '../../helpers/cli.ts';

const FIXTURES = fileURLToPath(new URL('../../fixtures/qmp/vfio/', import.meta.url));
const BIN = fileURLToPath(new URL('../../../bin/vfio-telemetry.js', import.meta.url));

describe('vfio-telemetry replay', () => {
  test('--format json: one record per line, then the summary', async () => {
    const { status, stdout } = await runCli([
      'replay',
      '--format',
      'json',
      join(FIXTURES, 'source-p2p-precopy.qmp'),
    ]);
    assert.equal(status, 0);
    const lines = stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines[0], {
      type: 'prepare',
      host: '',
      vm: 'source-p2p-precopy',
      qomPath: '/machine/peripheral/vf0',
      deviceId: 'vf0',
      target: 'pre-copy-p2p',
      prepareState: 'pre-copy-p2p-prepare',
      outcome: 'completed',
      next: 'pre-copy-p2p',
      seconds: 0.0125,
      startMicros: 1795798178270500,
      endMicros: 1795798178283000,
    });
    assert.deepEqual(
      lines.map((l) => l['type']),
      ['prepare', 'dwell', 'dwell', 'dwell', 'summary'],
    );
    assert.equal(lines.at(-1)?.['rejected'], 0);
    assert.equal(lines.at(-1)?.['duplicates'], 0);
  });

  test('table (default): quantiles per target and outcome, dwell per state, counts', async () => {
    const files = ['source-p2p-precopy', 'failed-prepare-reset', 'malformed', 'lifecycle'].map(
      (f) => join(FIXTURES, `${f}.qmp`),
    );
    const { status, stdout } = await runCli(['replay', ...files]);
    assert.equal(status, 0);
    assert.match(stdout, /^Prepare to completion$/m);
    assert.match(stdout, /^ {2}pre-copy-p2p +completed +4 +12\.5ms +30ms +30ms +30ms$/m);
    assert.match(stdout, /^ {2}pre-copy-p2p +failed +2 +10ms +280ms +280ms +280ms$/m);
    assert.match(stdout, /^ {2}pre-copy-p2p +timed_out +1 +- +- +- +-$/m);
    assert.match(stdout, /^ {2}stop-copy +1 +10ms/m);
    assert.match(
      stdout,
      /rejected 11 \(not_json 3, not_object 1, not_qmp 1, invalid_utf8 1, bad_timestamp 3, bad_vfio_data 2\), duplicates 1$/m,
    );
  });

  test('--prepare-timeout changes when prepares time out', async () => {
    const file = join(FIXTURES, 'lifecycle.qmp');
    const count = async (extra: string[]): Promise<number> => {
      const { stdout } = await runCli(['replay', '--format', 'json', ...extra, file]);
      return stdout.split('\n').filter((l) => l.includes('"timed_out"')).length;
    };
    assert.equal(await count([]), 1);
    assert.equal(await count(['--prepare-timeout', '20']), 0);
  });

  test('bad flags and unreadable files: a clear message and a non-zero status', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['replay'], 2, /needs at least one FILE/],
      [['replay', '--format', 'xml', 'x.qmp'], 2, /--format: must be one of table, json/],
      [
        ['replay', '--prepare-timeout=-3', 'x.qmp'],
        2,
        /--prepare-timeout: must be a positive number/,
      ],
      [['replay', '--bogus', 'x.qmp'], 2, /Unknown option '--bogus'/],
      [['replay', '/no/such/file.qmp'], 1, /cannot read \/no\/such\/file\.qmp: ENOENT/],
      [['frobnicate'], 2, /unknown command "frobnicate"/],
    ];
    for (const [args, status, message] of cases) {
      const result = await runCli(args);
      assert.equal(result.status, status, args.join(' '));
      assert.match(result.stderr, message);
      assert.equal(result.stdout, '');
    }
  });

  test('a directory is not a transcript', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'vfio-replay-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const result = await runCli(['replay', dir]);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /cannot read .*EISDIR/);
  });

  test('--help describes the command', async () => {
    const { status, stdout } = await runCli(['replay', '--help']);
    assert.equal(status, 0);
    assert.match(
      stdout,
      /Usage: vfio-telemetry replay \[--prepare-timeout SECONDS\] \[--format table\|json\] \[--top N\] FILE\.\.\./,
    );
    assert.match(stdout, /--top N +table: also list the N slowest prepares/);
  });

  test('--top N lists the N slowest prepares with VM, device and the closing QEMU time', async () => {
    const files = ['source-p2p-precopy', 'failed-prepare-reset', 'lifecycle', 'vm-a', 'vm-b'].map(
      (f) => join(FIXTURES, `${f}.qmp`),
    );
    const { status, stdout } = await runCli(['replay', '--top', '3', ...files]);
    assert.equal(status, 0, stdout);
    const section = stdout.split('\n\n').find((s) => s.startsWith('Slowest prepares (top 3)'));
    assert.ok(section !== undefined, stdout);
    const rows = section.split('\n').slice(2);
    assert.deepEqual(rows, [
      '  failed-prepare-reset  vf0     pre-copy-p2p  failed       280ms  2026-11-27T16:49:37.480000Z',
      '  vm-b                  vf0     pre-copy-p2p  failed        32ms  2026-11-27T16:49:36.090000Z',
      '  lifecycle             vf0     pre-copy-p2p  completed     30ms  2026-11-27T16:49:36.130000Z',
    ]);
    // The other sections are unchanged by --top.
    const plain = await runCli(['replay', ...files]);
    assert.equal(stdout.replace(`\n\n${section}`, ''), plain.stdout);
  });

  test('--top with --format json is a usage error', async () => {
    const { status, stderr } = await runCli([
      'replay',
      '--top',
      '2',
      '--format',
      'json',
      join(FIXTURES, 'vm-a.qmp'),
    ]);
    assert.equal(status, 2);
    assert.match(stderr, /--top lists rows of the table format only/);
  });

  test('the installed bin runs the same command (as `npx vfio-telemetry` does)', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'vfio-replay-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'vm7.log');
    await writeFile(
      file,
      '{"timestamp": {"seconds": 1, "microseconds": 0}, "event": "VFIO_MIGRATION", "data": {"qom-path": "/q", "device-state": "pre-copy-p2p-prepare"}}\n',
    );
    const { stdout } = await promisify(execFile)(process.execPath, [
      BIN,
      'replay',
      '--format',
      'json',
      file,
    ]);
    const first = JSON.parse(stdout.split('\n')[0] ?? '') as Record<string, unknown>;
    assert.equal(first['vm'], 'vm7');
    assert.equal(first['deviceId'], '');
    assert.equal(first['outcome'], 'unfinished');
  });
});
