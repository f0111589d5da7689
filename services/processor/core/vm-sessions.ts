/**
 * Which event records of a VM the processor applies, by the collector's (sessionId, sequence).
 * A collector numbers each QMP session's events from 1 without gaps, numbering only what its
 * spool accepted; after it dropped events it starts a new session. It starts a new session on
 * every reconnect too, and after a crash it re-sends what Kafka had not acknowledged, so a
 * record can be in the topic twice (never out of order: one spool, one request in flight).
 *
 * - same session, sequence = last + 1: apply;
 * - same session, sequence ≤ last: a redelivery (counted, ignored);
 * - same session, sequence > last + 1: a gap — events are missing, so no transition may be
 *   computed across it: counted, and handled like a new session;
 * - a session the VM had before the current one: a redelivery (the collector re-sent records of
 *   a session it left just before it crashed);
 * - any other session: a new QMP session; events may be missing before it, so the VM starts over.
 *
 * (Redeliveries of the processor's own input — a batch read again after a crash — never get
 * here: the partition's `nextOffset` skips them.)
 */
export type SessionVerdict = 'apply' | 'new_session' | 'gap' | 'redelivery';

export interface VmSessionState {
  sessionId: string;
  lastSequence: number;
  /** Sessions this VM had before the current one, newest last (bounded). */
  earlierSessions: readonly string[];
}

/** Shared by every VM that never changed session: one array, not one per VM. */
export const NO_EARLIER_SESSIONS: readonly string[] = Object.freeze([]);

const EARLIER_SESSIONS_KEPT = 4;

export function judgeEvent(
  state: VmSessionState | undefined,
  sessionId: string,
  sequence: number,
): SessionVerdict {
  if (state === undefined) return 'apply';
  if (sessionId === state.sessionId) {
    if (sequence <= state.lastSequence) return 'redelivery';
    return sequence === state.lastSequence + 1 ? 'apply' : 'gap';
  }
  return state.earlierSessions.includes(sessionId) ? 'redelivery' : 'new_session';
}

/** Records in `state` that an event `judgeEvent` did not call a redelivery was applied. */
export function recordApplied(state: VmSessionState, sessionId: string, sequence: number): void {
  if (sessionId !== state.sessionId) {
    state.earlierSessions = [...state.earlierSessions, state.sessionId].slice(
      -EARLIER_SESSIONS_KEPT,
    );
    state.sessionId = sessionId;
  }
  state.lastSequence = sequence;
}
