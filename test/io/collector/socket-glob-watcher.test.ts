import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { parseSocketGlob, type SocketGlob } from '../../../services/collector/core/socket-glob.ts';
import { SocketGlobWatcher } from '../../../services/collector/io/socket-glob-watcher.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { listenUnix, tempDir } from './unix-sockets.ts';

const INTERVAL_MS = 50;
const LAUNCHER = 'volumes/kubernetes.io~empty-dir/libvirt-runtime/virtqemud-sock';

interface Seen {
  added: string[];
  removed: string[];
  errors: string[];
}

const podsDir = (t: TestContext): string => tempDir(t, 'socket-glob-');

function globOf(text: string): SocketGlob {
  const glob = parseSocketGlob(text);
  assert.ok(!('problem' in glob), JSON.stringify(glob));
  return glob;
}

function startWatcher(t: TestContext, pattern: string): { watcher: SocketGlobWatcher; seen: Seen } {
  const seen: Seen = { added: [], removed: [], errors: [] };
  const watcher = new SocketGlobWatcher({
    glob: globOf(pattern),
    intervalMs: INTERVAL_MS,
    onAdded: (path) => seen.added.push(path),
    onRemoved: (path) => seen.removed.push(path),
    onError: (path, error) => seen.errors.push(`${path}: ${(error as Error).message}`),
  });
  t.after(() => watcher.stop());
  return { watcher, seen };
}

const close = (server: Server): Promise<void> =>
  new Promise((resolve) => server.close(() => resolve()));

test("a launcher pod's socket is picked up when it appears under a new pod directory, and retired when it goes", async (t) => {
  const pods = podsDir(t);
  const { watcher, seen } = startWatcher(t, `${pods}/*/${LAUNCHER}`);
  const early = join(pods, 'uid-1', LAUNCHER);
  await listenUnix(t, early);
  await watcher.start();
  assert.deepEqual(seen.added, [early], 'the first listing reports what is there');
  assert.equal(watcher.running, true);

  // The pod directory comes first, its socket later (the launcher starts its daemon).
  mkdirSync(join(pods, 'uid-2', 'volumes'), { recursive: true });
  const late = join(pods, 'uid-2', LAUNCHER);
  const server = await listenUnix(t, late);
  await waitFor(() => seen.added.includes(late), { timeoutMs: 5_000 });
  assert.equal(watcher.matched, 2);

  await close(server);
  rmSync(join(pods, 'uid-2'), { recursive: true, force: true });
  await waitFor(() => seen.removed.includes(late), { timeoutMs: 5_000 });
  assert.deepEqual(seen.removed, [late]);
  assert.deepEqual(seen.errors, []);
});

test('only sockets match: a regular file, a read-only socket name and a hidden pod directory do not', async (t) => {
  const pods = podsDir(t);
  const { watcher, seen } = startWatcher(t, `${pods}/*/run/virtqemud-sock`);
  mkdirSync(join(pods, 'file-pod', 'run'), { recursive: true });
  writeFileSync(join(pods, 'file-pod', 'run', 'virtqemud-sock'), 'not a socket');
  await listenUnix(t, join(pods, 'ro-pod', 'run', 'virtqemud-sock-ro'));
  await listenUnix(t, join(pods, '..data', 'run', 'virtqemud-sock'));
  const real = join(pods, 'real-pod', 'run', 'virtqemud-sock');
  await listenUnix(t, real);
  // A link to a pod directory is followed, as kubelet's volume links would be.
  symlinkSync(join(pods, 'real-pod'), join(pods, 'linked-pod'));
  await watcher.start();
  assert.deepEqual(seen.added.sort(), [join(pods, 'linked-pod', 'run', 'virtqemud-sock'), real]);
});

test('a missing root is reported by `running`, not as an error; sockets are picked up once it exists', async (t) => {
  const base = podsDir(t);
  const pods = join(base, 'pods');
  const { watcher, seen } = startWatcher(t, `${pods}/*/sock`);
  await watcher.start();
  assert.equal(watcher.running, false);
  assert.deepEqual(seen.errors, []);
  const socket = join(pods, 'p1', 'sock');
  await listenUnix(t, socket);
  await waitFor(() => watcher.running && seen.added.includes(socket), { timeoutMs: 5_000 });
});

test('a path that cannot be resolved (ELOOP) is reported and keeps its socket: a transient error closes nothing', async (t) => {
  const pods = podsDir(t);
  const socket = join(pods, 'p1', 'run', 'sock');
  await listenUnix(t, socket);
  const { watcher, seen } = startWatcher(t, `${pods}/*/run/sock`);
  await watcher.start();
  assert.deepEqual(seen.added, [socket]);
  // A symbolic link loop where the socket's directory was: lstat fails with ELOOP, which even
  // root gets (unlike EACCES), and which is no proof that the socket is gone.
  renameSync(join(pods, 'p1', 'run'), join(pods, 'p1', 'run.real'));
  symlinkSync('run', join(pods, 'p1', 'run'));
  await waitFor(() => seen.errors.length >= 2, { timeoutMs: 5_000 });
  assert.match(seen.errors[0] ?? '', /ELOOP/);
  assert.ok(seen.errors[0]?.startsWith(socket), seen.errors[0]);
  assert.deepEqual(seen.removed, [], 'the connection is kept through the error');
  rmSync(join(pods, 'p1', 'run'));
  renameSync(join(pods, 'p1', 'run.real'), join(pods, 'p1', 'run'));
  const errors = seen.errors.length;
  await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS * 4));
  assert.ok(seen.errors.length <= errors + 1, 'no error once the path resolves again');
  assert.deepEqual(seen.added, [socket], 'the socket was never re-added: it was never dropped');
  assert.deepEqual(seen.removed, []);
});
