import type { EventRecord } from '../../shared/core/event-record.ts';
import type { RejectReason } from '../../shared/core/qmp-message.ts';
import { prepareTimeoutMicros } from '../../shared/core/transition-engine.ts';
import type { TransitionRecord } from '../../shared/core/transition-record.ts';
import { vmEventFromRecord } from '../../shared/core/vm-event.ts';
import type { PublishedTransition } from './published-transition.ts';
import type { PartitionMeta, VmStateValue } from './state-changelog.ts';
import { newVmRecord, restoreVmRecord, vmStateValue, type VmRecord } from './vm-record.ts';
import {
  judgeEvent,
  MAX_SEQUENCE_JUMP,
  MAX_SESSION_AHEAD_MICROS,
  recordApplied,
  type SessionRejectReason,
} from './vm-sessions.ts';

/**
 * The processor's logic for one partition of the events topic, pure and deterministic from the
 * partition's records in offset order: the same transition engine as `replay`, plus what a
 * long-running consumer needs around it — sessions and sequence gaps, VMs that fall silent,
 * VMs to forget, and the state to persist and restore — in one record per VM (`vm-record.ts`).
 * It has no clock of its own.
 *
 * Time is data, from two sources that are trusted for different things:
 * - QEMU timestamps drive the engine: durations within one VM (prepare-to-completion latency,
 *   time in each state) are differences of one host's clock, right whatever that clock's offset.
 * - The partition's clock is broker time: the newest Kafka timestamp of the partition's records.
 *   The events topic has `message.timestamp.type=LogAppendTime` (checked at processor start), so
 *   that is the time the partition leader appended the record, not any host's. Every record
 *   moves it (dead letters too); it only moves forward. Each VM remembers the broker time of its
 *   last record (`lastReceivedMicros`, the name the state format keeps). Rules, applied before
 *   each record once the clock has advanced to it:
 * - a VM whose last record was appended more than the prepare timeout before the clock has its
 *   open prepares end as `timed_out`, and a VM that has no devices left (shut down, or a new
 *   session that brought none) is forgotten — its state record becomes a tombstone;
 * - a VM whose last record was appended more than the VM retention (`--vm-retention-ms`, 7 days)
 *   before the clock is forgotten too, devices and all: its memory is freed and its state record
 *   becomes a tombstone, so the compacted state topic forgets it as well. If it speaks again it
 *   starts over like a new VM (the state it was in for the whole silence is not reported).
 * So a VM that goes silent while its partition keeps flowing ends its prepares; on a partition
 * where nothing arrives nothing happens until something does (then the rules catch up), and an
 * offline recomputation from the topic (timestamps included) gives exactly the same records.
 * No host's clock can move the partition's clock: a host a year ahead, or minutes ahead, times
 * out nobody else's prepares (issue 18; before, the clock was the newest collector receive time).
 *
 * A receive time more than `MAX_CLOCK_DISAGREEMENT_MICROS` (60 s) from the record's QEMU
 * timestamp (or not a time) is counted (`untrustedReceiveTimes`): both come from the same host's
 * wall clock, read milliseconds apart, so a wider gap means one of them is wrong (a corrupt
 * record, a clock stepped between the two readings). The event is still applied.
 *
 * Identifiers longer than `MAX_IDENTIFIER_LENGTH` (host, VM, session, event, qom-path, device id,
 * device state) make a record invalid (`too_large`): no real QEMU or collector sends them, and
 * each would be kept per VM and copied into every transition and state record. So does a new
 * device of a VM that has `MAX_DEVICES_PER_VM` already: the VM's state record holds every
 * device, and one too large for the state topic would be lost to a restore.
 *
 * One VM's events always share a partition (the collector keys records by host+VM), so each
 * partition has its own VMs and a rebalance moves whole VMs.
 */
export interface PartitionProcessorOptions {
  prepareTimeoutSeconds: number;
  /** Data time after which a VM with no event is forgotten (default `DEFAULT_VM_RETENTION_MS`). */
  vmRetentionMs?: number;
}

/** 7 days of partition clock. */
export const DEFAULT_VM_RETENTION_MS = 7 * 24 * 3600 * 1000;

/** How far a record's receive time may be from its QEMU timestamp before it is counted untrusted. */
export const MAX_CLOCK_DISAGREEMENT_MICROS = 60_000_000;

/** The longest identifier a record may carry, in UTF-16 code units. */
export const MAX_IDENTIFIER_LENGTH = 1024;

/** The most devices one VM may have (a real VM has a few VFIO devices; each costs state). */
export const MAX_DEVICES_PER_VM = 256;

