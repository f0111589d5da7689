/**
 * The processor's self-telemetry as named events: each function counts (names of
 * docs/metrics.md) and logs, so logs and metrics never disagree. Warnings are rate-limited per
 * event (one line per 10 s, with the number suppressed); counting never is.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { AVRO_DECODE_INVALID_REASONS } from '../../shared/core/avro/decode-reasons.ts';
import { LAG_BUCKETS_SECONDS } from '../../shared/core/bucket-policy.ts';
import { TRANSITION_TYPES } from '../../shared/core/transition-record.ts';
import { nowMicros } from '../../shared/io/clock.ts';
import type { Logger } from '../../shared/io/logger.ts';
import { createRateLimitedLog } from '../../shared/io/rate-limited-log.ts';
import { kafkaErrorLabels } from '../../shared/kafka/io/errors.ts';
import type { InputHole } from '../core/input-holes.ts';
import type { DuplicateWriter, SequenceGap } from '../core/partition-processor.ts';
import { SESSION_REJECT_REASONS } from '../core/vm-sessions.ts';
import type { BatchCounts } from '../core/process-batch.ts';

export const METRIC_PREFIX = 'vfio_processor_';

/**
 * Why a record goes to the dead-letter topic: the Avro codec's reasons, an empty value, a bad
 * event, an identifier over the length limit (`too_large`), a sequence or session that no
 * collector writes (`bad_sequence`, `sequence_jump`, `future_session`: core/vm-sessions.ts).
 */
const DEAD_LETTER_REASONS = [
  'empty',
  ...AVRO_DECODE_INVALID_REASONS,
  'bad_timestamp',
  'bad_vfio_data',
  'too_large',
  ...SESSION_REJECT_REASONS,
] as const;

/** Hosts with their own `host_clock_offset_seconds` series; the histogram counts every host. */
export const MAX_CLOCK_OFFSET_HOSTS = 1000;

/** Clock offsets, seconds: both signs, from NTP-good (< 50 ms) to a clock set a day wrong. */
const CLOCK_OFFSET_BUCKETS_SECONDS = [
  -86400, -3600, -60, -10, -1, -0.25, -0.05, 0, 0.05, 0.25, 1, 10, 60, 3600, 86400,
] as const;

export type ProcessorTelemetry = ReturnType<typeof createProcessorTelemetry>;

