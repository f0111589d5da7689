/**
 * Reconnect delays: capped exponential backoff with "equal jitter" (AWS architecture blog,
 * "Exponential Backoff And Jitter"): half of the capped exponential step is kept, the other half
 * is random. Keeping half means a flapping socket never reconnects in a tight loop; the random
 * half spreads 1,000 VMs that lost their sockets at the same moment (a collector restart, a host
 * hiccup) so they do not all reconnect in the same millisecond.
 *
 * Pure: the random number arrives as an argument.
 */
export interface BackoffPolicy {
  /** Delay step of the first retry, ms. */
  initialMs: number;
  /** No delay is longer than this, ms. */
  maxMs: number;
  /** Growth per attempt. */
  multiplier: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 100, maxMs: 30_000, multiplier: 2 };

/** The capped exponential step for a 0-based attempt, before jitter. */
export function backoffCeilingMs(policy: BackoffPolicy, attempt: number): number {
  const step = policy.initialMs * Math.pow(policy.multiplier, Math.max(0, attempt));
  return Math.min(policy.maxMs, step);
}

/** Delay before retry number `attempt` (0-based); `random` is uniform in [0, 1). */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number, random: number): number {
  const ceiling = backoffCeilingMs(policy, attempt);
  const half = ceiling / 2;
  return Math.round(half + half * Math.min(Math.max(random, 0), 1));
}
