/**
 * One process per spool directory. Two collectors on one spool both append to its segments,
 * both rewrite `ack`, and one deletes segments the other has not sent: data loss. So the spool
 * directory holds a `lock` file naming its holder (shared/io/dir-lock.ts, the lock the processor's state directory uses too), and a collector
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
import { TelemetryError } from '../../shared/core/errors.ts';
import {
  errorCode,
  lockDir,
  procProbe,
  type HeldDirLock,
  type ProcessProbe,
} from '../../shared/io/dir-lock.ts';
import { nodeSpoolFs, type SpoolFs } from './spool-fs.ts';

export { errorCode, LOCK_FILE, procProbe, type ProcessProbe } from '../../shared/io/dir-lock.ts';

export type HeldSpoolLock = HeldDirLock;

/** Takes the lock of `dir` (which must exist); throws SPOOL_LOCKED or SPOOL_UNWRITABLE. */
export function lockSpoolDir(
  dir: string,
  fs: SpoolFs = nodeSpoolFs,
  probe: ProcessProbe = procProbe,
): HeldSpoolLock {
  let result;
  try {
    result = lockDir(dir, fs, probe);
  } catch (error) {
    throw spoolUnwritable(dir, error);
  }
  if (result.kind === 'held') return result.lock;
  const { path, holder } = result;
  if (holder === null) {
    throw new TelemetryError(
      'SPOOL_LOCKED',
      `spool directory ${dir}: the lock file ${path} keeps changing; another collector is starting on it`,
      { details: { dir, lockFile: path } },
    );
  }
  throw new TelemetryError(
    'SPOOL_LOCKED',
    `spool directory ${dir} is in use by process ${holder.pid} (lock file ${path}); ` +
      'one collector per spool directory',
    { details: { dir, pid: holder.pid, lockFile: path } },
  );
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