/** Per-record counts a batch reports (self-telemetry). */
export interface ApplyCounts {
  applied: number;
  /** (session, sequence) already applied: a collector re-send. */
  redeliveries: number;
  /** Events identical to the device's previous event. */
  identical: number;
  newSessions: number;
  sequenceGaps: number;
  /** VMs whose open prepares timed out because they fell silent on the partition clock. */
  silentTimeouts: number;
  forgottenVms: number;
  /** VMs forgotten because no event of theirs arrived for the VM retention. */
  expiredVms: number;
  /** Records whose receive time disagrees with their QEMU timestamp (see the file comment). */
  untrustedReceiveTimes: number;
  /** Records of an unknown session older than the VM's current one (ignored; vm-sessions.ts). */
  staleSessions: number;
  /** Records of an earlier session that still advances: a second writer (vm-sessions.ts). */
  duplicateWriterEvents: number;
}

export function emptyApplyCounts(): ApplyCounts {
  return {
    applied: 0,
    redeliveries: 0,
    identical: 0,
    newSessions: 0,
    sequenceGaps: 0,
    silentTimeouts: 0,
    forgottenVms: 0,
    expiredVms: 0,
    untrustedReceiveTimes: 0,
    staleSessions: 0,
    duplicateWriterEvents: 0,
  };
}

/** A sequence gap within one session, for the log. */
export interface SequenceGap {
  host: string;
  vm: string;
  sessionId: string;
  expected: number;
  got: number;
}

/** Two writers of one host/VM key: `sessionId` advanced after `currentSessionId` started. */
export interface DuplicateWriter {
  host: string;
  vm: string;
  sessionId: string;
  sequence: number;
  currentSessionId: string;
}

export type ApplyResult =
  | { kind: 'done' }
  | { kind: 'invalid'; reason: RejectReason | SessionRejectReason; detail: string }
  | { kind: 'gap'; gap: SequenceGap }
  | { kind: 'duplicate_writer'; writer: DuplicateWriter };

export class PartitionProcessor {
  readonly partition: number;
  private readonly timeoutMicros: number;
  private readonly retentionMicros: number;
  /** Per host, per VM. Nested maps rather than a "host/vm" key: no key string per VM. */
  private readonly vms = new Map<string, Map<string, VmRecord>>();
  /** VMs to save at the next `takeChanges()`: changed by an event, a timeout or the sessions. */
  private changed = new Set<VmRecord>();
  private next = 0;
  private clock = 0;
  /** A lower bound of the earliest moment the silence rule can act; -∞ forces a look. */
  private nextDeadline = Number.NEGATIVE_INFINITY;
  /** VMs forgotten since the last `takeChanges()` (host, vm). */
  private forgotten = new Map<string, [string, string]>();

  constructor(partition: number, options: PartitionProcessorOptions) {
    this.partition = partition;
    this.timeoutMicros = prepareTimeoutMicros(options.prepareTimeoutSeconds);
    const retentionMs = options.vmRetentionMs ?? DEFAULT_VM_RETENTION_MS;
    if (!Number.isSafeInteger(retentionMs) || retentionMs * 1000 <= this.timeoutMicros) {
      throw new RangeError(
        `vmRetentionMs must be a whole number of ms longer than the prepare timeout, got ${retentionMs}`,
      );
    }
    this.retentionMicros = retentionMs * 1000;
  }

  /** The next offset to apply: every record below it is reflected in the state. */
  get nextOffset(): number {
    return this.next;
  }

  meta(): PartitionMeta {
    return { nextOffset: this.next, clockMicros: this.clock };
  }

  /** Rebuilds the partition from its saved state (the folded changelog). */
  restore(values: Iterable<VmStateValue>, meta: PartitionMeta | null): void {
    for (const value of values) this.vmsOf(value.host).set(value.vm, restoreVmRecord(value));
    this.changed.clear();
    this.next = meta?.nextOffset ?? 0;
    this.clock = meta?.clockMicros ?? 0;
    this.nextDeadline = Number.NEGATIVE_INFINITY;
  }

  /**
   * A record at `offset` that is not an event record (dead-lettered): the offset moves, and the
   * clock to its broker time (`brokerMicros`, µs).
   */
  skip(offset: number, brokerMicros: number): void {
    if (offset >= this.next) this.next = offset + 1;
    this.advanceClock(brokerMicros);
  }

