import { createLogRateLimit } from '../core/log-rate-limit.ts';
import type { Logger } from './logger.ts';

/** Logs at most one line per key per interval; a line after suppressed ones says how many. */
export type RateLimitedLog = (
  key: string,
  level: 'warn' | 'error',
  message: string,
  fields: Record<string, unknown>,
) => void;

export const LOG_RATE_LIMIT_MS = 10_000;

export function createRateLimitedLog(
  logger: Logger,
  intervalMs = LOG_RATE_LIMIT_MS,
  nowMs: () => number = Date.now,
): RateLimitedLog {
  const limit = createLogRateLimit(intervalMs);
  return (key, level, message, fields) => {
    const suppressed = limit.admit(key, nowMs());
    if (suppressed === null) return;
    logger[level](message, suppressed > 0 ? { ...fields, suppressed } : fields);
  };
}
