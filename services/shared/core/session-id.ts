/**
 * Session ids that sort by age: UUIDv7 (RFC 9562, section 5.7), so that the processor can tell
 * an older session of a VM from a newer one (core/vm-sessions.ts) instead of taking any unknown
 * id for a new session.
 *
 *    0                   1                   2                   3
 *   |         unix_ts_ms (48 bits: ms since the epoch)                |
 *   |  unix_ts_ms  |  ver=7 | rand_a (12 bits: counter)                |
 *   |var=10| rand_b (62 bits: random)                                   |
 *
 * rand_a holds a counter (RFC 9562 6.2, method 1), so that the ids one collector makes within
 * one millisecond, or while its clock stands still or steps back, still increase: the next id
 * takes `max(clock, last)`, and the counter, overflowing into the next millisecond. Written as
 * lowercase hex with dashes, the ids of one generator sort as strings in the order made.
 *
 * Ids of the collectors before this one are random (UUIDv4, or anything a test wrote): they are
 * not ordered (`compareSessionIds` gives null), and every v7 id counts as newer than them — the
 * old ones were written before the collector was upgraded.
 *
 * Pure: the clock and the random bytes come in as data (io/session-ids.ts).
 */
export interface SessionIdState {
  readonly ms: number;
  readonly counter: number;
}

const MAX_COUNTER = 0xfff;
const MAX_MS = 2 ** 48 - 1;
const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The (time, counter) of the next id after `last`, with the clock reading `nowMs`. */
export function nextSessionIdState(last: SessionIdState | null, nowMs: number): SessionIdState {
  const now = Math.min(Math.max(0, Math.floor(nowMs)), MAX_MS);
  if (last === null || now > last.ms) return { ms: now, counter: 0 };
  if (last.counter < MAX_COUNTER) return { ms: last.ms, counter: last.counter + 1 };
  return { ms: last.ms + 1, counter: 0 };
}

/** The UUIDv7 text of `state` with 8 random bytes (the top 2 bits of the first are replaced). */
export function formatSessionId(state: SessionIdState, random: Uint8Array): string {
  const hex = (value: number, digits: number): string => value.toString(16).padStart(digits, '0');
  const rand = [...random.subarray(0, 8)].map((b) => hex(b, 2));
  const variant = hex(((random[0] ?? 0) & 0x3f) | 0x80, 2);
  const time = hex(state.ms, 12);
  return (
    `${time.slice(0, 8)}-${time.slice(8)}-7${hex(state.counter, 3)}-` +
    `${variant}${rand[1]}-${rand.slice(2).join('')}`
  );
}

/** Whether `id` is a UUIDv7 as written here (lowercase). */
export function isOrderedSessionId(id: string): boolean {
  return V7.test(id);
}

/** The millisecond a UUIDv7 session id was made at, or null when `id` is not one. */
export function sessionIdMillis(id: string): number | null {
  return isOrderedSessionId(id) ? parseInt(id.slice(0, 8) + id.slice(9, 13), 16) : null;
}

/**
 * Negative when session `a` is older than `b`, positive when newer, 0 when the same; a legacy
 * (unordered) id is older than any UUIDv7; null when neither is a UUIDv7 (no order is known).
 */
export function compareSessionIds(a: string, b: string): number | null {
  const orderedA = isOrderedSessionId(a);
  const orderedB = isOrderedSessionId(b);
  if (orderedA && orderedB) return a < b ? -1 : a > b ? 1 : 0;
  if (orderedA) return 1;
  if (orderedB) return -1;
  return a === b ? 0 : null;
}