  /**
   * Applies the event record at `offset` (at or after `nextOffset`), appended by the broker at
   * `brokerMicros` (its Kafka timestamp, µs); transitions are appended to `out`.
   */
  apply(
    offset: number,
    brokerMicros: number,
    record: EventRecord,
    out: PublishedTransition[],
    counts: ApplyCounts,
  ): ApplyResult {
    this.next = offset + 1;
    this.advanceClock(brokerMicros);
    if (this.clock > this.nextDeadline) this.sweepSilent(out, counts);

    const tooLong = overlongIdentifier(record);
    if (tooLong !== null) return { kind: 'invalid', reason: 'too_large', detail: tooLong };
    const event = vmEventFromRecord(record);
    if (event.kind === 'invalid')
      return { kind: 'invalid', reason: event.reason, detail: event.detail };
    if (!receiveTimeAgrees(record)) counts.untrustedReceiveTimes++;
    // The VM's last record, on the partition clock: what the silence and retention rules compare.
    const receivedMicros = this.clock;

    const { host, vm, sessionId, sequence } = record;
    let vmRecord = this.vms.get(host)?.get(vm);
    const verdict = judgeEvent(vmRecord, sessionId, sequence, record.receivedMicros);
    switch (verdict) {
      case 'redelivery':
        counts.redeliveries++;
        return { kind: 'done' };
      case 'stale_session':
        counts.staleSessions++;
        return { kind: 'done' };
      case 'duplicate_writer':
        counts.duplicateWriterEvents++;
        return {
          kind: 'duplicate_writer',
          writer: {
            host,
            vm,
            sessionId,
            sequence,
            currentSessionId: (vmRecord as VmRecord).sessionId,
          },
        };
      case 'bad_sequence':
      case 'sequence_jump':
      case 'future_session':
        return {
          kind: 'invalid',
          reason: verdict,
          detail: sessionRejectDetail(verdict, record, vmRecord),
        };
      default:
    }
    let result: ApplyResult = { kind: 'done' };
    if (vmRecord !== undefined && verdict !== 'apply') {
      if (verdict === 'gap') {
        counts.sequenceGaps++;
        result = {
          kind: 'gap',
          gap: { host, vm, sessionId, expected: vmRecord.lastSequence + 1, got: sequence },
        };
      } else {
        counts.newSessions++;
      }
      emit(vmRecord.sessionId, vmRecord.transitions.abort(), out);
    }
    if (vmRecord === undefined) {
      vmRecord = newVmRecord(host, vm, sessionId, sequence, receivedMicros);
      this.vmsOf(host).set(vm, vmRecord);
      this.forgotten.delete(`${host}\u0000${vm}`);
    } else {
      recordApplied(vmRecord, sessionId, sequence);
      vmRecord.lastReceivedMicros = receivedMicros;
    }

    if (
      event.kind === 'vfio' &&
      vmRecord.transitions.deviceCount >= MAX_DEVICES_PER_VM &&
      !vmRecord.transitions.hasDevice(event.qomPath)
    ) {
      // In sequence, so the session goes on; only the device is refused.
      result = {
        kind: 'invalid',
        reason: 'too_large',
        detail: `the VM has ${MAX_DEVICES_PER_VM} devices already; a new qom-path is refused`,
      };
    } else {
      const transitions = vmRecord.transitions.apply(event, this.timeoutMicros);
      if (transitions === null) counts.identical++;
      else {
        counts.applied++;
        emit(sessionId, transitions, out);
      }
    }
    // Saved even when the engine saw nothing new: the session bookkeeping moved.
    this.changed.add(vmRecord);
    const deadline = vmRecord.lastReceivedMicros + this.timeoutMicros;
    if (deadline < this.nextDeadline) this.nextDeadline = deadline;
    return result;
  }

  /**
   * The silence and retention rules (see the file comment). A VM with open prepares or no
   * devices is judged by the prepare timeout, any other by the retention. Candidates are handled
   * in a fixed order (last receive time, host, VM), not in map order, which differs after a
   * restore. `nextDeadline` ends exact: the earliest clock at which either rule acts again.
   */
  private sweepSilent(out: PublishedTransition[], counts: ApplyCounts): void {
    const timeoutLimit = this.clock - this.timeoutMicros;
    const retentionLimit = this.clock - this.retentionMicros;
    const silent: VmRecord[] = [];
    let nextDeadline = Number.POSITIVE_INFINITY;
    for (const vms of this.vms.values()) {
      for (const vmRecord of vms.values()) {
        const last = vmRecord.lastReceivedMicros;
        if (waitsOnTimeout(vmRecord) ? last < timeoutLimit : last < retentionLimit) {
          silent.push(vmRecord);
        } else {
          nextDeadline = Math.min(nextDeadline, this.deadlineOf(vmRecord));
        }
      }
    }
    silent.sort(
      (a, b) =>
        a.lastReceivedMicros - b.lastReceivedMicros ||
        compare(a.transitions.host, b.transitions.host) ||
        compare(a.transitions.vm, b.transitions.vm),
    );
    for (const vmRecord of silent) {
      const { host, vm } = vmRecord.transitions;
      if (vmRecord.transitions.openPrepares > 0) {
        counts.silentTimeouts++;
        emit(vmRecord.sessionId, vmRecord.transitions.timeOut(), out);
        this.changed.add(vmRecord);
      }
      const expired = vmRecord.lastReceivedMicros < retentionLimit;
      if (vmRecord.transitions.deviceCount === 0 || expired) {
        if (vmRecord.transitions.deviceCount === 0) counts.forgottenVms++;
        else counts.expiredVms++;
        this.changed.delete(vmRecord);
        const vms = this.vms.get(host);
        vms?.delete(vm);
        if (vms?.size === 0) this.vms.delete(host);
        this.forgotten.set(`${host}\u0000${vm}`, [host, vm]);
      } else {
        // Timed out, devices kept: the retention rule is next.
        nextDeadline = Math.min(nextDeadline, this.deadlineOf(vmRecord));
      }
    }
    this.nextDeadline = nextDeadline;
  }

