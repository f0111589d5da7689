import type { EventRecord } from '../../shared/core/event-record.ts';
import type { RejectReason } from '../../shared/core/qmp-message.ts';
import { TransitionEngine, type VmSnapshot } from '../../shared/core/transition-engine.ts';
import type { TransitionRecord } from '../../shared/core/transition-record.ts';
import { vmEventFromRecord } from '../../shared/core/vm-event.ts';
import { transitionIdentity } from './transition-identity.ts';
import { judgeEvent, recordApplied, type VmSessionState } from './vm-sessions.ts';

/**
 * The processor's logic for one partition of the events topic, pure: the same transition engine
 * as `replay`, plus what a long-running consumer needs around it — redelivery detection, new QMP
 * sessions, VMs that fall silent, and the state to persist and restore. Time arrives as data:
 * QEMU timestamps inside the records, and the processor's clock as `nowMicros` arguments.
 *
 * One VM's events always share a partition (the collector keys records by host+VM), so each
 * partition has its own engine and a rebalance moves whole VMs.
 */

/** A transition as published: the engine's record plus the QMP session it belongs to. */
export type PublishedTransition = TransitionRecord & { sessionId: string | null };

export interface EventInput {
  /** Offset of the record in its partition. */
  offset: number;
  record: EventRecord;
}

/** What the processor saves per VM: the engine's VM snapshot and its session bookkeeping. */
export interface VmStateValue extends VmSnapshot, VmSessionState {}

export interface BatchOutcome {
  transitions: PublishedTransition[];
  /** Events the engine applied. */
  applied: number;
  /** Records already reflected in the state (offset at or below the applied one, or same session and sequence). */
  redeliveries: number;
  /** Events identical to the device's previous event. */
  identical: number;
  newSessions: number;
  /** Transitions recomputed after a restart that were already published before it. */
  alreadyPublished: number;
  /** Records that decoded but are not usable events, for the dead-letter topic. */
  invalid: Array<{ offset: number; reason: RejectReason; detail: string }>;
}

export interface PartitionProcessorOptions {
  prepareTimeoutSeconds: number;
}

export class PartitionProcessor {
  readonly partition: number;
  private readonly engine: TransitionEngine;
  /**
   * Per host, per VM: session bookkeeping, and the processor clock (µs) of its last applied
   * event. Nested maps rather than a "host/vm" key: no key string to keep per VM.
   */
  private readonly sessions = new Map<string, Map<string, VmTracking>>();
  private readonly silenceMicros: number;
  private appliedOffset = -1;
  private readonly alreadyPublished = new Set<string>();

  constructor(partition: number, options: PartitionProcessorOptions) {
    this.partition = partition;
    this.engine = new TransitionEngine({
      prepareTimeoutSeconds: options.prepareTimeoutSeconds,
      trackChanges: true,
    });
    this.silenceMicros = Math.round(options.prepareTimeoutSeconds * 1_000_000);
  }

  /** Offset of the last record reflected in the state; -1 when none. */
  get lastAppliedOffset(): number {
    return this.appliedOffset;
  }

  /**
   * Rebuilds the partition from its saved state: VM values as last written, the offset they
   * reflect, and the identities of transitions published after that state was saved.
   */
  restore(
    values: Iterable<VmStateValue>,
    appliedOffset: number,
    publishedSince: Iterable<TransitionRecord>,
    nowMicros: number,
  ): void {
    for (const value of values) {
      this.engine.restoreVm(value);
      this.trackingOf(value.host).set(value.vm, {
        sessionId: value.sessionId,
        lastSequence: value.lastSequence,
        earlierSessions: value.earlierSessions,
        lastSeenMicros: nowMicros,
      });
    }
    this.engine.takeChangedVms();
    this.appliedOffset = appliedOffset;
    for (const record of publishedSince) this.alreadyPublished.add(transitionIdentity(record));
  }

