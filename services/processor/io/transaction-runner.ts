import { setTimeout as sleep } from 'node:timers/promises';
import { isTelemetryError, TelemetryError } from '../../shared/core/errors.ts';
import type { AvroCodec } from '../../shared/io/avro-codec.ts';
import type {
  ConsumedRecord,
  GroupConsumer,
  GroupMembership,
  KafkaPort,
  OutgoingRecord,
  Producer,
  RefusedRecord,
} from '../../shared/kafka/io/port.ts';
import { findInputHoles } from '../core/input-holes.ts';
import type { PartitionProcessor } from '../core/partition-processor.ts';
import { processBatch, type BatchOutput } from '../core/process-batch.ts';
import type { EventDecodeResult, PublishedTransition } from '../core/published-transition.ts';
import {
  afterFailure,
  commitHung,
  holeAction,
  settleUnknownCommit,
  transactionFull,
  type FailureKind,
  type UnknownCommit,
} from '../core/transaction-policy.ts';
import type { KafkaRefusals } from '../../shared/kafka/io/kafka-refusals.ts';
import type { ProcessorTelemetry } from './processor-telemetry.ts';
import { restorePartitions } from './state-restore.ts';

/**
 * The processor's read-process-write loop (Kafka Streams `exactly_once_v2`), as the two stages
 * of `transactionPipeline`:
 *
 * - `collect`: records from the group consumer (read_committed) until none is waiting, their
 *   first has waited the commit interval, or there are `maxRecordsPerTransaction` of them; all
 *   of one group membership.
 * - `commit`: restore partitions new in this generation, `processBatch`, then ONE transaction
 *   with the transitions, dead letters, changed and forgotten VMs' state, each input partition's
 *   meta record and the input offsets with the membership (`commitTransaction`).
 *
 * A membership change drops the state of every partition (restored on next sight) and the
 * records gathered under the old membership: the new generation starts from the committed
 * offsets. A failed transaction drops every partition's state too (memory is ahead of what
 * Kafka holds); if the membership did not change, the same records are processed again after
 * a back-off from freshly restored state, since the consumer has moved past them. A fenced
 * transaction under an unchanged membership is retried the same way until the consumer sees
 * the rebalance that fenced it.
 */
export interface RunnerOptions {
  readonly eventsTopic: string;
  readonly transitionsTopic: string;
  readonly stateTopic: string;
  readonly deadLetterTopic: string;
  readonly deadLetterPartitions: number;
  readonly groupId: string;
  readonly prepareTimeoutSeconds: number;
  readonly vmRetentionMs: number;
  readonly commitIntervalMs: number;
  readonly maxRecordsPerTransaction: number;
  readonly transactionTimeoutMs: number;
  readonly retryMaxMs: number;
  /** How long `collect` waits for records when nothing is gathered yet. */
  readonly idleWaitMs: number;
}

export interface RunnerDeps {
  readonly port: KafkaPort;
  readonly consumer: GroupConsumer;
  readonly producer: Producer;
  readonly telemetry: ProcessorTelemetry;
  readonly decodeEvent: (value: Uint8Array) => EventDecodeResult;
  readonly transitionCodec: AvroCodec<PublishedTransition>;
  /** Where a failed transaction's refusal (an ACL revoked, a certificate expired) is told. */
  readonly refusals?: KafkaRefusals;
  /** Named by a refusal of the transactional id. */
  readonly transactionalId?: string;
}

export interface PendingTransaction {
  readonly membership: GroupMembership;
  readonly records: ConsumedRecord[];
}

export type TransactionResult =
  { kind: 'committed'; records: number } | { kind: 'failed'; fenced: boolean; retrying: boolean };

export class TransactionRunner {
  private readonly options: RunnerOptions;
  private readonly deps: RunnerDeps;
  private readonly partitions = new Map<number, PartitionProcessor>();
  private pending: PendingTransaction | null = null;
  private stopping = false;
  private failures = 0;
  /** Restores in a row that found a hole before the records in hand (see `closeHoles`). */
  private holeRestores = 0;
  /** InitProducerId before the next restore (core/transaction-policy.ts `afterFailure`). */
  private reinitProducer = false;
  /** A commit never answered, until a restore settles it. */
  private unknownCommit: UnknownCommit<() => void> | null = null;
  /** When the transaction under way began committing (Date.now()), or null. */
  private commitStartedAt: number | null = null;
  /** Partition → the offset its consumer was sought back to for a hole fill (`closeHoles`). */
  private readonly sought = new Map<number, number>();
  /** False after a failed transaction until one commits. */
  healthy = true;