  /** Broker time only moves the clock forward (a new leader's clock may be a little behind). */
  private advanceClock(brokerMicros: number): void {
    if (Number.isSafeInteger(brokerMicros) && brokerMicros > this.clock) this.clock = brokerMicros;
  }

  /** The clock beyond which a rule acts on this VM. */
  private deadlineOf(vmRecord: VmRecord): number {
    return (
      vmRecord.lastReceivedMicros +
      (waitsOnTimeout(vmRecord) ? this.timeoutMicros : this.retentionMicros)
    );
  }

  /** The VMs changed and forgotten since the last call. */
  takeChanges(): { values: VmStateValue[]; forgotten: Array<[host: string, vm: string]> } {
    const values = [...this.changed].map(vmStateValue);
    this.changed = new Set();
    const forgotten = [...this.forgotten.values()];
    this.forgotten = new Map();
    return { values, forgotten };
  }

  /** What the partition holds in memory. */
  stats(): { devices: number; openPrepares: number; vms: number } {
    let vms = 0;
    let devices = 0;
    let openPrepares = 0;
    for (const byVm of this.vms.values()) {
      for (const { transitions } of byVm.values()) {
        vms++;
        devices += transitions.deviceCount;
        openPrepares += transitions.openPrepares;
      }
    }
    return { devices, openPrepares, vms };
  }

  private vmsOf(host: string): Map<string, VmRecord> {
    let vms = this.vms.get(host);
    if (vms === undefined) {
      vms = new Map();
      this.vms.set(host, vms);
    }
    return vms;
  }
}

/** A VM the silence rule applies to: open prepares to time out, or nothing left to keep. */
function waitsOnTimeout(vmRecord: VmRecord): boolean {
  return vmRecord.transitions.openPrepares > 0 || vmRecord.transitions.deviceCount === 0;
}

/** Whether the record's receive time is a time close to its QEMU timestamp (see the file comment). */
function receiveTimeAgrees(record: EventRecord): boolean {
  const { receivedMicros: received, qemuTimestampMicros: qemu } = record;
  if (!Number.isSafeInteger(received) || received < 0 || !Number.isSafeInteger(qemu)) return false;
  return Math.abs(received - qemu) <= MAX_CLOCK_DISAGREEMENT_MICROS;
}

/** The identifiers `overlongIdentifier` checks, by name. */
const IDENTIFIER_FIELDS = [
  'host',
  'vm',
  'sessionId',
  'event',
  'qomPath',
  'deviceId',
  'deviceState',
] as const satisfies readonly (keyof EventRecord)[];

/**
 * Which identifier of the record is longer than `MAX_IDENTIFIER_LENGTH`, if one is. Runs for
 * every record, so it allocates nothing unless one is (issue 18: an object and its entries per
 * record were 3 % of the processor's CPU profile, and their garbage more).
 */
function overlongIdentifier(record: EventRecord): string | null {
  for (let i = 0; i < IDENTIFIER_FIELDS.length; i++) {
    const name = IDENTIFIER_FIELDS[i]!;
    const value: unknown = record[name];
    if (typeof value === 'string' && value.length > MAX_IDENTIFIER_LENGTH) {
      return `${name} is ${value.length} characters long (at most ${MAX_IDENTIFIER_LENGTH})`;
    }
  }
  return null;
}

function sessionRejectDetail(
  reason: SessionRejectReason,
  record: EventRecord,
  vmRecord: VmRecord | undefined,
): string {
  if (reason === 'bad_sequence') {
    return `sequence ${record.sequence} is not a whole number from 1 to 2^53 - 1`;
  }
  if (reason === 'sequence_jump') {
    return `sequence ${record.sequence} of session ${record.sessionId} is more than ${MAX_SEQUENCE_JUMP} beyond the last applied, ${vmRecord?.lastSequence}`;
  }
  return `session ${record.sessionId} was made more than ${MAX_SESSION_AHEAD_MICROS / 1e6} s after the record was received (${record.receivedMicros} µs)`;
}

/** Moves what an engine step completed to `out`, tagged with the session. */
function emit(
  sessionId: string,
  transitions: readonly TransitionRecord[],
  out: PublishedTransition[],
): void {
  for (const record of transitions) out.push({ ...record, sessionId });
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
