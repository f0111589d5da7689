/**
 * One log line per key per interval, and how many lines were held back since the last one: a
 * flapping socket or a topic full of poison records stays visible without flooding the log.
 * Counting is never limited, only logging. Pure: the time arrives as an argument.
 */
export interface LogRateLimit {
  /** The lines suppressed for `key` since its last admitted line, or null to suppress this one. */
  admit(key: string, nowMs: number): number | null;
}

export function createLogRateLimit(intervalMs: number): LogRateLimit {
  const limited = new Map<string, { last: number; suppressed: number }>();
  return {
    admit(key, nowMs) {
      const state = limited.get(key);
      if (state !== undefined && nowMs - state.last < intervalMs) {
        state.suppressed++;
        return null;
      }
      limited.set(key, { last: nowMs, suppressed: 0 });
      return state?.suppressed ?? 0;
    },
  };
}