  constructor(options: RunnerOptions, deps: RunnerDeps) {
    this.options = options;
    this.deps = deps;
  }

  /** Partitions whose state is in memory, with their processors. */
  get owned(): ReadonlyMap<number, PartitionProcessor> {
    return this.partitions;
  }

  /** Called by the consumer synchronously on every membership change. */
  membershipChanged(membership: GroupMembership | null): void {
    this.dropState();
    this.sought.clear();
    if (this.pending !== null && !sameMembership(this.pending.membership, membership)) {
      this.pending = null;
    }
  }

  /** A commit under way for longer than the transaction timeout (readiness fails meanwhile). */
  commitHung(nowMs: number): boolean {
    return commitHung(this.commitStartedAt, nowMs, this.options);
  }

  /** `collect` stops pulling; the records in hand are committed, then the stream ends. */
  stop(): void {
    this.stopping = true;
  }

  async collect(): Promise<PendingTransaction | null> {
    const { maxRecordsPerTransaction, idleWaitMs } = this.options;
    // Records kept from a failed transaction are retried at once.
    if (this.pending !== null) return this.pending;
    let firstAt = 0;
    while (!this.stopping) {
      const count = this.pending?.records.length ?? 0;
      // Group commit (transactionFull); also closed below as soon as no more records are waiting.
      if (transactionFull({ count, firstAtMs: firstAt }, Date.now(), this.options)) break;
      const batch = await this.deps.consumer.nextBatch(
        maxRecordsPerTransaction - count,
        count === 0 ? idleWaitMs : 0,
      );
      if (batch === null) break;
      if (batch.records.length === 0) {
        if (count > 0) break;
        continue;
      }
      if (this.pending !== null && !sameMembership(this.pending.membership, batch.membership)) {
        this.pending = null;
      }
      if (this.pending === null) {
        this.pending = { membership: batch.membership, records: [] };
        firstAt = Date.now();
      }
      for (const record of batch.records) this.pending.records.push(record);
    }
    return this.pending;
  }

  async commit(pending: PendingTransaction): Promise<TransactionResult> {
    try {
      if (this.reinitProducer) {
        await this.deps.producer.initTransactions();
        this.reinitProducer = false;
      }
      await this.restoreMissing(pending.records);
      this.settleUnknownCommit();
      this.closeHoles(pending);
      if (pending.records.length === 0) {
        // Every record in hand was of a hole being filled: they come again from the consumer.
        if (this.pending === pending) this.pending = null;
        return { kind: 'committed', records: 0 };
      }
      const output = processBatch(this.partitions, pending.records, {
        groupId: this.options.groupId,
        decodeEvent: this.deps.decodeEvent,
      });
      const { records, kinds } = this.encode(output);
      const offsets = output.offsets.map(({ partition, nextOffset }) => ({
        topic: this.options.eventsTopic,
        partition,
        offset: BigInt(nextOffset),
      }));
      const count = (refused: readonly RefusedRecord[]): void =>
        this.countCommitted(pending, output, kinds, refused);
      this.commitStartedAt = Date.now();
      let result;
      try {
        result = await this.deps.producer.commitTransaction({
          records,
          offsets,
          membership: pending.membership,
          commitDeadlineMs: this.options.transactionTimeoutMs,
        });
      } catch (error) {
        if (isTelemetryError(error, 'KAFKA_OUTCOME_UNKNOWN')) {
          const refused = (error.details['refused'] as readonly RefusedRecord[] | undefined) ?? [];
          this.unknownCommit = {
            next: new Map(output.offsets.map((o) => [o.partition, o.nextOffset])),
            generationId: pending.membership.generationId,
            memberId: pending.membership.memberId,
            counted: () => count(refused),
          };
        }
        throw error;
      } finally {
        this.commitStartedAt = null;
      }
      if (this.pending === pending) this.pending = null;
      this.failures = 0;
      this.holeRestores = 0;
      this.healthy = true;
      this.deps.refusals?.cleared();
      // A partition that came again from where it was sought needs no hole check any more.
      for (const { partition } of output.offsets) this.sought.delete(partition);
      count(result.refused);
      return { kind: 'committed', records: pending.records.length };
    } catch (error) {
      return this.failed(pending, error);
    }
  }

