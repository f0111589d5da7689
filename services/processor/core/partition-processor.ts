import type { EventRecord } from '../../shared/core/event-record.ts';
import type { RejectReason } from '../../shared/core/qmp-message.ts';
import { TransitionEngine } from '../../shared/core/transition-engine.ts';
import type { TransitionRecord } from '../../shared/core/transition-record.ts';
import { vmEventFromRecord } from '../../shared/core/vm-event.ts';
import type { PublishedTransition } from './published-transition.ts';
import type { PartitionMeta, VmStateValue } from './state-changelog.ts';
import {
  judgeEvent,
  NO_EARLIER_SESSIONS,
  recordApplied,
  type VmSessionState,
} from './vm-sessions.ts';

/**
 * The processor's logic for one partition of the events topic, pure and deterministic from the
 * partition's records in offset order: the same transition engine as `replay`, plus what a
 * long-running consumer needs around it — sessions and sequence gaps, VMs that fall silent,
 * VMs to forget, and the state to persist and restore. It has no clock of its own.
 *
 * Time is data. QEMU timestamps drive the engine. The partition's clock is the newest collector
 * `receivedMicros` seen on it (every event record carries one). Rule, applied before each record
 * once the clock has advanced to it: a VM whose last event was received more than the prepare
 * timeout before the clock has its open prepares end as `timed_out`, and a VM that has no
 * devices left (shut down, or a new session that brought none) is forgotten — its state record
 * becomes a tombstone. So a VM that goes silent while its partition keeps flowing ends its
 * prepares; on a partition where nothing arrives nothing happens until something does (then
 * the rule catches up), and an offline recomputation from the topic gives exactly the same
 * records. Collector hosts' clocks are assumed to agree to well within the prepare timeout.
 *
 * One VM's events always share a partition (the collector keys records by host+VM), so each
 * partition has its own engine and a rebalance moves whole VMs.
 */
export interface PartitionProcessorOptions {
  prepareTimeoutSeconds: number;
}

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

export type ApplyResult =
  | { kind: 'done' }
  | { kind: 'invalid'; reason: RejectReason; detail: string }
  | { kind: 'gap'; gap: SequenceGap };

interface VmTracking extends VmSessionState {
  lastReceivedMicros: number;
  /** False once the VM shut down or a new session cleared it: forgotten when it falls silent. */
  hasDevices: boolean;
}

export class PartitionProcessor {
  readonly partition: number;
  private readonly engine: TransitionEngine;
  private readonly timeoutMicros: number;
  /** Per host, per VM. Nested maps rather than a "host/vm" key: no key string per VM. */
  private readonly vms = new Map<string, Map<string, VmTracking>>();
  private next = 0;
  private clock = 0;
  /** A lower bound of the earliest moment the silence rule can act; -∞ forces a look. */
  private nextDeadline = Number.NEGATIVE_INFINITY;
  /** VMs forgotten since the last `takeChanges()` (host, vm). */
  private forgotten = new Map<string, [string, string]>();

  constructor(partition: number, options: PartitionProcessorOptions) {
    this.partition = partition;
    this.engine = new TransitionEngine({
      prepareTimeoutSeconds: options.prepareTimeoutSeconds,
      trackChanges: true,
    });
    this.timeoutMicros = Math.round(options.prepareTimeoutSeconds * 1_000_000);
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
    for (const value of values) {
      this.engine.restoreVm(value);
      this.trackingOf(value.host).set(value.vm, {
        sessionId: value.sessionId,
        lastSequence: value.lastSequence,
        earlierSessions:
          value.earlierSessions.length === 0 ? NO_EARLIER_SESSIONS : value.earlierSessions,
        lastReceivedMicros: value.lastReceivedMicros,
        hasDevices: value.devices.length > 0,
      });
    }
    this.engine.takeChangedVms();
    this.next = meta?.nextOffset ?? 0;
    this.clock = meta?.clockMicros ?? 0;
    this.nextDeadline = Number.NEGATIVE_INFINITY;
  }

  /** A record at `offset` that is not an event record (dead-lettered): only the offset moves. */
  skip(offset: number): void {
    if (offset >= this.next) this.next = offset + 1;
  }

