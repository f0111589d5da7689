/**
 * The processor's identity on disk, with real processes holding and leaving locks: a restart in
 * the same state directory finds the same id; a live holder refuses a second processor naming
 * its PID (also as `vfio-telemetry process`: exit status 2, before any Kafka traffic); a dead
 * holder's lock is taken over; without --state-dir, processors started in one directory get a
 * slot each and a restart gets the lowest free one back.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import {
  claimIdentity,
  DEFAULT_STATE_DIR,
  INSTANCE_ID_FILE,
} from '../../../services/processor/io/state-dir.ts';
import { isTelemetryError } from '../../../services/shared/core/errors.ts';
import { formatLockOwner } from '../../../services/shared/core/lock-owner.ts';
import { LOCK_FILE, procProbe } from '../../../services/shared/io/dir-lock.ts';
import { runCli } from '../../helpers/cli.ts';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'processor-state-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A live process (killed by PID after the test), and a lock file in `dir` naming it. */
function lockByLiveProcess(t: TestContext, dir: string): { pid: number; kill(): Promise<void> } {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  const pid = child.pid;
  assert.ok(pid !== undefined);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
  });
  const seen = procProbe.observe(pid);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, LOCK_FILE),
    formatLockOwner({ pid, start: seen.start ?? null, boot: seen.boot }),
  );
  return {
    pid,
    kill: async () => {
      process.kill(pid, 'SIGKILL');
      await exited;
    },
  };
}

test('a restart in the same state directory finds the same id; the lock is released', (t) => {
  const dir = join(tempDir(t), 'state');
  const first = claimIdentity({ instanceId: '', stateDir: dir, cwd: '/' });
  assert.equal(first.created, true);
  assert.equal(first.stateDir, dir);
  assert.equal(readFileSync(join(dir, INSTANCE_ID_FILE), 'utf8').trim(), first.instanceId);
  assert.equal(
    (JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')) as { pid: number }).pid,
    process.pid,
  );
  first.release();
  const again = claimIdentity({ instanceId: '', stateDir: dir, cwd: '/' });
  t.after(() => again.release());
  assert.equal(again.instanceId, first.instanceId);
  assert.equal(again.created, false);
  assert.equal(again.tookOverFrom, null);
});

test('a state directory held by a live process is refused, naming its PID', (t) => {
  const dir = join(tempDir(t), 'state');
  const holder = lockByLiveProcess(t, dir);
  assert.throws(
    () => claimIdentity({ instanceId: '', stateDir: dir, cwd: '/' }),
    (e: unknown) =>
      isTelemetryError(e, 'STATE_DIR_LOCKED') &&
      e.message.includes(`process ${holder.pid}`) &&
      e.details['pid'] === holder.pid,
  );
});

test('the lock of a holder that died (SIGKILL) is taken over, and the id kept', async (t) => {
  const dir = join(tempDir(t), 'state');
  const id = claimIdentity({ instanceId: '', stateDir: dir, cwd: '/' });
  id.release();
  const holder = lockByLiveProcess(t, dir);
  await holder.kill();
  const taken = claimIdentity({ instanceId: '', stateDir: dir, cwd: '/' });
  t.after(() => taken.release());
  assert.equal(taken.tookOverFrom?.pid, holder.pid);
  assert.equal(taken.instanceId, id.instanceId);
});

test('without --state-dir: one slot per live processor in the working directory, the lowest free one first', (t) => {
  const cwd = tempDir(t);
  const a = claimIdentity({ instanceId: '', stateDir: '', cwd });
  const b = claimIdentity({ instanceId: '', stateDir: '', cwd });
  assert.equal(a.stateDir, join(cwd, DEFAULT_STATE_DIR, '0'));
  assert.equal(b.stateDir, join(cwd, DEFAULT_STATE_DIR, '1'));
  assert.notEqual(a.instanceId, b.instanceId);
  a.release();
  const restarted = claimIdentity({ instanceId: '', stateDir: '', cwd });
  assert.equal(restarted.instanceId, a.instanceId);
  restarted.release();
  b.release();
});

test('an explicit instance id (the pod name) needs no state directory', () => {
  const id = claimIdentity({ instanceId: 'processor-0', stateDir: '/nonexistent/x', cwd: '/' });
  assert.deepEqual([id.instanceId, id.stateDir], ['processor-0', null]);
});

test('a state directory that cannot be created is STATE_DIR_UNWRITABLE, naming it', (t) => {
  const file = join(tempDir(t), 'file');
  writeFileSync(file, '');
  assert.throws(
    () => claimIdentity({ instanceId: '', stateDir: join(file, 'state'), cwd: '/' }),
    (e: unknown) => isTelemetryError(e, 'STATE_DIR_UNWRITABLE') && e.message.includes(file),
  );
});

test('vfio-telemetry process on a held state directory exits 2 naming the holder', async (t) => {
  const dir = join(tempDir(t), 'state');
  const holder = lockByLiveProcess(t, dir);
  const { status, stderr } = await runCli([
    'process',
    '--state-dir',
    dir,
    '--brokers',
    '127.0.0.1:1',
    '--log-level',
    'error',
  ]);
  assert.equal(status, 2);
  assert.match(stderr, new RegExp(`in use by process ${holder.pid}.*STATE_DIR_LOCKED`));
});
