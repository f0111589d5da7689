/**
 * One process per spool directory. Two collectors on one spool both append to its segments,
 * both rewrite `ack`, and one deletes segments the other has not sent: data loss. So the spool
 * directory holds a `lock` file naming its holder (core/spool-lock-owner.ts), and a collector
 * that finds a live holder refuses to start (SPOOL_LOCKED, exit status 2, naming the PID).
 *
 * Node has no flock(2) (and a helper process holding one would outlive a SIGKILLed collector),
 * so the lock is a file whose creation is atomic: the holder's identity is written to a private
 * temporary file, which is then hard-linked to `lock` — link(2) fails with EEXIST when `lock`
 * exists, so exactly one of two starters wins, and `lock` is never seen half-written.
 *
 * A stale lock (its holder died: SIGKILL, OS crash, a PID reused since) is taken over: it is
 * renamed aside (rename(2) is atomic: of two starters that judged the same file stale, one moves
 * it), the one moved aside is checked to be the file judged stale (same inode), deleted, and the
 * link is tried again. If another starter replaced the stale file in between, the file moved
 * aside is a live lock: it is linked back. What is left: three starters within microseconds of
 * each other on a stale lock can still both win; the lock is against accidents (a second unit,
 * a cloned config), not against an adversary.
 *
 * Limits: liveness is read from /proc of this PID namespace, so collectors in different PID
 * namespaces (containers) sharing one spool directory do not see each other; give each its own
 * directory. The lock is released (deleted, if it is still ours) when the spool closes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TelemetryError } from '../../shared/core/errors.ts';
import {
  formatLockOwner,
  lockHolderAlive,
  parseLockOwner,
  procStartTime,
  type LockOwner,
  type ObservedProcess,
} from '../core/spool-lock-owner.ts';
import { nodeSpoolFs, type SpoolFs } from './spool-fs.ts';

export const LOCK_FILE = 'lock';

/** How a process is looked at: the real /proc and kill(2) unless a test passes its own. */
export interface ProcessProbe {
  self(): LockOwner;
  observe(pid: number): ObservedProcess;
}

export interface HeldSpoolLock {
  readonly path: string;
  /** The stale holder whose lock was taken over, or null when there was none. */
  readonly tookOverFrom: LockOwner | null;
  /** Deletes the lock file if it is still this process's. Never throws. */
  release(): void;
}

const TAKEOVER_ATTEMPTS = 5;

/** Takes the lock of `dir` (which must exist); throws SPOOL_LOCKED or SPOOL_UNWRITABLE. */
export function lockSpoolDir(
  dir: string,
  fs: SpoolFs = nodeSpoolFs,
  probe: ProcessProbe = procProbe,
): HeldSpoolLock {
  const path = join(dir, LOCK_FILE);
  const self = probe.self();
  const mine = join(dir, `${LOCK_FILE}.${self.pid}.tmp`);
  try {
    fs.writeFileSync(mine, formatLockOwner(self));
  } catch (error) {
    throw spoolUnwritable(dir, error);
  }
  let tookOverFrom: LockOwner | null = null;
  try {
    for (let attempt = 0; attempt < TAKEOVER_ATTEMPTS; attempt++) {
      try {
        fs.linkSync(mine, path);
        const inode = fs.statSync(path).ino;
        return { path, tookOverFrom, release: () => release(fs, path, inode) };
      } catch (error) {
        if (errorCode(error) !== 'EEXIST') throw spoolUnwritable(dir, error);
      }
      const found = readLock(fs, path);
      if (found === null) continue;
      if (found.owner !== null && lockHolderAlive(found.owner, probe.observe(found.owner.pid))) {
        throw new TelemetryError(
          'SPOOL_LOCKED',
          `spool directory ${dir} is in use by process ${found.owner.pid} (lock file ${path}); ` +
            'one collector per spool directory',
          { details: { dir, pid: found.owner.pid, lockFile: path } },
        );
      }
      const aside = join(dir, `${LOCK_FILE}.${self.pid}.stale`);
      try {
        fs.renameSync(path, aside);
      } catch (error) {
        if (errorCode(error) === 'ENOENT') continue;
        throw spoolUnwritable(dir, error);
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
    throw new TelemetryError(
      'SPOOL_LOCKED',
      `spool directory ${dir}: the lock file ${path} keeps changing; another collector is starting on it`,
      { details: { dir, lockFile: path } },
    );
  } catch (error) {
    throw error instanceof TelemetryError ? error : spoolUnwritable(dir, error);
  } finally {
    try {
      fs.unlinkSync(mine);
    } catch {
      // Only a leftover temporary file; it names this PID and is never read.
    }
  }
}

function readLock(fs: SpoolFs, path: string): { owner: LockOwner | null; inode: number } | null {
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

function release(fs: SpoolFs, path: string, inode: number): void {
  try {
    if (fs.statSync(path).ino === inode) fs.unlinkSync(path);
  } catch {
    // Gone already (the directory was removed): nothing to release.
  }
}

/** SPOOL_UNWRITABLE for a failed start-up write in `dir`: the message names the errno and path. */
export function spoolUnwritable(dir: string, error: unknown): TelemetryError {
  const reason = error instanceof Error ? error.message : String(error);
  return new TelemetryError(
    'SPOOL_UNWRITABLE',
    `spool directory ${dir} cannot be used: ${reason}`,
    {
      cause: error,
      details: { dir, errno: errorCode(error) ?? null },
    },
  );
}

export function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String(error.code)
    : undefined;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
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
