/**
 * One process per directory: the directory holds a `lock` file naming its holder
 * (core/lock-owner.ts); a process that finds a live holder does not get the directory.
 *
 * Node has no flock(2) (and a helper process holding one would outlive a SIGKILLed holder), so
 * the lock is a file whose creation is atomic: the holder's identity is written to a private
 * temporary file, which is then hard-linked to `lock` — link(2) fails with EEXIST when `lock`
 * exists, so exactly one of two starters wins, and `lock` is never seen half-written.
 *
 * A stale lock (its holder died: SIGKILL, OS crash, a PID reused since) is taken over: it is
 * renamed aside (rename(2) is atomic: of two starters that judged the same file stale, one moves
 * it), the one moved aside is checked to be the file judged stale (same inode), deleted, and the
 * link is tried again. If another starter replaced the stale file in between, the file moved
 * aside is a live lock: it is linked back. Three starters within microseconds of each other on
 * a stale lock can still both win; the lock is against accidents (a second unit, a cloned
 * config), not against an adversary.
 *
 * Limits: liveness is read from /proc of this PID namespace, so processes in different PID
 * namespaces (containers) sharing one directory do not see each other.
 *
 * The same algorithm as the collector spool's lock (collector/io/spool-lock.ts on its branch),
 * without its error codes: the caller says what a busy directory means.
 */
import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import {
  formatLockOwner,
  lockHolderAlive,
  parseLockOwner,
  procStartTime,
  type LockOwner,
  type ObservedProcess,
} from '../core/lock-owner.ts';

export const LOCK_FILE = 'lock';

export type LockFs = Pick<
  typeof nodeFs,
  | 'closeSync'
  | 'fstatSync'
  | 'linkSync'
  | 'openSync'
  | 'readFileSync'
  | 'renameSync'
  | 'statSync'
  | 'unlinkSync'
  | 'writeFileSync'
>;

/** How a process is looked at: the real /proc and kill(2) unless a test passes its own. */
export interface ProcessProbe {
  self(): LockOwner;
  observe(pid: number): ObservedProcess;
}

export interface HeldDirLock {
  readonly path: string;
  /** The stale holder whose lock was taken over, or null when there was none. */
  readonly tookOverFrom: LockOwner | null;
  /** Deletes the lock file if it is still this process's. Never throws. */
  release(): void;
}

export type DirLockResult =
  | { readonly kind: 'held'; readonly lock: HeldDirLock }
  /** A live process holds it (`holder`), or the lock kept changing under us (`holder: null`). */
  | { readonly kind: 'busy'; readonly path: string; readonly holder: LockOwner | null };

const TAKEOVER_ATTEMPTS = 5;

/**
 * Takes the lock of `dir` (which must exist). I/O errors (read-only, not a directory) are
 * thrown as they come; the caller names them.
 */
export function lockDir(
  dir: string,
  fs: LockFs = nodeFs,
  probe: ProcessProbe = procProbe,
): DirLockResult {
  const path = join(dir, LOCK_FILE);
  const self = probe.self();
  const mine = join(dir, `${LOCK_FILE}.${self.pid}.tmp`);
  fs.writeFileSync(mine, formatLockOwner(self));
  let tookOverFrom: LockOwner | null = null;
  try {
    for (let attempt = 0; attempt < TAKEOVER_ATTEMPTS; attempt++) {
      try {
        fs.linkSync(mine, path);
        const inode = fs.statSync(path).ino;
        return {
          kind: 'held',
          lock: { path, tookOverFrom, release: () => release(fs, path, inode) },
        };
      } catch (error) {
        if (errorCode(error) !== 'EEXIST') throw error;
      }
      const found = readLock(fs, path);
      if (found === null) continue;
      if (found.owner !== null && lockHolderAlive(found.owner, probe.observe(found.owner.pid))) {
        return { kind: 'busy', path, holder: found.owner };
      }
      const aside = join(dir, `${LOCK_FILE}.${self.pid}.stale`);
      try {
        fs.renameSync(path, aside);
      } catch (error) {
        if (errorCode(error) === 'ENOENT') continue;
        throw error;
      }
      if (fs.statSync(aside).ino !== found.inode) {
        // Another starter replaced the stale file first: this one is live, put it back.
        try {
          fs.linkSync(aside, path);
        } catch {
          // A third starter holds `lock` now; the one moved aside loses its file (see above).
        }
      } else if (found.owner !== null) {
        tookOverFrom = found.owner;
      }
      fs.unlinkSync(aside);
    }
    return { kind: 'busy', path, holder: null };
  } finally {
    try {
      fs.unlinkSync(mine);
    } catch {
      // Only a leftover temporary file; it names this PID and is never read.
    }
  }
}

function readLock(fs: LockFs, path: string): { owner: LockOwner | null; inode: number } | null {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return null;
    throw error;
  }
  try {
    // One descriptor for both: the text and the inode are of the same file.
    return { owner: parseLockOwner(fs.readFileSync(fd, 'utf8')), inode: fs.fstatSync(fd).ino };
  } finally {
    fs.closeSync(fd);
  }
}

function release(fs: LockFs, path: string, inode: number): void {
  try {
    if (fs.statSync(path).ino === inode) fs.unlinkSync(path);
  } catch {
    // Gone already (the directory was removed): nothing to release.
  }
}

export function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String(error.code)
    : undefined;
}

function readText(path: string): string | null {
  try {
    return nodeFs.readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** The real probe: /proc (Linux) and kill(pid, 0). */
export const procProbe: ProcessProbe = {
  self: () => ({
    pid: process.pid,
    start: startOf(process.pid) ?? null,
    boot: readText('/proc/sys/kernel/random/boot_id')?.trim() ?? null,
  }),
  observe: (pid) => ({
    boot: readText('/proc/sys/kernel/random/boot_id')?.trim() ?? null,
    start: startOf(pid),
    signalable: signalable(pid),
  }),
};

/** starttime of `pid`; null when no such process; undefined where there is no /proc. */
function startOf(pid: number): string | null | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (stat !== null) return procStartTime(stat);
  return readText('/proc/self/stat') === null ? undefined : null;
}

function signalable(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errorCode(error) === 'EPERM';
  }
}