  applyBatch(inputs: readonly EventInput[], nowMicros: number): BatchOutcome {
    const outcome: BatchOutcome = {
      transitions: [],
      applied: 0,
      redeliveries: 0,
      identical: 0,
      newSessions: 0,
      alreadyPublished: 0,
      invalid: [],
    };
    const out: TransitionRecord[] = [];
    for (const { offset, record } of inputs) {
      if (offset <= this.appliedOffset) {
        outcome.redeliveries++;
        continue;
      }
      this.appliedOffset = offset;
      const event = vmEventFromRecord(record);
      if (event.kind === 'invalid') {
        outcome.invalid.push({ offset, reason: event.reason, detail: event.detail });
        continue;
      }
      const vms = this.trackingOf(record.host);
      const session = vms.get(record.vm);
      const verdict = judgeEvent(session, record.sessionId, record.sequence);
      if (verdict === 'redelivery') {
        outcome.redeliveries++;
        continue;
      }
      if (verdict === 'new_session') {
        outcome.newSessions++;
        this.engine.abortVm(record.host, record.vm, out);
        this.publish(out, session?.sessionId ?? null, outcome);
      }
      const applied = recordApplied(session, record.sessionId, record.sequence) as VmTracking;
      applied.lastSeenMicros = nowMicros;
      if (applied !== session) vms.set(record.vm, applied);
      if (this.engine.apply(event, out)) outcome.applied++;
      else outcome.identical++;
      this.publish(out, record.sessionId, outcome);
    }
    return outcome;
  }

  /** Records that a record the engine never saw (undecodable, dead-lettered) was handled. */
  markHandled(offset: number): void {
    if (offset > this.appliedOffset) this.appliedOffset = offset;
  }

  /** Times out the open prepares of VMs silent for longer than the prepare timeout. */
  expireSilent(nowMicros: number): PublishedTransition[] {
    const silent: Array<[string, string]> = [];
    for (const [host, vm, , open] of this.engine.watermarks()) {
      if (open === 0) continue;
      const seen = this.sessions.get(host)?.get(vm)?.lastSeenMicros ?? nowMicros;
      if (nowMicros - seen > this.silenceMicros) silent.push([host, vm]);
    }
    const outcome = { transitions: [] as PublishedTransition[], alreadyPublished: 0 };
    const out: TransitionRecord[] = [];
    for (const [host, vm] of silent) {
      this.engine.timeOutVm(host, vm, out);
      this.publish(out, this.sessions.get(host)?.get(vm)?.sessionId ?? null, outcome);
    }
    return outcome.transitions;
  }

  /** The VMs whose state changed since the last call, as values to save. */
  takeStateChanges(): VmStateValue[] {
    return this.engine.takeChangedVms().map((snapshot) => {
      const session = this.sessions.get(snapshot.host)?.get(snapshot.vm);
      return {
        ...snapshot,
        sessionId: session?.sessionId ?? '',
        lastSequence: session?.lastSequence ?? 0,
        earlierSessions: session?.earlierSessions ?? [],
      };
    });
  }

  stats(): { devices: number; openPrepares: number; vms: number } {
    const { devices, openPrepares, vms } = this.engine.stats();
    return { devices, openPrepares, vms };
  }

  private trackingOf(host: string): Map<string, VmTracking> {
    let vms = this.sessions.get(host);
    if (vms === undefined) {
      vms = new Map();
      this.sessions.set(host, vms);
    }
    return vms;
  }

  /** Moves fresh records from `out` to the outcome, minus those published before a restart. */
  private publish(
    out: TransitionRecord[],
    sessionId: string | null,
    outcome: { transitions: PublishedTransition[]; alreadyPublished: number },
  ): void {
    for (const record of out) {
      if (
        this.alreadyPublished.size > 0 &&
        this.alreadyPublished.delete(transitionIdentity(record))
      ) {
        outcome.alreadyPublished++;
        continue;
      }
      outcome.transitions.push({ ...record, sessionId });
    }
    out.length = 0;
  }
}

type VmTracking = VmSessionState & { lastSeenMicros: number };
