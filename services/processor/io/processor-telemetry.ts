/**
 * The processor's self-telemetry as named events: each function counts (names of
 * docs/metrics.md) and logs, so logs and metrics never disagree. Warnings are rate-limited.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { LAG_BUCKETS_SECONDS } from '../../shared/core/bucket-policy.ts';
import type { Logger } from '../../shared/io/logger.ts';

export const METRIC_PREFIX = 'vfio_processor_';

/** Why a record goes to the dead-letter topic: the Avro codec's reasons, an empty value, a bad event. */
const DEAD_LETTER_REASONS = [
  'empty',
  'short-frame',
  'bad-marker',
  'unknown-schema',
  'truncated-body',
  'trailing-bytes',
  'bad-body',
  'bad_timestamp',
  'bad_vfio_data',
] as const;
const RATE_LIMIT_MS = 10_000;

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
    help: 'Events ignored as already seen: redelivery (session and sequence, or offset) or identical.',
    labelNames: ['kind'],
    registers,
  });
  const published = new Counter({
    name: `${METRIC_PREFIX}transitions_published_total`,
    help: 'Transition records published, by type.',
    labelNames: ['type'],
    registers,
  });
  const alreadyPublished = new Counter({
    name: `${METRIC_PREFIX}transitions_republish_skipped_total`,
    help: 'Transitions recomputed after a restart that had been published before it.',
    registers,
  });
  const newSessions = new Counter({
    name: `${METRIC_PREFIX}sessions_started_total`,
    help: 'New QMP sessions seen (a collector reconnect or restart): open prepares end as aborted.',
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
    help: 'Records behind the partition high watermark, per owned partition.',
    labelNames: ['partition'],
    registers,
  });
  const latency = new Histogram({
    name: `${METRIC_PREFIX}processing_latency_seconds`,
    help: 'Event received by the collector → its batch published and committed here.',
    buckets: [...LAG_BUCKETS_SECONDS],
    registers,
  });
  const restores = new Counter({
    name: `${METRIC_PREFIX}partition_restores_total`,
    help: 'Partitions whose engine state was rebuilt from the state topic.',
    registers,
  });
  const publishFailures = new Counter({
    name: `${METRIC_PREFIX}publish_failures_total`,
    help: 'Failed attempts to publish a batch (retried; consumption paused meanwhile).',
    registers,
  });

  // Known label values start at 0, so `rate()` and dashboards see the series from the first
  // scrape instead of only after the first occurrence.
  for (const kind of ['redelivery', 'identical']) duplicates.inc({ kind }, 0);
  for (const type of ['prepare', 'dwell']) published.inc({ type }, 0);
  for (const reason of DEAD_LETTER_REASONS) deadLettered.inc({ reason }, 0);

  const lastLog = new Map<string, number>();
  const limited = (key: string, log: () => void): void => {
    const now = Date.now();
    if ((lastLog.get(key) ?? 0) + RATE_LIMIT_MS <= now) {
      lastLog.set(key, now);
      log();
    }
  };

  return {
    recordsConsumed(count: number): void {
      consumed.inc(count);
    },
    recordDeadLettered(reason: string, partition: number, offset: string, detail: string): void {
      deadLettered.inc({ reason });
      limited(`dlq:${reason}`, () =>
        logger.warn('A record went to the dead-letter topic.', {
          reason,
          partition,
          offset,
          detail,
        }),
      );
    },
    duplicatesIgnored(redeliveries: number, identical: number): void {
      if (redeliveries > 0) duplicates.inc({ kind: 'redelivery' }, redeliveries);
      if (identical > 0) duplicates.inc({ kind: 'identical' }, identical);
    },
    transitionsPublished(prepares: number, dwells: number, skipped: number): void {
      if (prepares > 0) published.inc({ type: 'prepare' }, prepares);
      if (dwells > 0) published.inc({ type: 'dwell' }, dwells);
      if (skipped > 0) alreadyPublished.inc(skipped);
    },
    sessionsStarted(count: number): void {
      if (count > 0) newSessions.inc(count);
    },
    engineSize(devices: number, open: number): void {
      trackedDevices.set(devices);
      openPrepares.set(open);
    },
    partitionLag(partition: number, records: number): void {
      lag.set({ partition: String(partition) }, records);
    },
    partitionLost(partition: number): void {
      lag.remove({ partition: String(partition) });
    },
    eventsDone(latenciesSeconds: readonly number[]): void {
      for (const s of latenciesSeconds) latency.observe(s);
    },
    partitionRestored(partition: number, vms: number, skipped: number, millis: number): void {
      restores.inc();
      logger.info('Rebuilt a partition from the state topic.', {
        partition,
        vms,
        publishedSinceState: skipped,
        millis,
      });
    },
    publishFailed(error: unknown, attempt: number, delayMs: number): void {
      publishFailures.inc();
      limited('publish', () =>
        logger.warn('Publishing failed; consumption paused, retrying.', {
          error,
          attempt,
          delayMs,
        }),
      );
    },
  };
}
