/**
 * What the transition engine emits and the processor publishes to the transitions topic
 * (Avro schema `schemas/vfio-transition.avsc`, flat: `type` tells which fields are set).
 */

/** How a prepare ended. Kept as a string on the wire so new outcomes can be added. */
export const PREPARE_OUTCOMES = [
  'completed',
  'failed',
  'timed_out',
  'aborted',
  'unfinished',
] as const;
export type PrepareOutcome = (typeof PREPARE_OUTCOMES)[number];

/** The `type` of a transition record: a prepare and how it ended, or the dwell in one state. */
export const TRANSITION_TYPES = ['prepare', 'dwell'] as const;
export type TransitionType = (typeof TRANSITION_TYPES)[number];

interface DeviceRef {
  host: string;
  vm: string;
  qomPath: string;
  deviceId: string;
}

/**
 * A `*-prepare` state and how it ended. `next` and `seconds` are set for `completed` and
 * `failed` (closed by an event of the device), and null for the outcomes that no event of the
 * device closed (`timed_out`, `aborted`, `unfinished`).
 */
export interface PrepareRecord extends DeviceRef {
  type: 'prepare';
  /** The announced state: the prepare state without its `-prepare` suffix. */
  target: string;
  /** The prepare state as QEMU sent it, e.g. `pre-copy-p2p-prepare`. */
  prepareState: string;
  outcome: PrepareOutcome;
  next: string | null;
  seconds: number | null;
  /** QEMU timestamp of the prepare, µs. */
  startMicros: number;
  /** QEMU timestamp of the event that closed it, µs; null when no event of the device did. */
  endMicros: number | null;
}

/** Time a device spent in one non-prepare state before changing to `next`. */
export interface DwellRecord extends DeviceRef {
  type: 'dwell';
  state: string;
  next: string;
  seconds: number;
  startMicros: number;
  endMicros: number;
}

export type TransitionRecord = PrepareRecord | DwellRecord;
