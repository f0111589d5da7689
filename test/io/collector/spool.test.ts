import assert from 'node:assert/strict';
import {
  appendFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
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

test('a corrupt entry inside an older segment skips the rest of that segment, counted', (t) => {
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
  const read = drain(second.spool);
  assert.equal(second.recorded.dropped['spool_corrupt'], 1);
  const ids = read.map((e) => e.receivedMicros - 1_000_000);
  // Entry 0 precedes the damage; the rest of the first segment is lost; later segments are whole.
  assert.equal(ids[0], 0);
  const later = ids.slice(1);
  assert.ok(later.length > 0 && (later[0] as number) > 1);
  assert.deepEqual(
    later,
    [...Array(later.length).keys()].map((i) => i + (later[0] as number)),
  );
  assert.equal(later.at(-1), 199);
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
