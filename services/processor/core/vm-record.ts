import { VmTransitions } from '../../shared/core/transition-engine.ts';
import type { VmStateValue } from './state-changelog.ts';
import {
  NO_EARLIER_SEQUENCES,
  NO_EARLIER_SESSIONS,
  unknownEarlierSequences,
  type VmSessionState,
} from './vm-sessions.ts';

/**
 * Everything a partition processor keeps about one VM, in one record: the engine's state of the
 * VM and the bookkeeping around it (the collector session and sequence applied last, and when
 * the VM was last heard of on the partition clock). It is also the unit saved to the state
 * changelog, as a `VmStateValue`.
 */
export interface VmRecord extends VmSessionState {
  readonly transitions: VmTransitions;
  /** Collector receive time of the VM's last applied event (the silence rule's input). */
  lastReceivedMicros: number;
}

/** A VM's first record, from its first applied event. */
export function newVmRecord(
  host: string,
  vm: string,
  sessionId: string,
  sequence: number,
  receivedMicros: number,
): VmRecord {
  return {
    transitions: new VmTransitions(host, vm),
    sessionId,
    lastSequence: sequence,
    earlierSessions: NO_EARLIER_SESSIONS,
    earlierSequences: NO_EARLIER_SEQUENCES,
    lastReceivedMicros: receivedMicros,
  };
}

/** The record back from its changelog value. */
export function restoreVmRecord(value: VmStateValue): VmRecord {
  return {
    transitions: VmTransitions.restore(value),
    sessionId: value.sessionId,
    lastSequence: value.lastSequence,
    earlierSessions:
      value.earlierSessions.length === 0 ? NO_EARLIER_SESSIONS : value.earlierSessions,
    earlierSequences:
      value.earlierSessions.length === 0
        ? NO_EARLIER_SEQUENCES
        : (value.earlierSequences ?? unknownEarlierSequences(value.earlierSessions)),
    lastReceivedMicros: value.lastReceivedMicros,
  };
}

/**
 * The record's changelog value (its JSON keeps this key order, as every version wrote it;
 * `earlierSequences`, added later, comes last).
 */
export function vmStateValue(record: VmRecord): VmStateValue {
  return {
    ...record.transitions.snapshot(),
    sessionId: record.sessionId,
    lastSequence: record.lastSequence,
    earlierSessions: record.earlierSessions,
    lastReceivedMicros: record.lastReceivedMicros,
    earlierSequences: record.earlierSequences,
  };
}