  /**
   * Applies the event record at `offset` (at or after `nextOffset`); transitions are appended
   * to `out`.
   */
  apply(
    offset: number,
    record: EventRecord,
    out: PublishedTransition[],
    counts: ApplyCounts,
  ): ApplyResult {
    this.next = offset + 1;
    if (record.receivedMicros > this.clock) this.clock = record.receivedMicros;
    if (this.clock > this.nextDeadline) this.sweepSilent(out, counts);

    const event = vmEventFromRecord(record);
    if (event.kind === 'invalid')
      return { kind: 'invalid', reason: event.reason, detail: event.detail };

    const { host, vm, sessionId, sequence } = record;
    let tracking = this.vms.get(host)?.get(vm);
    const verdict = judgeEvent(tracking, sessionId, sequence);
    if (verdict === 'redelivery') {
      counts.redeliveries++;
      return { kind: 'done' };
    }
    let result: ApplyResult = { kind: 'done' };
    if (tracking !== undefined && verdict !== 'apply') {
      if (verdict === 'gap') {
        counts.sequenceGaps++;
        result = {
          kind: 'gap',
          gap: { host, vm, sessionId, expected: tracking.lastSequence + 1, got: sequence },
        };
      } else {
        counts.newSessions++;
      }
      this.emit(tracking.sessionId, out, (o) => this.engine.abortVm(host, vm, o));
      tracking.hasDevices = false;
    }
    if (tracking === undefined) {
      tracking = {
        sessionId,
        lastSequence: sequence,
        earlierSessions: NO_EARLIER_SESSIONS,
        lastReceivedMicros: record.receivedMicros,
        hasDevices: false,
      };
      this.trackingOf(host).set(vm, tracking);
      this.forgotten.delete(`${host}\u0000${vm}`);
    } else {
      recordApplied(tracking, sessionId, sequence);
      tracking.lastReceivedMicros = record.receivedMicros;
    }
    if (event.kind === 'vfio') tracking.hasDevices = true;
    else if (event.kind === 'shutdown') tracking.hasDevices = false;

    const changed = this.emit(sessionId, out, (o) => this.engine.apply(event, o));
    if (changed) counts.applied++;
    else {
      counts.identical++;
      // The engine saw nothing new, but the session bookkeeping moved: it must be saved.
      this.engine.touchVm(host, vm);
    }
    const deadline = tracking.lastReceivedMicros + this.timeoutMicros;
    if (deadline < this.nextDeadline) this.nextDeadline = deadline;
    return result;
  }

  /**
   * The silence rule (see the file comment). Candidates are handled in a fixed order (last
   * receive time, host, VM), not in map order, which differs after a restore.
   */
  private sweepSilent(out: PublishedTransition[], counts: ApplyCounts): void {
    const limit = this.clock - this.timeoutMicros;
    const silent: Array<{ host: string; vm: string; open: number; tracking: VmTracking }> = [];
    let nextDeadline = Number.POSITIVE_INFINITY;
    for (const [host, vm, , open] of this.engine.watermarks()) {
      const tracking = this.vms.get(host)?.get(vm);
      if (tracking === undefined || (open === 0 && tracking.hasDevices)) continue;
      if (tracking.lastReceivedMicros < limit) silent.push({ host, vm, open, tracking });
      else nextDeadline = Math.min(nextDeadline, tracking.lastReceivedMicros + this.timeoutMicros);
    }
    this.nextDeadline = nextDeadline;
    silent.sort(
      (a, b) =>
        a.tracking.lastReceivedMicros - b.tracking.lastReceivedMicros ||
        compare(a.host, b.host) ||
        compare(a.vm, b.vm),
    );
    for (const { host, vm, open, tracking } of silent) {
      if (open > 0) {
        counts.silentTimeouts++;
        this.emit(tracking.sessionId, out, (o) => this.engine.timeOutVm(host, vm, o));
      }
      if (!tracking.hasDevices) {
        counts.forgottenVms++;
        this.engine.forgetVm(host, vm);
        const vms = this.vms.get(host);
        vms?.delete(vm);
        if (vms?.size === 0) this.vms.delete(host);
        this.forgotten.set(`${host}\u0000${vm}`, [host, vm]);
      }
    }
  }

  /** The VMs changed and forgotten since the last call. */
  takeChanges(): { values: VmStateValue[]; forgotten: Array<[host: string, vm: string]> } {
    const values = this.engine.takeChangedVms().map((snapshot): VmStateValue => {
      const t = this.vms.get(snapshot.host)?.get(snapshot.vm);
      return {
        ...snapshot,
        sessionId: t?.sessionId ?? '',
        lastSequence: t?.lastSequence ?? 0,
        earlierSessions: t?.earlierSessions ?? NO_EARLIER_SESSIONS,
        lastReceivedMicros: t?.lastReceivedMicros ?? 0,
      };
    });
    const forgotten = [...this.forgotten.values()];
    this.forgotten = new Map();
    return { values, forgotten };
  }

  stats(): { devices: number; openPrepares: number; vms: number } {
    const { devices, openPrepares, vms } = this.engine.stats();
    return { devices, openPrepares, vms };
  }

  private trackingOf(host: string): Map<string, VmTracking> {
    let vms = this.vms.get(host);
    if (vms === undefined) {
      vms = new Map();
      this.vms.set(host, vms);
    }
    return vms;
  }

  /** Runs an engine step and moves what it emitted to `out`, tagged with the session. */
  private emit<R>(
    sessionId: string,
    out: PublishedTransition[],
    step: (emitted: TransitionRecord[]) => R,
  ): R {
    const emitted: TransitionRecord[] = [];
    const result = step(emitted);
    for (const record of emitted) out.push({ ...record, sessionId });
    return result;
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