export function createProcessorTelemetry(registry: Registry, logger: Logger) {
  collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  const registers = [registry];
  const consumed = new Counter({
    name: `${METRIC_PREFIX}records_consumed_total`,
    help: 'Event records read from the events topic.',
    registers,
  });
  const deadLettered = new Counter({
    name: `${METRIC_PREFIX}records_dead_lettered_total`,
    help: 'Records sent to the dead-letter topic, by reason.',
    labelNames: ['reason'],
    registers,
  });
  const duplicates = new Counter({
    name: `${METRIC_PREFIX}events_duplicate_total`,
    help: "Events ignored as already seen: already_applied (below the state's next offset: read again after a restart or rebalance), redelivery (session and sequence: a collector re-send), stale_session (an unknown session older than the VM's current one), identical.",
    labelNames: ['kind'],
    registers,
  });
  const published = new Counter({
    name: `${METRIC_PREFIX}transitions_published_total`,
    help: 'Transition records published in committed transactions, by type.',
    labelNames: ['type'],
    registers,
  });
  const newSessions = new Counter({
    name: `${METRIC_PREFIX}sessions_started_total`,
    help: 'New QMP sessions seen (a collector reconnect or restart): open prepares end as aborted.',
    registers,
  });
  const duplicateWriters = new Counter({
    name: `${METRIC_PREFIX}duplicate_writer_events_total`,
    help: 'Events of an earlier session of a VM that still advances after a newer session started: two collectors write one host/VM key (a duplicate --host). Not applied; the log names host and VM.',
    registers,
  });
  const gaps = new Counter({
    name: `${METRIC_PREFIX}sequence_gaps_total`,
    help: 'Sequence gaps within a QMP session (events missing): handled like a new session.',
    registers,
  });
  const silentTimeouts = new Counter({
    name: `${METRIC_PREFIX}silent_vm_timeouts_total`,
    help: 'VMs whose open prepares timed out because they fell silent on the partition clock.',
    registers,
  });
  const forgotten = new Counter({
    name: `${METRIC_PREFIX}vms_forgotten_total`,
    help: 'Shut-down VMs forgotten after falling silent (state tombstoned).',
    registers,
  });
  const expired = new Counter({
    name: `${METRIC_PREFIX}vms_expired_total`,
    help: 'VMs forgotten because no event of theirs arrived for the VM retention (--vm-retention-ms, partition clock): memory freed, state tombstoned.',
    registers,
  });
  const untrustedReceiveTimes = new Counter({
    name: `${METRIC_PREFIX}untrusted_receive_times_total`,
    help: "Event records whose collector receive time is more than 60 s from their QEMU timestamp (or not a time): applied, but they do not move the partition's clock.",
    registers,
  });
  const trackedVms = new Gauge({
    name: `${METRIC_PREFIX}tracked_vms`,
    help: 'VMs with state in the engine (bounded by the VM retention).',
    registers,
  });
  const openPrepares = new Gauge({
    name: `${METRIC_PREFIX}open_prepares`,
    help: 'Prepares waiting for their next state.',
    registers,
  });
  const trackedDevices = new Gauge({
    name: `${METRIC_PREFIX}tracked_devices`,
    help: 'Devices with state in the engine.',
    registers,
  });
  const lag = new Gauge({
    name: `${METRIC_PREFIX}consumer_lag`,
    help: "Records behind the partition's last stable offset, per owned partition.",
    labelNames: ['partition'],
    registers,
  });
  const latency = new Histogram({
    name: `${METRIC_PREFIX}processing_latency_seconds`,
    help: 'Event received by the collector → its transaction committed here.',
    buckets: [...LAG_BUCKETS_SECONDS],
    registers,
  });
  const restores = new Counter({
    name: `${METRIC_PREFIX}partition_restores_total`,
    help: 'Partitions whose engine state was rebuilt from the state topic.',
    registers,
  });
  const committed = new Counter({
    name: `${METRIC_PREFIX}transactions_committed_total`,
    help: 'Transactions committed (outputs, state and input offsets together).',
    registers,
  });
  const failures = new Counter({
    name: `${METRIC_PREFIX}transaction_failures_total`,
    help: 'Transactions that did not report success: fenced (a zombie: another member owns the partitions now), failed (aborted, retried) or outcome_unknown (commit never answered; the restore decides).',
    labelNames: ['kind'],
    registers,
  });
  const unknownCommits = new Counter({
    name: `${METRIC_PREFIX}commit_outcomes_unknown_total`,
    help: 'Commits sent and never answered, by what the restore after them found: committed (its transitions were counted then), not_committed (processed again), undecided (the partitions moved to another member first).',
    labelNames: ['settled'],
    registers,
  });
  const transactionErrors = new Counter({
    name: `${METRIC_PREFIX}transaction_errors_total`,
    help: 'Aborted transactions, by the Kafka error inside (e.g. PRODUCER_FENCED), else the client error code.',
    labelNames: ['kafka_error'],
    registers,
  });
  const inputHoles = new Counter({
    name: `${METRIC_PREFIX}input_holes_total`,
    help: 'Restores that found the records in hand starting after the restored state (the state was re-read; `accepted`: records were gone for good and processing went on past them).',
    labelNames: ['result'],
    registers,
  });
  const hostClockOffset = new Gauge({
    name: `${METRIC_PREFIX}host_clock_offset_seconds`,
    help: `Per collector host: receive time − broker time of its latest events (the largest per transaction), for at most ${MAX_CLOCK_OFFSET_HOSTS} hosts, the most recently seen.`,
    labelNames: ['host'],
    registers,
  });
  const clockOffsets = new Histogram({
    name: `${METRIC_PREFIX}clock_offset_seconds`,
    help: 'Per collector host and transaction: receive time − broker time of its events (the largest), every host, no host label.',
    buckets: [...CLOCK_OFFSET_BUCKETS_SECONDS],
    registers,
  });
  /** Hosts in `hostClockOffset`, least recently seen first. */
  const offsetHosts = new Set<string>();
  const refused = new Counter({
    name: `${METRIC_PREFIX}records_refused_total`,
    help: 'Output records Kafka refused for good (e.g. larger than the topic allows), by topic kind.',
    labelNames: ['topic'],
    registers,
  });

  // Known label values start at 0, so `rate()` and dashboards see the series from the first
  // scrape instead of only after the first occurrence.
  for (const kind of ['already_applied', 'redelivery', 'stale_session', 'identical'])
    duplicates.inc({ kind }, 0);
  for (const kind of ['fenced', 'failed']) failures.inc({ kind }, 0);
  for (const result of ['restored_again', 'filled', 'accepted']) inputHoles.inc({ result }, 0);
  for (const topic of ['transitions', 'dead_letter', 'state']) refused.inc({ topic }, 0);
  for (const type of TRANSITION_TYPES) published.inc({ type }, 0);
  for (const reason of DEAD_LETTER_REASONS) deadLettered.inc({ reason }, 0);

  const rateLimited = createRateLimitedLog(logger);

  return {
    batchProcessed(counts: BatchCounts): void {
      consumed.inc(counts.consumed);
      if (counts.alreadyApplied > 0)
        duplicates.inc({ kind: 'already_applied' }, counts.alreadyApplied);
      if (counts.redeliveries > 0) duplicates.inc({ kind: 'redelivery' }, counts.redeliveries);
      if (counts.identical > 0) duplicates.inc({ kind: 'identical' }, counts.identical);
      if (counts.staleSessions > 0) duplicates.inc({ kind: 'stale_session' }, counts.staleSessions);
      if (counts.newSessions > 0) newSessions.inc(counts.newSessions);
      if (counts.silentTimeouts > 0) silentTimeouts.inc(counts.silentTimeouts);
      if (counts.forgottenVms > 0) forgotten.inc(counts.forgottenVms);
      if (counts.expiredVms > 0) expired.inc(counts.expiredVms);
      if (counts.untrustedReceiveTimes > 0) {
        untrustedReceiveTimes.inc(counts.untrustedReceiveTimes);
        rateLimited(
          'untrusted-receive-time',
          'warn',
          'Event records with a receive time far from their QEMU timestamp: applied (the partition clock is broker time).',
          { records: counts.untrustedReceiveTimes },
        );
      }
    },
    /** Each host's clock offset estimate of a committed transaction, µs (`processBatch`). */
    hostClockOffsets(offsets: ReadonlyMap<string, number>): void {
      for (const [host, micros] of offsets) {
        const seconds = micros / 1e6;
        clockOffsets.observe(seconds);
        offsetHosts.delete(host);
        offsetHosts.add(host);
        hostClockOffset.set({ host }, seconds);
        if (offsetHosts.size > MAX_CLOCK_OFFSET_HOSTS) {
          const oldest = offsetHosts.values().next().value as string;
          offsetHosts.delete(oldest);
          hostClockOffset.remove({ host: oldest });
        }
        if (Math.abs(seconds) > 1) {
          rateLimited(
            `clock-offset:${host}`,
            'warn',
            "A collector host's clock is off from broker time by more than a second (docs/runbooks/VfioHostClockOffset.md).",
            { host, offsetSeconds: seconds },
          );
        }
      }
    },
    recordDeadLettered(reason: string, partition: number, offset: number, detail: string): void {
      deadLettered.inc({ reason });
      rateLimited(`dlq:${reason}`, 'warn', 'A record went to the dead-letter topic.', {
        reason,
        partition,
        offset,
        detail,
      });
    },
    duplicateWriter(writer: DuplicateWriter & { partition: number }): void {
      duplicateWriters.inc();
      rateLimited(
        `duplicate-writer:${writer.host}/${writer.vm}`,
        'error',
        'Two collectors write the same host and VM (a duplicate --host, e.g. a cloned image): the earlier session still advances; its events are not applied.',
        { ...writer },
      );
    },
    sequenceGap(gap: SequenceGap & { partition: number }): void {
      gaps.inc();
      rateLimited(
        `gap:${gap.host}/${gap.vm}`,
        'warn',
        'Events are missing in a QMP session; the VM starts over as after a new session.',
        { ...gap },
      );
    },
    transactionCommitted(
      prepares: number,
      dwells: number,
      receivedMicros: readonly number[],
      inputs: readonly { partition: number; first: string; next: number }[],
    ): void {
      committed.inc();
      // Debug: which input records each transaction covered, to tell a skipped range from a
      // lost commit when a fault test's audit fails.
      logger.debug('Transaction committed.', { inputs, prepares, dwells });
      if (prepares > 0) published.inc({ type: 'prepare' }, prepares);
      if (dwells > 0) published.inc({ type: 'dwell' }, dwells);
      const now = nowMicros();
      for (const r of receivedMicros) latency.observe(Math.max(0, now - r) / 1e6);
    },
    recordRefused(
      topic: 'transitions' | 'dead_letter' | 'state',
      reason: string,
      detail: string,
    ): void {
      refused.inc({ topic });
      const message = 'Kafka refused an output record for good; it is not in the transaction.';
      const fields = { topic, reason, detail };
      if (topic === 'state') logger.error(message, fields);
      else rateLimited(`refused:${topic}`, 'error', message, fields);
    },
    transactionFailed(
      error: unknown,
      kind: 'fenced' | 'failed' | 'outcome_unknown',
      retrying: boolean,
      delayMs: number,
    ): void {
      failures.inc({ kind });
      const kafkaErrors = kafkaErrorLabels(error);
      for (const kafkaError of kafkaErrors) transactionErrors.inc({ kafka_error: kafkaError });
      rateLimited(
        `txn:${kind}`,
        'warn',
        kind === 'fenced'
          ? 'The transaction was fenced (this member is a zombie); partition state dropped.'
          : kind === 'outcome_unknown'
            ? 'The transaction commit was never answered; partition state dropped, the restore tells whether it committed.'
            : 'The transaction failed and was aborted; partition state dropped.',
        { kafkaErrors, error, retrying, delayMs },
      );
    },
    commitOutcomeSettled(settled: 'committed' | 'not_committed' | 'undecided'): void {
      unknownCommits.inc({ settled });
      logger[settled === 'undecided' ? 'warn' : 'info'](
        settled === 'committed'
          ? 'The unanswered commit had committed; its transitions are counted now.'
          : settled === 'not_committed'
            ? 'The unanswered commit had not committed; its records are processed again.'
            : 'Whether the unanswered commit committed cannot be told (the partitions moved); its transitions are not counted here.',
        { settled },
      );
    },
    inputHole(holes: readonly InputHole[], result: 'restored_again' | 'filled' | 'accepted'): void {
      inputHoles.inc({ result });
      if (result === 'accepted') {
        logger.error(
          'Records between the restored state and the records in hand are gone; processing goes on past them (transitions across the hole are not computed).',
          { holes },
        );
      } else if (result === 'filled') {
        logger.warn(
          'The restored state stays behind the records in hand; the consumer reads those partitions again from the state, in the usual batches (to skip input on purpose: vfio-telemetry process skip).',
          { holes, records: holes.reduce((n, h) => n + h.firstOffset - h.nextOffset, 0) },
        );
      } else {
        logger.warn('The restored state is behind the records in hand; restoring again.', {
          holes,
        });
      }
    },
    engineSize(vms: number, devices: number, open: number): void {
      trackedVms.set(vms);
      trackedDevices.set(devices);
      openPrepares.set(open);
    },
    partitionLag(partition: number, records: number): void {
      lag.set({ partition: String(partition) }, records);
    },
    partitionsLost(): void {
      lag.reset();
    },
    partitionRestored(partition: number, vms: number, invalid: number, millis: number): void {
      restores.inc();
      const fields = { partition, vms, invalidEntries: invalid, millis };
      if (invalid > 0)
        logger.error('Rebuilt a partition; some state entries were unreadable.', fields);
      else logger.info('Rebuilt a partition from the state topic.', fields);
    },
  };
}
