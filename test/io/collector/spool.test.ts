import assert from 'node:assert/strict';
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { SpoolEntry } from '../../../services/collector/core/spool-entry.ts';
import {
  Spool,
  type SpoolEvents,
  type SpoolOptions,
} from '../../../services/collector/io/spool.ts';

interface Recorded {
  dropped: Record<string, number>;
  recovered: number;
  torn: { segment: number; offset: number; bytes: number }[];
}

function openSpool(dir: string, options: Partial<SpoolOptions> = {}) {
  const recorded: Recorded = { dropped: {}, recovered: 0, torn: [] };
  const events: SpoolEvents = {
    written: () => {},
    dropped: (reason, count) =>
      (recorded.dropped[reason] = (recorded.dropped[reason] ?? 0) + count),
    recovered: (n) => (recorded.recovered += n),
    tornTailTruncated: (segment, offset, bytes) => recorded.torn.push({ segment, offset, bytes }),
    changed: () => {},
  };
  const spool = Spool.open({
    dir,
    maxBytes: 1 << 20,
    segmentBytes: 64 * 1024,
    fsyncIntervalMs: 50,
    events,
    ...options,
  });
  opened.push(spool);
  return { spool, recorded };
}

const opened: Spool[] = [];

/** A spool directory removed after the test, once every spool opened on it is closed. */
function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'spool-'));
  t.after(() => {
    for (const spool of opened.splice(0)) spool.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

const entry = (i: number, size = 40): SpoolEntry => ({
  receivedMicros: 1_000_000 + i,
  key: `h/vm-${i % 7}`,
  value: Buffer.alloc(size, i % 251),
});

function drain(spool: Spool, max = 1000): SpoolEntry[] {
  const out: SpoolEntry[] = [];
  for (;;) {
    const batch = spool.readBatch(max);
    if (batch === null) return out;
    out.push(...batch.entries.map((e) => ({ ...e, value: Buffer.from(e.value) })));
    spool.ack(batch);
  }
}

test('appended entries are written in one group commit and read back in order', (t) => {
  const dir = tempDir(t);
  const { spool } = openSpool(dir);
  for (let i = 0; i < 100; i++) assert.equal(spool.append(entry(i)), true);
  assert.equal(spool.readBatch(10), null, 'nothing is readable before the group commit');
  spool.flush();
  assert.equal(spool.pendingEvents, 100);
  const batch = spool.readBatch(30);
  assert.equal(batch?.entries.length, 30);
  assert.deepEqual(
    batch?.entries.map((e) => e.receivedMicros),
    [...Array(30).keys()].map((i) => 1_000_000 + i),
  );
  const rest = drain(spool);
  assert.equal(
    rest.length,
    100,
    'unacknowledged entries are read again from the acknowledged position',
  );
  assert.equal(spool.pendingEvents, 0);
});

test('acknowledging a prefix of a batch (across segments) reads the rest again, also after a reopen', (t) => {
  const dir = tempDir(t);
  const first = openSpool(dir, { segmentBytes: 16 * 1024, maxBytes: 1 << 20 });
  // 1,000-byte entries: about 16 per segment, so a batch of 40 spans three segments.
  for (let i = 0; i < 40; i++) first.spool.append(entry(i, 1000));
  first.spool.flush();
  const batch = first.spool.readBatch(40);
  assert.equal(batch?.entries.length, 40);
  assert.ok(batch);
  first.spool.ack(batch, 0);
  assert.equal(first.spool.pendingEvents, 40, 'acknowledging nothing moves nothing');
  first.spool.ack(batch, 25);
  assert.equal(first.spool.pendingEvents, 15);
  const again = first.spool.readBatch(100);
  assert.deepEqual(
    again?.entries.map((e) => e.receivedMicros - 1_000_000),
    [...Array(15).keys()].map((i) => i + 25),
  );
  first.spool.close();
  const second = openSpool(dir, { segmentBytes: 16 * 1024 });
  assert.equal(second.spool.pendingEvents, 15);
  assert.deepEqual(
    drain(second.spool).map((e) => e.receivedMicros - 1_000_000),
    [...Array(15).keys()].map((i) => i + 25),
  );
});

test('regression: a full segment written by one big group commit is freed once acknowledged', (t) => {
  const dir = tempDir(t);
  const { spool } = openSpool(dir, { segmentBytes: 16 * 1024, maxBytes: 64 * 1024 });
  let accepted = 0;
  while (spool.append(entry(accepted, 2000))) accepted++;
  spool.flush();
  assert.ok(spool.bytesOnDisk > 16 * 1024, 'one segment larger than segmentBytes');
  assert.equal(drain(spool).length, accepted);
  assert.equal(spool.bytesOnDisk, 0);
  assert.equal(spool.append(entry(0, 2000)), true, 'accepting again');
  spool.flush();
  assert.equal(drain(spool).length, 1);
});

test('a reopened spool resends exactly what was not acknowledged', (t) => {
  const dir = tempDir(t);
  const first = openSpool(dir);
  for (let i = 0; i < 50; i++) first.spool.append(entry(i));
  first.spool.flush();
  const batch = first.spool.readBatch(20);
  assert.ok(batch);
  first.spool.ack(batch);
  first.spool.close();

  const second = openSpool(dir);
  assert.equal(second.recorded.recovered, 30);
  assert.equal(second.spool.pendingEvents, 30);
  assert.deepEqual(
    drain(second.spool).map((e) => e.receivedMicros - 1_000_000),
    [...Array(30).keys()].map((i) => i + 20),
  );
});

test('without close (SIGKILL), written entries survive; only the acknowledged position may lag', (t) => {
  const dir = tempDir(t);
  const first = openSpool(dir);
  for (let i = 0; i < 10; i++) first.spool.append(entry(i));
  first.spool.flush();
  // No close(): the process "dies" here. The page cache holds the data.
  const second = openSpool(dir);
  assert.equal(drain(second.spool).length, 10);
});

test('a torn last entry is detected on open, truncated, and appending continues after it', (t) => {
  const dir = tempDir(t);
  const first = openSpool(dir);
  for (let i = 0; i < 5; i++) first.spool.append(entry(i));
  first.spool.close();
  const [segment] = readdirSync(dir).filter((n) => n.endsWith('.seg'));
  assert.ok(segment);
  const path = join(dir, segment);
  const goodSize = statSync(path).size;
  // Half of a sixth entry, as a crash in the middle of write() leaves it.
  const whole = readFileSync(path).subarray(0, goodSize / 5);
  appendFileSync(path, whole.subarray(0, whole.length - 7));

  const second = openSpool(dir);
  assert.deepEqual(second.recorded.torn, [
    { segment: Number(segment.slice(0, 20)), offset: goodSize, bytes: whole.length - 7 },
  ]);
  assert.equal(statSync(path).size, goodSize);
  second.spool.append(entry(99));
  second.spool.flush();
  assert.deepEqual(
    drain(second.spool).map((e) => e.receivedMicros - 1_000_000),
    [0, 1, 2, 3, 4, 99],
  );
});

test('a zero-filled tail (OS crash after the file grew) is truncated too', (t) => {
  const dir = tempDir(t);
  const first = openSpool(dir);
  first.spool.append(entry(1));
  first.spool.close();
  const [segment] = readdirSync(dir).filter((n) => n.endsWith('.seg'));
  appendFileSync(join(dir, segment as string), Buffer.alloc(4096));
  const second = openSpool(dir);
  assert.equal(second.recorded.torn.length, 1);
  assert.equal(drain(second.spool).length, 1);
});

test('segments roll at the size bound and acknowledged segments are deleted', (t) => {
  const dir = tempDir(t);
  const { spool } = openSpool(dir, { segmentBytes: 16 * 1024 });
  for (let round = 0; round < 10; round++) {
    for (let i = 0; i < 50; i++) spool.append(entry(round * 50 + i, 100));
    spool.flush();
  }
  assert.ok(readdirSync(dir).filter((n) => n.endsWith('.seg')).length > 3);
  assert.equal(drain(spool, 64).length, 500);
  assert.equal(readdirSync(dir).filter((n) => n.endsWith('.seg')).length, 1);
  assert.ok(spool.bytesOnDisk <= 16 * 1024 + 50 * 200);
});

test('when full, the newest entries are dropped and counted; the spooled ones stay intact', (t) => {
  const dir = tempDir(t);
  const { spool, recorded } = openSpool(dir, { maxBytes: 64 * 1024, segmentBytes: 16 * 1024 });
  let accepted = 0;
  for (let i = 0; i < 1000; i++) {
    if (spool.append(entry(i, 200))) accepted++;
    if (i % 20 === 19) spool.flush();
  }
  spool.flush();
  assert.ok(accepted > 100 && accepted < 1000, `accepted ${accepted}`);
  assert.equal(recorded.dropped['spool_full'], 1000 - accepted);
  assert.equal(spool.accepting, false);
  assert.ok(spool.bytesOnDisk <= 64 * 1024);
  const read = drain(spool);
  assert.deepEqual(
    read.map((e) => e.receivedMicros - 1_000_000),
    [...Array(accepted).keys()],
  );
  assert.equal(spool.accepting, true, 'space is freed once segments are acknowledged');
  assert.equal(spool.append(entry(5000, 200)), true);
});

test('regression: a corrupt entry inside an older segment costs that entry only; every entry it held is read or counted', (t) => {
  const dir = tempDir(t);
  const first = openSpool(dir, { segmentBytes: 16 * 1024 });
  for (let i = 0; i < 200; i++) {
    first.spool.append(entry(i, 100));
    if (i % 10 === 9) first.spool.flush();
  }
  first.spool.close();
  const segments = readdirSync(dir)
    .filter((n) => n.endsWith('.seg'))
    .sort();
  const firstSegment = join(dir, segments[0] as string);
  const bytes = readFileSync(firstSegment);
  bytes[200] = (bytes[200] as number) ^ 0xff;
  writeFileSync(firstSegment, bytes);
  const second = openSpool(dir, { segmentBytes: 16 * 1024 });
  assert.equal(second.spool.pendingEvents, 199, 'the damaged entry is not counted as pending');
  const read = drain(second.spool);
  assert.equal(second.recorded.dropped['spool_corrupt'], 1);
  const ids = read.map((e) => e.receivedMicros - 1_000_000);
  // Byte 200 is in entry 1 (138 bytes each); its length survived, so only entry 1 is lost.
  assert.deepEqual(
    ids,
    [...Array(200).keys()].filter((i) => i !== 1),
  );
  assert.equal(second.spool.pendingEvents, 0);
});

test('a damaged length inside an older segment: reading resumes at the next whole entry, counted', (t) => {
  const dir = tempDir(t);
  const first = openSpool(dir, { segmentBytes: 16 * 1024 });
  for (let i = 0; i < 200; i++) {
    first.spool.append(entry(i, 100));
    if (i % 10 === 9) first.spool.flush();
  }
  first.spool.close();
  const firstSegment = join(
    dir,
    readdirSync(dir)
      .filter((n) => n.endsWith('.seg'))
      .sort()[0] as string,
  );
  const bytes = readFileSync(firstSegment);
  // Entry 3 starts at 3 * 138: a zeroed sector-like stretch over its header and entry 4's start.
  bytes.fill(0, 3 * 138, 3 * 138 + 150);
  writeFileSync(firstSegment, bytes);
  const second = openSpool(dir, { segmentBytes: 16 * 1024 });
  const ids = drain(second.spool).map((e) => e.receivedMicros - 1_000_000);
  assert.equal(second.recorded.dropped['spool_corrupt'], 1);
  assert.deepEqual(
    ids,
    [...Array(200).keys()].filter((i) => i !== 3 && i !== 4),
  );
});

test('regression: a segment that cannot be created drops that write, counted as spool_io, and the next write retries', async (t) => {
  const parent = tempDir(t);
  const dir = join(parent, 'spool');
  const failures: string[] = [];
  const written: number[] = [];
  const dropped: { reason: string; count: number; keys: readonly string[] }[] = [];
  const { spool } = openSpool(dir, {
    fsyncIntervalMs: 60_000,
    events: {
      written: (count) => written.push(count),
      dropped: (reason, count, _detail, keys = []) => dropped.push({ reason, count, keys }),
      recovered: () => {},
      tornTailTruncated: () => {},
      changed: () => {},
      ioFailed: (what) => failures.push(what),
    },
  });
  rmSync(dir, { recursive: true, force: true });
  spool.append(entry(1));
  spool.append(entry(2));
  // The group commit runs in a setImmediate: a throw there would kill the process.
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(dropped, [{ reason: 'spool_io', count: 2, keys: ['h/vm-1', 'h/vm-2'] }]);
  assert.deepEqual(written, []);
  assert.equal(spool.pendingEvents, 0);
  mkdirSync(dir);
  spool.append(entry(3));
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(written, [1]);
  assert.deepEqual(
    drain(spool).map((e) => e.receivedMicros - 1_000_000),
    [3],
  );
});

test('regression: an entry the format cannot hold (key over 65,535 bytes) is refused and counted, never thrown', async (t) => {
  const dir = tempDir(t);
  const { spool, recorded } = openSpool(dir);
  assert.equal(spool.append({ ...entry(1), key: 'k'.repeat(65_536) }), false);
  assert.equal(spool.append({ ...entry(2), key: 'k'.repeat(65_535) }), true);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(recorded.dropped, { invalid_record: 1 });
  assert.deepEqual(
    drain(spool).map((e) => e.key.length),
    [65_535],
  );
});

test('regression: the acknowledged position and new segments are durable: ack file synced before its rename, directory synced after (strace)', (t) => {
  const dir = tempDir(t);
  const script = join(dir, 'spool-durability.ts');
  const spoolUrl = new URL('../../../services/collector/io/spool.ts', import.meta.url).href;
  writeFileSync(
    script,
    `import { Spool } from ${JSON.stringify(spoolUrl)};
const events = { written() {}, dropped() {}, recovered() {}, tornTailTruncated() {}, changed() {} };
const spool = Spool.open({ dir: ${JSON.stringify(join(dir, 'spool'))}, maxBytes: 1 << 20, segmentBytes: 65536, fsyncIntervalMs: 60000, events });
spool.append({ receivedMicros: 1, key: 'k', value: Buffer.from('v') });
spool.flush();
const batch = spool.readBatch(10);
if (batch !== null) spool.ack(batch);
spool.syncNow();
spool.close();
`,
  );
  const trace = join(dir, 'trace');
  const run = spawnSync(
    'strace',
    [
      '-f',
      '-qq',
      '-y',
      '-e',
      'trace=openat,fdatasync,fsync,rename,renameat,renameat2',
      '-o',
      trace,
    ].concat([process.execPath, '--import', 'tsx', script]),
    { encoding: 'utf8', cwd: process.cwd() },
  );
  assert.equal(run.status, 0, run.stderr);
  const lines = readFileSync(trace, 'utf8').split('\n');
  const mainPid = lines[0]?.split(' ')[0];
  const spoolDir = join(dir, 'spool');
  const ops: string[] = [];
  for (const line of lines) {
    // The main thread only: the timer's fdatasync runs on libuv's pool, in no fixed order.
    if (line.split(' ')[0] !== mainPid || !line.includes(spoolDir)) continue;
    const sync = /\b(fdatasync|fsync)\(\d+<([^>]+)>/.exec(line);
    if (sync !== null) {
      const path = sync[2] as string;
      ops.push(
        `${sync[1]} ${path === spoolDir ? 'dir' : (path.split('/').at(-1) as string).replace(/^\d+/, '')}`,
      );
    } else if (/\brename/.test(line) && line.includes('ack.tmp')) ops.push('rename ack');
    else if (/openat\(.*\.seg".*O_CREAT/.test(line)) ops.push('open .seg');
  }
  assert.deepEqual(ops, [
    // Spool.open: the first acknowledged position.
    'fdatasync ack.tmp',
    'rename ack',
    'fsync dir',
    // append + flush: the first segment is created.
    'open .seg',
    // syncNow: the new position, whose directory fsync also covers the new segment.
    'fdatasync ack.tmp',
    'rename ack',
    'fsync dir',
    // close.
    'fdatasync .seg',
  ]);
});

test('regression: a background write that fails (spool directory gone) is reported, never thrown', async (t) => {
  const dir = tempDir(t);
  const failures: string[] = [];
  const { spool } = openSpool(dir, {
    fsyncIntervalMs: 60_000,
    events: {
      written: () => {},
      dropped: () => {},
      recovered: () => {},
      tornTailTruncated: () => {},
      changed: () => {},
      ioFailed: (what) => failures.push(what),
    },
  });
  spool.append(entry(1));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(drain(spool).length, 1);
  rmSync(dir, { recursive: true, force: true });
  assert.doesNotThrow(() => spool.syncNow());
  assert.deepEqual(failures, ['persisting the acknowledged position']);
});
