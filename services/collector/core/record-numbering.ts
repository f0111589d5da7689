/**
 * The (sessionId, sequence) each record carries. The processor reads a session as one unbroken
 * stream from QEMU: sequence 1, 2, 3... without gaps, and a new session id as "events may be
 * missing before this" (it aborts what was open, as after a reconnect). So:
 *
 * - a number is taken only by a record the spool accepted: `next` proposes, `accepted` commits;
 *   a record refused by the spool (or not encodable) leaves the sequence where it was;
 * - once a VM lost an event (`dropped`), its next accepted record starts a new session id with
 *   sequence 1, so nothing downstream is computed across the hole.
 *
 * State is per message key (one VM); a new QMP session starts over with the QMP session's id.
 * Pure apart from the injected id source.
 */

/** `spool_sync`: written, but the segment's fdatasync failed (the entries may be lost). */
export type DropCause = 'spool_full' | 'spool_io' | 'spool_sync' | 'invalid_record';

export interface RecordNumber {
  readonly sessionId: string;
  readonly sequence: number;
  /** Set when this number starts a new session because events were dropped before it. */
  readonly renewed: { readonly after: DropCause; readonly previousSessionId: string } | null;
}

interface KeyState {
  qmpSessionId: string;
  sessionId: string;
  sequence: number;
  droppedBy: DropCause | null;
  nextSessionId: string | null;
}

export class RecordNumbering {
  private readonly newSessionId: () => string;
  private readonly states = new Map<string, KeyState>();

  constructor(newSessionId: () => string) {
    this.newSessionId = newSessionId;
  }

  /** The number the next record of `key` gets if the spool accepts it. */
  next(key: string, qmpSessionId: string): RecordNumber {
    let state = this.states.get(key);
    if (state === undefined || state.qmpSessionId !== qmpSessionId) {
      state = {
        qmpSessionId,
        sessionId: qmpSessionId,
        sequence: 0,
        droppedBy: null,
        nextSessionId: null,
      };
      this.states.set(key, state);
    }
    if (state.droppedBy === null) {
      return { sessionId: state.sessionId, sequence: state.sequence + 1, renewed: null };
    }
    state.nextSessionId ??= this.newSessionId();
    return {
      sessionId: state.nextSessionId,
      sequence: 1,
      renewed: { after: state.droppedBy, previousSessionId: state.sessionId },
    };
  }

  /** The spool accepted the record numbered `number` (from `next`, for the same key). */
  accepted(key: string, number: RecordNumber): void {
    const state = this.states.get(key);
    if (state === undefined) return;
    state.sessionId = number.sessionId;
    state.sequence = number.sequence;
    state.droppedBy = null;
    state.nextSessionId = null;
  }

  /** An event of `key` was lost after `next`/`accepted`; the next accepted record renews. */
  dropped(key: string, cause: DropCause): void {
    const state = this.states.get(key);
    if (state !== undefined && state.droppedBy === null) state.droppedBy = cause;
  }

  /** The QMP session of `key` ended: its numbering is not needed any more. */
  ended(key: string, qmpSessionId: string): void {
    if (this.states.get(key)?.qmpSessionId === qmpSessionId) this.states.delete(key);
  }
}
