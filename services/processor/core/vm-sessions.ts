import { compareSessionIds, sessionIdMillis } from '../../shared/core/session-id.ts';

/**
 * Which event records of a VM the processor applies, by the collector's (sessionId, sequence).
 * A collector numbers each QMP session's events from 1 without gaps, numbering only what its
 * spool accepted; after it dropped events it starts a new session. It starts a new session on
 * every reconnect too, and after a crash it re-sends what Kafka had not acknowledged, so a
 * record can be in the topic twice (never out of order: one spool, one request in flight, so a
 * VM's sessions never interleave: once a newer session's record is in the topic, an older
 * session's records after it are copies of records before it).
 *
 * Session ids are UUIDv7 (shared/core/session-id.ts), ordered by age; ids of older collectors
 * are random and unordered, and older than any UUIDv7.
 *
 * Dead-lettered, with the state untouched (`SESSION_REJECT_REASONS`): a sequence that is not a
 * safe integer ≥ 1 (`bad_sequence`); a sequence more than `MAX_SEQUENCE_JUMP` beyond the last
 * one of the current session (`sequence_jump`: one record with sequence 2^53 − 1 would otherwise
 * make every later real event of the session a "redelivery"); a UUIDv7 session made more than
 * `MAX_SESSION_AHEAD_MICROS` after the record was received (`future_session`: a session from
 * the future would stay the newest for good).
 *
 * Otherwise:
 * - same session, sequence = last + 1: apply;
 * - same session, sequence ≤ last: a redelivery (counted, ignored);
 * - same session, sequence > last + 1: a gap — events are missing, so no transition may be
 *   computed across it: counted, and handled like a new session;
 * - a session the VM had before the current one (the last `EARLIER_SESSIONS_KEPT` are kept with
 *   their last sequence), up to that sequence: a redelivery (the collector re-sent records of a
 *   session it left just before it crashed);
 * - such an earlier session BEYOND its last sequence: a second writer — an earlier session that
 *   still advances after a newer one started. One collector never does that (see above), two
 *   collectors with the same `--host` (cloned images) and VM name do: counted and logged as
 *   `duplicate_writer`, not applied (the newest session keeps the VM);
 * - an unknown session older than the current one: a re-send of a session long gone (more than
 *   `EARLIER_SESSIONS_KEPT` back), or a second writer whose session is older: `stale_session`,
 *   counted, ignored — it can never demote the current session;
 * - any other session (newer, or both ids unordered): a new QMP session; events may be missing
 *   before it, so the VM starts over.
 *
 * (Redeliveries of the processor's own input — a batch read again after a crash — never get
 * here: the partition's `nextOffset` skips them.)
 */
export type SessionVerdict =
  | 'apply'
  | 'new_session'
  | 'gap'
  | 'redelivery'
  | 'stale_session'
  | 'duplicate_writer'
  | SessionRejectReason;

/** Dead-letter reasons of the session rules (see above). */
export const SESSION_REJECT_REASONS = ['bad_sequence', 'sequence_jump', 'future_session'] as const;
export type SessionRejectReason = (typeof SESSION_REJECT_REASONS)[number];

export interface VmSessionState {
  sessionId: string;
  lastSequence: number;
  /** Sessions this VM had before the current one, newest last (bounded). */
  earlierSessions: readonly string[];
  /**
   * The last sequence applied of each of `earlierSessions` (same index). State written before
   * these were kept reads back as `Number.MAX_SAFE_INTEGER`: unknown, never "advancing".
   */
  earlierSequences: readonly number[];
}

/** Shared by every VM that never changed session: one array, not one per VM. */
export const NO_EARLIER_SESSIONS: readonly string[] = Object.freeze([]);
export const NO_EARLIER_SEQUENCES: readonly number[] = Object.freeze([]);

const EARLIER_SESSIONS_KEPT = 4;

/**
 * The largest step a session's sequence may take: a gap means records missing from the topic
 * (refused by Kafka for good, one each; or lost to retention or an unclean leader election
 * while the processor was behind). QEMU throttles its chatty events to about one per second per
 * kind, so a million missing events of one VM's session is weeks of them; a bigger step is a
 * damaged or forged record, not lost events.
 */
export const MAX_SEQUENCE_JUMP = 1_000_000;

/** How far a session id's time may be ahead of the record's receive time (same host clock). */
export const MAX_SESSION_AHEAD_MICROS = 60_000_000;

export function judgeEvent(
  state: VmSessionState | undefined,
  sessionId: string,
  sequence: number,
  receivedMicros: number,
): SessionVerdict {
  if (!Number.isSafeInteger(sequence) || sequence < 1) return 'bad_sequence';
  const madeMillis = sessionIdMillis(sessionId);
  if (madeMillis !== null && madeMillis * 1000 > receivedMicros + MAX_SESSION_AHEAD_MICROS) {
    return 'future_session';
  }
  if (state === undefined) return 'apply';
  if (sessionId === state.sessionId) {
    if (sequence <= state.lastSequence) return 'redelivery';
    if (sequence === state.lastSequence + 1) return 'apply';
    return sequence - state.lastSequence > MAX_SEQUENCE_JUMP ? 'sequence_jump' : 'gap';
  }
  const earlier = state.earlierSessions.indexOf(sessionId);
  if (earlier >= 0) {
    const last = state.earlierSequences[earlier] ?? Number.MAX_SAFE_INTEGER;
    return sequence <= last ? 'redelivery' : 'duplicate_writer';
  }
  const order = compareSessionIds(sessionId, state.sessionId);
  return order !== null && order < 0 ? 'stale_session' : 'new_session';
}

/** Records in `state` that an event `judgeEvent` called apply, new_session or gap was applied. */
export function recordApplied(state: VmSessionState, sessionId: string, sequence: number): void {
  if (sessionId !== state.sessionId) {
    state.earlierSessions = [...state.earlierSessions, state.sessionId].slice(
      -EARLIER_SESSIONS_KEPT,
    );
    state.earlierSequences = [...state.earlierSequences, state.lastSequence].slice(
      -EARLIER_SESSIONS_KEPT,
    );
    state.sessionId = sessionId;
  }
  state.lastSequence = sequence;
}

/** `earlierSequences` for state saved without them: unknown, never taken as advancing. */
export function unknownEarlierSequences(earlierSessions: readonly string[]): readonly number[] {
  return earlierSessions.length === 0
    ? NO_EARLIER_SEQUENCES
    : earlierSessions.map(() => Number.MAX_SAFE_INTEGER);
}
