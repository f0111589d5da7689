/**
 * Which event records a processor has already applied, per VM, by the collector's
 * (sessionId, sequence). A collector numbers each QMP session's events from 1 and starts a new
 * session on every reconnect; after a crash it re-sends what Kafka had not acknowledged, so a
 * record can arrive twice. Within a session, a sequence at or below the last applied one is a
 * redelivery. A session id seen before but no longer current is a stale redelivery. An unknown
 * session id is a new QMP session: events may be missing before it, so the VM starts over.
 */
export type SessionVerdict = 'apply' | 'new_session' | 'redelivery';

export interface VmSessionState {
  sessionId: string;
  lastSequence: number;
  /** Sessions this VM had before the current one, newest last (bounded). */
  earlierSessions: readonly string[];
}

/** Shared by every VM that never changed session: one array, not one per VM. */
const NO_EARLIER_SESSIONS: readonly string[] = Object.freeze([]);

const EARLIER_SESSIONS_KEPT = 4;

export function judgeEvent(
  state: VmSessionState | undefined,
  sessionId: string,
  sequence: number,
): SessionVerdict {
  if (state === undefined) return 'apply';
  if (sessionId === state.sessionId) return sequence > state.lastSequence ? 'apply' : 'redelivery';
  return state.earlierSessions.includes(sessionId) ? 'redelivery' : 'new_session';
}

/** The state after applying an event that `judgeEvent` accepted. */
export function recordApplied(
  state: VmSessionState | undefined,
  sessionId: string,
  sequence: number,
): VmSessionState {
  if (state === undefined) {
    return { sessionId, lastSequence: sequence, earlierSessions: NO_EARLIER_SESSIONS };
  }
  if (sessionId === state.sessionId) {
    state.lastSequence = sequence;
    return state;
  }
  const earlierSessions = [...state.earlierSessions, state.sessionId].slice(-EARLIER_SESSIONS_KEPT);
  return { sessionId, lastSequence: sequence, earlierSessions };
}
