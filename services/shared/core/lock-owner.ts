/**
 * Who holds a directory's lock: the content of its `lock` file (io/dir-lock.ts), and whether
 * that holder still runs. Node has no flock(2), so the lock is a file created atomically with
 * link(2) that names its holder; a holder that died (SIGKILL, OS crash) leaves the file behind,
 * and the next process must tell a live holder from a stale file:
 *
 *   lock  {"pid":1234,"start":"987654","boot":"5d4e...-..."}
 *
 * - `boot` is `/proc/sys/kernel/random/boot_id`: a lock from before a reboot is stale;
 * - `start` is field 22 of `/proc/<pid>/stat` (starttime, clock ticks since boot): a PID that
 *   was reused by another process since has another start time, so the lock is stale;
 * - without /proc (not Linux) both are null and the PID alone decides (kill(pid, 0)).
 *
 * Pure: the io layer reads the files and passes their text in. (The same rule as the
 * collector spool's lock, written for any directory: the processor's state directory uses it.)
 */
export interface LockOwner {
  readonly pid: number;
  /** starttime of the holder's /proc/<pid>/stat, or null where there is no /proc. */
  readonly start: string | null;
  /** The boot the lock was taken in, or null where unknown. */
  readonly boot: string | null;
}

/** The lock file's text for `owner`. */
export function formatLockOwner(owner: LockOwner): string {
  return `${JSON.stringify({ pid: owner.pid, start: owner.start, boot: owner.boot })}\n`;
}

/** The owner a lock file names, or null when its text is not one (torn by an OS crash). */
export function parseLockOwner(text: string): LockOwner | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { pid, start, boot } = value as Record<string, unknown>;
  if (!Number.isSafeInteger(pid) || (pid as number) <= 0) return null;
  if (start !== null && typeof start !== 'string') return null;
  if (boot !== null && typeof boot !== 'string') return null;
  return { pid: pid as number, start, boot };
}

/**
 * The starttime field (22nd) of a `/proc/<pid>/stat` line of a running process; null when the
 * text is not one, or when the process has exited and waits to be reaped (state Z or X: its
 * lock is stale though its PID still exists). The second field (the command name, in
 * parentheses) may hold spaces and parentheses itself, so fields are counted from the last `)`.
 */
export function procStartTime(stat: string): string | null {
  const close = stat.lastIndexOf(')');
  if (close < 0) return null;
  // After ") ": field 3 (state) onwards; starttime is field 22, the 20th of these.
  const fields = stat.slice(close + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return null;
  const start = fields[19];
  return start !== undefined && /^\d+$/.test(start) ? start : null;
}

/** What is known now of the process a lock names. */
export interface ObservedProcess {
  /** This boot's id, or null where unknown. */
  readonly boot: string | null;
  /**
   * The named PID's /proc/<pid>/stat starttime: a string when it runs, null when no such
   * process, undefined where there is no /proc (then `signalable` decides).
   */
  readonly start: string | null | undefined;
  /** kill(pid, 0) succeeded or failed with EPERM (the PID exists). */
  readonly signalable: boolean;
}

/** Whether the lock's holder still runs (the lock is held), or the lock file is stale. */
export function lockHolderAlive(owner: LockOwner, now: ObservedProcess): boolean {
  if (owner.boot !== null && now.boot !== null && owner.boot !== now.boot) return false;
  if (now.start === undefined) return now.signalable;
  if (now.start === null) return false;
  return owner.start === null || owner.start === now.start;
}
