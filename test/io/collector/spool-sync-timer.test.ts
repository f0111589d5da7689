import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { nodeSpoolFs, type SpoolFs } from '../../../services/collector/io/spool-fs.ts';
import { Spool, type SpoolPosition } from '../../../services/collector/io/spool.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const INTERVAL_MS = 20;
/** Proving that nothing happens needs a wait: 15 sync intervals. */
const QUIET_MS = 15 * INTERVAL_MS;

test('regression: an idle spool never wakes up to sync; a write or an ack brings one sync, which does its work', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'spool-timer-'));
  const spool = Spool.open({
    dir,
    maxBytes: 1 << 20,
    segmentBytes: 64 * 1024,
    fsyncIntervalMs: INTERVAL_MS,
    events: {
      written: () => {},
      dropped: () => {},
      recovered: () => {},
      tornTailTruncated: () => {},
      changed: () => {},
    },
  });
  t.after(() => {
    spool.close();
    rmSync(dir, { recursive: true, force: true });
  });
  let syncs = 0;
  const syncNow = spool.syncNow.bind(spool);
  spool.syncNow = () => {
    syncs++;
    syncNow();
  };

  // The old spool synced every fsyncIntervalMs for its whole life (10 wakeups/s by default).
  await sleep(QUIET_MS);
  assert.equal(syncs, 0, 'an idle spool does not sync');

  spool.append({ receivedMicros: 1, key: 'h/vm-1', value: Buffer.from('event') });
  spool.flush();
  await waitFor(() => syncs === 1, { intervalMs: 5, description: 'the sync after a write' });
  await sleep(QUIET_MS);
  assert.equal(syncs, 1, 'once synced, the spool is idle again');

  const batch = spool.readBatch(10);
  assert.ok(batch !== null);
  spool.ack(batch);
  const persisted = (): string => readFileSync(join(dir, 'ack'), 'utf8');
  await waitFor(() => persisted() === JSON.stringify(batch.end), {
    intervalMs: 5,
    description: 'the acknowledged position on disk',
  });
  assert.equal(syncs, 2, 'the ack was persisted by the sync it armed');
  await sleep(QUIET_MS);
  assert.equal(syncs, 2, 'once persisted, the spool is idle again');
});

test('a steady trickle: data synced every interval, the acknowledged position at most once a second, and on disk once the trickle stops', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'spool-timer-'));
  const ackWrites: number[] = [];
  let dataSyncs = 0;
  const fs: SpoolFs = {
    ...nodeSpoolFs,
    renameSync: (from, to) => {
      if (String(from).endsWith('ack.tmp')) ackWrites.push(performance.now());
      nodeSpoolFs.renameSync(from, to);
    },
    fdatasync: ((fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => {
      dataSyncs++;
      nodeSpoolFs.fdatasync(fd, callback);
    }) as SpoolFs['fdatasync'],
  };
  const spool = Spool.open({
    dir,
    maxBytes: 1 << 20,
    segmentBytes: 1 << 20,
    fsyncIntervalMs: INTERVAL_MS,
    fs,
    events: {
      written: () => {},
      dropped: () => {},
      recovered: () => {},
      tornTailTruncated: () => {},
      changed: () => {},
    },
  });
  t.after(() => {
    spool.close();
    rmSync(dir, { recursive: true, force: true });
  });
  ackWrites.length = 0;

  // One event every 10 ms for 1.5 s, each acknowledged at once (a collector at 100 events/s).
  const started = performance.now();
  let last: SpoolPosition | undefined;
  while (performance.now() - started < 1500) {
    spool.append({ receivedMicros: 1, key: 'h/vm-1', value: Buffer.from('event') });
    spool.flush();
    const batch = spool.readBatch(10);
    assert.ok(batch !== null);
    spool.ack(batch);
    last = batch.end;
    await sleep(10);
  }
  const elapsedMs = performance.now() - started;
  assert.ok(dataSyncs >= 10, `data synced ${dataSyncs} times in ${elapsedMs.toFixed(0)} ms`);
  assert.ok(
    ackWrites.length <= Math.ceil(elapsedMs / 1000),
    `position written ${ackWrites.length} times in ${elapsedMs.toFixed(0)} ms`,
  );
  for (let i = 1; i < ackWrites.length; i++) {
    const gap = (ackWrites[i] as number) - (ackWrites[i - 1] as number);
    assert.ok(gap >= 990, `position written ${gap.toFixed(0)} ms after the previous time`);
  }
  await waitFor(() => readFileSync(join(dir, 'ack'), 'utf8') === JSON.stringify(last), {
    intervalMs: 20,
    description: 'the last acknowledged position on disk',
  });
});
