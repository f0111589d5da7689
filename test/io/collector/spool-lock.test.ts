/**
 * One process per spool directory, with real processes: a second one is refused naming the
 * holder's PID (also as `vfio-telemetry collect`: exit status 2), a SIGKILLed holder's lock is
 * taken over, and a holder that closes its spool leaves no lock behind.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';
import { isTelemetryError } from '../../../services/shared/core/errors.ts';
import { Spool, type SpoolEvents } from '../../../services/collector/io/spool.ts';
import { procProbe } from '../../../services/collector/io/spool-lock.ts';
import { runCli } from '../../helpers/cli.ts';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'spool-lock-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function events(takenOver: number[] = []): SpoolEvents {
  return {
    written: () => {},
    dropped: () => {},
    recovered: () => {},
    tornTailTruncated: () => {},
    changed: () => {},
    staleLockTakenOver: (pid) => takenOver.push(pid),
  };
}

const open = (dir: string, takenOver: number[] = []): Spool =>
  Spool.open({
    dir,
    maxBytes: 1 << 20,
    segmentBytes: 64 * 1024,
    fsyncIntervalMs: 50,
    events: events(takenOver),
  });

/**
 * A process that holds the spool of `dir`: it prints "held", closes the spool and exits 0 on
 * SIGTERM. Killed by PID after the test if still running.
 */
async function spawnHolder(t: TestContext, dir: string): Promise<ChildProcess> {
  const spoolUrl = new URL('../../../services/collector/io/spool.ts', import.meta.url).href;
  const script = join(dir, '..', `${dir.split('/').at(-1)}-holder.ts`);
  writeFileSync(
    script,
    `import { Spool } from ${JSON.stringify(spoolUrl)};
const events = { written() {}, dropped() {}, recovered() {}, tornTailTruncated() {}, changed() {} };
const spool = Spool.open({ dir: ${JSON.stringify(dir)}, maxBytes: 1 << 20, segmentBytes: 65536, fsyncIntervalMs: 50, events });
process.on('SIGTERM', () => { spool.close(); process.exit(0); });
setInterval(() => {}, 1000);
console.log('held');
`,
  );
  t.after(() => rmSync(script, { force: true }));
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const pid = child.pid;
  assert.ok(pid !== undefined);
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  await new Promise<void>((resolve, reject) => {
    lines.once('line', (line) =>
      line === 'held' ? resolve() : reject(new Error(`holder said ${line}`)),
    );
    child.once('exit', (code) => reject(new Error(`holder exited (${code}) before holding`)));
  });
  return child;
}

const lockPid = (dir: string): unknown =>
  (JSON.parse(readFileSync(join(dir, 'lock'), 'utf8')) as { pid: unknown }).pid;

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

test('a second process on a held spool directory is refused, naming the PID that holds it', async (t) => {
  const dir = join(tempDir(t), 'spool');
  const holder = await spawnHolder(t, dir);
  assert.throws(
    () => open(dir),
    (error) =>
      isTelemetryError(error, 'SPOOL_LOCKED') &&
      error.details['pid'] === holder.pid &&
      error.message.includes(`process ${holder.pid}`) &&
      error.message.includes(dir),
  );
  assert.deepEqual(lockPid(dir), holder.pid, 'the refused process left the lock alone');

  // The command: exit status 2 (not restarted by the unit), the message names the PID.
  const run = await runCli([
    'collect',
    '--socket',
    `vm-1=${join(dir, 'no-such.qmp')}`,
    '--spool-dir',
    dir,
    '--brokers',
    '127.0.0.1:9',
    '--http-port',
    '0',
  ]);
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, new RegExp(`in use by process ${holder.pid}.*\\[SPOOL_LOCKED\\]`));
  assert.equal(
    run.stderr.split('\n').filter((line) => line.includes('failed to start')).length,
    1,
    'reported once',
  );
});

test('the lock of a SIGKILLed holder is taken over; a holder that closes its spool releases it', async (t) => {
  const dir = join(tempDir(t), 'spool');
  const killed = await spawnHolder(t, dir);
  killed.kill('SIGKILL');
  await exited(killed);
  assert.ok(existsSync(join(dir, 'lock')), 'SIGKILL leaves the lock file behind');
  const takenOver: number[] = [];
  const spool = open(dir, takenOver);
  assert.deepEqual(takenOver, [killed.pid]);
  assert.equal(lockPid(dir), process.pid);
  spool.close();
  assert.equal(existsSync(join(dir, 'lock')), false, 'close releases the lock');

  const stopped = await spawnHolder(t, dir);
  stopped.kill('SIGTERM');
  await exited(stopped);
  assert.equal(stopped.exitCode, 0);
  assert.equal(existsSync(join(dir, 'lock')), false, 'a clean exit releases the lock');
  const again: number[] = [];
  open(dir, again).close();
  assert.deepEqual(again, [], 'nothing to take over');
});

test('a lock naming a PID that now belongs to another process, or from an earlier boot, is stale', (t) => {
  const dir = tempDir(t);
  const self = procProbe.self();
  for (const stale of [
    // This very PID, but started at another time: the PID was reused.
    { ...self, start: '1' },
    { ...self, boot: 'an-earlier-boot' },
  ]) {
    writeFileSync(join(dir, 'lock'), JSON.stringify(stale));
    const takenOver: number[] = [];
    open(dir, takenOver).close();
    assert.deepEqual(takenOver, [self.pid]);
  }
  // A torn lock file (an OS crash while it was written) names nobody and is taken over too.
  writeFileSync(join(dir, 'lock'), '{"pid":');
  open(dir).close();
  assert.equal(existsSync(join(dir, 'lock')), false);
});

test('a spool directory held by this same process cannot be opened twice', (t) => {
  const dir = tempDir(t);
  const first = open(dir);
  t.after(() => first.close());
  assert.throws(
    () => open(dir),
    (error) => isTelemetryError(error, 'SPOOL_LOCKED') && error.details['pid'] === process.pid,
  );
});

test('a spool directory that cannot be written at start: exit status 2 once, the message names the path and errno', async (t) => {
  const file = join(tempDir(t), 'not-a-directory');
  writeFileSync(file, '');
  const dir = join(file, 'spool');
  const run = await runCli([
    'collect',
    '--socket',
    `vm-1=${join(file, 'no-such.qmp')}`,
    '--spool-dir',
    dir,
    '--brokers',
    '127.0.0.1:9',
    '--http-port',
    '0',
  ]);
  assert.equal(run.status, 2, run.stderr);
  assert.match(
    run.stderr,
    new RegExp(`spool directory ${dir} cannot be used: ENOTDIR.*\\[SPOOL_UNWRITABLE\\]`),
  );
  assert.equal(
    run.stderr.split('\n').filter((line) => line.includes('failed to start')).length,
    1,
    'reported once',
  );
});