  /** The telemetry of a committed transaction: what it published, refused and dead-lettered. */
  private countCommitted(
    pending: PendingTransaction,
    output: BatchOutput,
    kinds: ReadonlyArray<'transitions' | 'dead_letter' | 'state'>,
    refusedRecords: readonly RefusedRecord[],
  ): void {
    const { telemetry } = this.deps;
    const refused = new Set(refusedRecords.map((r) => r.index));
    for (const r of refusedRecords) {
      telemetry.recordRefused(kinds[r.index] ?? 'state', r.reason, r.detail);
    }
    telemetry.batchProcessed(output.counts);
    telemetry.hostClockOffsets(output.hostClockOffsets);
    for (const gap of output.gaps) telemetry.sequenceGap(gap);
    for (const writer of output.duplicateWriters) telemetry.duplicateWriter(writer);
    output.deadLetters.forEach((d) =>
      telemetry.recordDeadLettered(d.reason, d.partition, d.offset, d.detail),
    );
    let prepares = 0;
    let dwells = 0;
    output.transitions.forEach(({ transition }, i) => {
      if (refused.has(i)) return;
      if (transition.type === 'prepare') prepares++;
      else dwells++;
    });
    const first = firstOffsets(pending.records);
    telemetry.transactionCommitted(
      prepares,
      dwells,
      output.receivedMicros,
      output.offsets.map(({ partition, nextOffset }) => ({
        partition,
        first: String(first.get(partition)),
        next: nextOffset,
      })),
    );
  }

  /**
   * After a restore: an unanswered commit is settled by the state it would have written
   * (core/transaction-policy.ts `settleUnknownCommit`); one that committed is counted now, one
   * that did not is processed again from the records in hand, like any failed transaction.
   */
  private settleUnknownCommit(): void {
    const unknown = this.unknownCommit;
    if (unknown === null) return;
    this.unknownCommit = null;
    const restored = new Map(
      [...this.partitions].map(([p, processor]) => [p, processor.nextOffset]),
    );
    const settled = settleUnknownCommit(unknown, restored, this.deps.consumer.membership());
    if (settled === 'committed') unknown.counted();
    this.deps.telemetry.commitOutcomeSettled(settled);
  }

  private async failed(pending: PendingTransaction, error: unknown): Promise<TransactionResult> {
    this.dropState();
    this.healthy = false;
    const kind: FailureKind = isTelemetryError(error, 'KAFKA_FENCED')
      ? 'fenced'
      : isTelemetryError(error, 'KAFKA_OUTCOME_UNKNOWN')
        ? 'outcome_unknown'
        : 'failed';
    this.failures++;
    const decision = afterFailure(
      {
        kind,
        failuresInARow: this.failures,
        stopping: this.stopping,
        sameRecordsAndMembership:
          this.pending === pending &&
          sameMembership(pending.membership, this.deps.consumer.membership()),
      },
      this.options,
    );
    if (!decision.retry && this.pending === pending) this.pending = null;
    if (decision.reinitProducer) this.reinitProducer = true;
    await this.deps.refusals?.observe(error, {
      what: 'a transaction',
      details: {
        groupId: this.options.groupId,
        ...(this.deps.transactionalId === undefined
          ? {}
          : { transactionalId: this.deps.transactionalId }),
      },
    });
    this.deps.telemetry.transactionFailed(error, kind, decision.retry, decision.delayMs);
    if (decision.delayMs > 0) await sleep(decision.delayMs);
    return { kind: 'failed', fenced: kind === 'fenced', retrying: decision.retry };
  }

  private dropState(): void {
    if (this.partitions.size === 0) return;
    this.partitions.clear();
    this.deps.telemetry.partitionsLost();
  }

