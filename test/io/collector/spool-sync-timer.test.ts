import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Spool } from '../../../services/collector/io/spool.ts';
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
