import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { SocketDirWatcher } from '../../../services/collector/io/socket-dir-watcher.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { listenUnix, tempDir } from './unix-sockets.ts';

/** Far beyond every wait below: whatever is seen in time was seen through the watch. */
const SAFETY_LISTING_MS = 60_000;
/** Generous for a loaded machine, and still a small fraction of the safety listing's period. */
const PICKUP_TIMEOUT_MS = 10_000;

interface Seen {
  added: string[];
  removed: string[];
  errors: unknown[];
}

const socketDir = (t: TestContext): string => tempDir(t, 'socket-dir-');

function startWatcher(
  t: TestContext,
  dir: string,
  unwatchedIntervalMs = SAFETY_LISTING_MS,
): { watcher: SocketDirWatcher; seen: Seen } {
  const seen: Seen = { added: [], removed: [], errors: [] };
  const watcher = new SocketDirWatcher({
    dir,
    intervalMs: SAFETY_LISTING_MS,
    unwatchedIntervalMs,
    onAdded: (path) => seen.added.push(path),
    onRemoved: (path) => seen.removed.push(path),
    onError: (error) => seen.errors.push(error),
  });
  t.after(() => watcher.stop());
  return { watcher, seen };
}

test('a socket created in the watched directory is picked up through the watch, well before the safety listing; a vanished one is retired the same way', async (t) => {
  const dir = socketDir(t);
  const { watcher, seen } = startWatcher(t, dir);
  await watcher.start();
  assert.equal(watcher.running, true);
  assert.equal(watcher.watching, true);
  assert.deepEqual(seen.added, []);

  const path = join(dir, 'web-1.qmp');
  const started = performance.now();
  const server = await listenUnix(t, path);
  await waitFor(() => seen.added.includes(path), {
    timeoutMs: PICKUP_TIMEOUT_MS,
    intervalMs: 5,
    description: 'the new socket reported',
  });
  const pickupMs = performance.now() - started;
  assert.ok(pickupMs < PICKUP_TIMEOUT_MS, `picked up after ${Math.round(pickupMs)} ms`);

  await new Promise<void>((resolve) => server.close(() => resolve()));
  await waitFor(() => seen.removed.includes(path), {
    timeoutMs: PICKUP_TIMEOUT_MS,
    intervalMs: 5,
    description: 'the vanished socket retired',
  });
  assert.deepEqual(seen.added, [path]);
  assert.deepEqual(seen.errors, []);
});

test('regression: a socket directory missing at start is listed often until it exists, then watched', async (t) => {
  const dir = join(socketDir(t), 'sockets');
  const { watcher, seen } = startWatcher(t, dir, 100);
  await watcher.start();
  assert.equal(watcher.running, false);
  assert.equal(watcher.watching, false);
  assert.equal(seen.errors.length, 1, 'the missing directory is reported');

  mkdirSync(dir);
  const first = join(dir, 'web-1.qmp');
  await listenUnix(t, first);
  await waitFor(() => seen.added.includes(first), {
    timeoutMs: PICKUP_TIMEOUT_MS,
    intervalMs: 5,
    description: 'the socket in the new directory reported',
  });
  await waitFor(() => watcher.watching, { timeoutMs: PICKUP_TIMEOUT_MS, intervalMs: 5 });
  assert.equal(watcher.running, true);

  // Now watched: the next socket arrives through the watch.
  const second = join(dir, 'web-2.qmp');
  await listenUnix(t, second);
  await waitFor(() => seen.added.includes(second), {
    timeoutMs: PICKUP_TIMEOUT_MS,
    intervalMs: 5,
    description: 'the second socket reported',
  });
});

test('regression: a socket directory replaced by a new one at the same path is watched again', async (t) => {
  const dir = join(socketDir(t), 'sockets');
  mkdirSync(dir);
  const { watcher, seen } = startWatcher(t, dir, 100);
  await watcher.start();
  assert.equal(watcher.watching, true);

  // The old watch is on the removed directory's inode and would never report anything again.
  rmSync(dir, { recursive: true });
  mkdirSync(dir);
  const path = join(dir, 'web-1.qmp');
  await listenUnix(t, path);
  await waitFor(() => seen.added.includes(path), {
    timeoutMs: PICKUP_TIMEOUT_MS,
    intervalMs: 5,
    description: 'the socket in the replacing directory reported',
  });
  await waitFor(() => watcher.watching && watcher.running, {
    timeoutMs: PICKUP_TIMEOUT_MS,
    intervalMs: 5,
    description: 'the new directory watched',
  });

  const next = join(dir, 'web-2.qmp');
  await listenUnix(t, next);
  await waitFor(() => seen.added.includes(next), {
    timeoutMs: PICKUP_TIMEOUT_MS,
    intervalMs: 5,
    description: 'a later socket reported through the new watch',
  });
});