  /**
   * The records in hand must start at or below each partition's restored `nextOffset`
   * (core/input-holes.ts). If they start after it, the restore read stale state, or committed
   * state records were hidden from it (as @platformatic/kafka's own read_committed filter did,
   * kafka/io/fetch.ts), or the group's offsets were moved past a backlog by hand
   * (`kafka-consumer-groups --reset-offsets`), or records went by retention. First the
   * transaction fails, so the state is dropped and read again after a back-off (a stale read
   * heals). After five restores in a row that agree (core/transaction-policy.ts `holeAction`),
   * the state read is taken as the truth and the hole is filled: the consumer is sought back to
   * each hole's `nextOffset` and the records in hand of those partitions are dropped, so the
   * hole's records come again through the normal batches — capped by `maxRecordsPerTransaction`,
   * one transaction after another, while the other partitions' records in hand go on in this
   * one. Transitions the hole's records
   * already published (if the state read was wrong) come again — at-least-once, visible to the
   * audit — rather than never. Records that are gone (retention deleted them while no processor
   * ran) show up as the same hole right after the seek: it is then accepted — counted, logged as
   * an error, and the collector's sequence numbers make the VMs start over there. To skip input
   * on purpose, write the state's meta record instead (`vfio-telemetry process skip`).
   */
  private closeHoles(pending: PendingTransaction): void {
    const next = new Map([...this.partitions].map(([p, processor]) => [p, processor.nextOffset]));
    const holes = findInputHoles(next, pending.records);
    if (holes.length === 0) return;
    const gone = holes.filter((h) => this.sought.get(h.partition) === h.nextOffset);
    const open = holes.filter((h) => this.sought.get(h.partition) !== h.nextOffset);
    for (const h of gone) this.sought.delete(h.partition);
    if (gone.length > 0) this.deps.telemetry.inputHole(gone, 'accepted');
    if (open.length === 0) return;
    this.holeRestores += 1;
    if (holeAction(this.holeRestores) === 'restore_again') {
      this.deps.telemetry.inputHole(open, 'restored_again');
      throw new TelemetryError(
        'KAFKA_UNAVAILABLE',
        'The restored state is behind the records in hand.',
        { details: { holes: open } },
      );
    }
    this.holeRestores = 0;
    const topic = this.options.eventsTopic;
    const sought = this.deps.consumer.seek(
      pending.membership,
      open.map((h) => ({ topic, partition: h.partition, offset: BigInt(h.nextOffset) })),
    );
    if (!sought) {
      throw new TelemetryError('KAFKA_FENCED', 'The membership changed before the hole fill.', {
        details: { holes: open },
      });
    }
    for (const h of open) this.sought.set(h.partition, h.nextOffset);
    const refilled = new Set(open.map((h) => h.partition));
    let kept = 0;
    for (const record of pending.records) {
      if (!refilled.has(record.partition)) pending.records[kept++] = record;
    }
    pending.records.length = kept;
    this.deps.telemetry.inputHole(open, 'filled');
  }

  private async restoreMissing(records: readonly ConsumedRecord[]): Promise<void> {
    const missing = [...new Set(records.map((r) => r.partition))].filter(
      (p) => !this.partitions.has(p),
    );
    if (missing.length === 0) return;
    const restored = await restorePartitions(this.deps.port, missing, {
      stateTopic: this.options.stateTopic,
      groupId: this.options.groupId,
      prepareTimeoutSeconds: this.options.prepareTimeoutSeconds,
      vmRetentionMs: this.options.vmRetentionMs,
      openTransactionWaitMs: 2 * this.options.transactionTimeoutMs + 5000,
    });
    for (const [partition, r] of restored) {
      this.partitions.set(partition, r.processor);
      this.deps.telemetry.partitionRestored(partition, r.vms, r.invalid, r.millis);
    }
  }

  /** The transaction's records; `kinds[i]` says what record i is (for refusals). */
  private encode(output: BatchOutput): {
    records: OutgoingRecord[];
    kinds: Array<'transitions' | 'dead_letter' | 'state'>;
  } {
    const o = this.options;
    const records: OutgoingRecord[] = [];
    const kinds: Array<'transitions' | 'dead_letter' | 'state'> = [];
    for (const { partition, transition } of output.transitions) {
      records.push({
        topic: o.transitionsTopic,
        partition,
        key: Buffer.from(`${transition.host}/${transition.vm}`),
        value: this.deps.transitionCodec.encode(transition),
      });
      kinds.push('transitions');
    }
    for (const d of output.deadLetters) {
      records.push({
        topic: o.deadLetterTopic,
        partition: d.partition % o.deadLetterPartitions,
        key: d.key,
        value: d.value,
        headers: [
          { key: 'vfio-source-topic', value: Buffer.from(o.eventsTopic) },
          { key: 'vfio-source-partition', value: Buffer.from(String(d.partition)) },
          { key: 'vfio-source-offset', value: Buffer.from(String(d.offset)) },
          { key: 'vfio-error', value: Buffer.from(d.reason) },
        ],
      });
      kinds.push('dead_letter');
    }
    for (const e of output.changelog) {
      records.push({
        topic: o.stateTopic,
        partition: e.partition,
        key: Buffer.from(e.key),
        value: e.value === null ? null : Buffer.from(e.value),
      });
      kinds.push('state');
    }
    return { records, kinds };
  }
}

function sameMembership(a: GroupMembership, b: GroupMembership | null): boolean {
  return b !== null && a.generationId === b.generationId && a.memberId === b.memberId;
}

/** Each partition's lowest offset among the records, in one pass. */
function firstOffsets(records: readonly ConsumedRecord[]): Map<number, bigint> {
  const first = new Map<number, bigint>();
  for (const { partition, offset } of records) {
    const seen = first.get(partition);
    if (seen === undefined || offset < seen) first.set(partition, offset);
  }
  return first;
}
