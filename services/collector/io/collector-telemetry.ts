/**
 * The collector's self-telemetry as named events (Vector `internal_events`): one function per
 * thing that can happen, each both counting it (the names of docs/metrics.md, on the registry
 * passed in) and logging it, so logs and metrics never disagree. Error and warning logs are
 * rate-limited per event (one line per 10 s, with the number suppressed), counting never is.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { REJECT_REASONS, type QmpInvalid } from '../../shared/core/qmp-message.ts';
import { LAG_BUCKETS_SECONDS } from '../../shared/core/bucket-policy.ts';
import type { Logger } from '../../shared/io/logger.ts';
import { REFUSAL_REASONS, type Refusal } from '../../shared/kafka/core/refusal.ts';
import { kafkaErrorLabels } from '../../shared/kafka/io/errors.ts';
import { createRateLimitedLog } from '../../shared/io/rate-limited-log.ts';

export const METRIC_PREFIX = 'vfio_collector_';

export type QmpKind = 'greeting' | 'return' | 'error' | 'event';
export type DropReason = 'spool_full' | 'spool_io' | 'spool_corrupt' | 'invalid_record';

export type CollectorTelemetry = ReturnType<typeof createCollectorTelemetry>;

/**
 * prom-client samples event-loop delay with a timer every 10 ms by default: 100 wakeups/s, about
 * 0.5 % of a core on an idle collector, which must cost next to nothing on a host whose cores are
 * sold. One sample a second still catches the blocked loops that matter here (hundreds of ms).
 */
const EVENT_LOOP_SAMPLE_MS = 1000;

/**
 * `sessionsChanged`, when given, is called after a QMP socket is discovered or removed and after
 * a session starts or ends (the collector's settle GC, services/shared/io/settle-gc.ts).
 */
export function createCollectorTelemetry(
  registry: Registry,
  logger: Logger,
  sessionsChanged: () => void = () => {},
) {
  collectDefaultMetrics({
    register: registry,
    prefix: METRIC_PREFIX,
    eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS,
  });
  const registers = [registry];
  const qmpMessages = new Counter({
    name: `${METRIC_PREFIX}qmp_messages_total`,
    help: 'Valid QMP messages read, by kind.',
    labelNames: ['kind'],
    registers,
  });
  const qmpRejected = new Counter({
    name: `${METRIC_PREFIX}qmp_rejected_total`,
    help: 'QMP input rejected, by reason.',
    labelNames: ['reason'],
    registers,
  });
  const received = new Counter({
    name: `${METRIC_PREFIX}events_received_total`,
    help: 'Valid events accepted (written to the spool).',
    registers,
  });
  const published = new Counter({
    name: `${METRIC_PREFIX}events_published_total`,
    help: 'Events acknowledged by Kafka.',
    registers,
  });
  const spooled = new Counter({
    name: `${METRIC_PREFIX}events_spooled_total`,
    help: 'Events that waited in the spool because Kafka was unreachable.',
    registers,
  });
  const dropped = new Counter({
    name: `${METRIC_PREFIX}events_dropped_total`,
    help: 'Events lost by the spool-full policy (drop newest) or spool damage, by reason.',
    labelNames: ['reason'],
    registers,
  });
  const spoolEvents = new Gauge({
    name: `${METRIC_PREFIX}spool_events`,
    help: 'Events in the spool not yet acknowledged.',
    registers,
  });
  const spoolBytes = new Gauge({
    name: `${METRIC_PREFIX}spool_bytes`,
    help: 'Bytes on disk used by the spool.',
    registers,
  });
  const vmsConnected = new Gauge({
    name: `${METRIC_PREFIX}vms_connected`,
    help: 'QMP sockets with a negotiated session.',
    registers,
  });
  const vmsKnown = new Gauge({
    name: `${METRIC_PREFIX}vms_known`,
    help: 'QMP sockets being watched.',
    registers,
  });
  const reconnects = new Counter({
    name: `${METRIC_PREFIX}reconnects_total`,
    help: 'QMP connections re-established.',
    registers,
  });
  const publishLatency = new Histogram({
    name: `${METRIC_PREFIX}publish_latency_seconds`,
    help: 'Event received from QMP to acknowledged by Kafka.',
    // Delivery lag buckets: fine at the bottom, up to minutes for a backlog after an outage.
    buckets: [...LAG_BUCKETS_SECONDS],
    registers,
  });
  const rejected = new Counter({
    name: `${METRIC_PREFIX}records_rejected_total`,
    help: 'Records Kafka refused for good (e.g. MESSAGE_TOO_LARGE), kept in rejected.jsonl, by reason.',
    labelNames: ['reason'],
    registers,
  });
  const resent = new Counter({
    name: `${METRIC_PREFIX}records_resent_total`,
    help: 'Records handed to Kafka again after a failed or partly acknowledged send (duplicates possible).',
    registers,
  });
  const sessionsRenewed = new Counter({
    name: `${METRIC_PREFIX}sessions_renewed_total`,
    help: 'New session ids started because events of the VM were dropped, by the cause of the drop.',
    labelNames: ['reason'],
    registers,
  });
  const spoolIoErrors = new Counter({
    name: `${METRIC_PREFIX}spool_io_errors_total`,
    help: 'Spool I/O in the background that failed (fdatasync, not retried; directory fsync, the acknowledged position, deleting a segment, retried).',
    registers,
  });
  const unsynced = new Counter({
    name: `${METRIC_PREFIX}events_unsynced_total`,
    help: 'Events written to a spool segment since its last successful fdatasync when that fdatasync failed: treated as lost (never synced again; still sent if the page cache holds them); their VMs continue in a new session.',
    registers,
  });
  const vmNameConflicts = new Counter({
    name: `${METRIC_PREFIX}vm_name_conflicts_total`,
    help: 'Sources refused because another source already yields the same VM name.',
    registers,
  });
  const publishErrors = new Counter({
    name: `${METRIC_PREFIX}publish_errors_total`,
    help: 'Failed produce calls, by the Kafka error inside (e.g. INVALID_TIMESTAMP), else the client error code.',
    labelNames: ['kafka_error'],
    registers,
  });
  const refused = new Counter({
    name: `${METRIC_PREFIX}kafka_refused_total`,
    help: 'Attempts Kafka refused, by reason: authentication (SASL login), authorization (ACL), tls (certificates).',
    labelNames: ['reason'],
    registers: [registry],
  });
  for (const reason of REFUSAL_REASONS) refused.inc({ reason }, 0);
  const kafkaUp = new Gauge({
    name: `${METRIC_PREFIX}kafka_up`,
    help: '1 when the last produce succeeded.',
    registers,
  });

  for (const kind of ['greeting', 'return', 'error', 'event']) qmpMessages.inc({ kind }, 0);
  for (const reason of REJECT_REASONS) qmpRejected.inc({ reason }, 0);
  dropped.inc({ reason: 'spool_full' }, 0);
  rejected.inc({ reason: 'MESSAGE_TOO_LARGE' }, 0);
  sessionsRenewed.inc({ reason: 'spool_full' }, 0);
  kafkaUp.set(0);

  const rateLimited = createRateLimitedLog(logger);

  let kafkaIsUp = false;
  let connected = 0;
  let known = 0;

  return {
    get kafkaIsUp(): boolean {
      return kafkaIsUp;
    },
    qmpMessageRead(kind: QmpKind): void {
      qmpMessages.inc({ kind });
    },
    qmpMessageRejected(vm: string, invalid: QmpInvalid): void {
      qmpRejected.inc({ reason: invalid.reason });
      rateLimited(`rejected:${invalid.reason}`, 'warn', 'A QMP message was rejected.', {
        vm,
        reason: invalid.reason,
        detail: invalid.detail,
      });
    },
    vmDiscovered(vm: string, address: string): void {
      sessionsChanged();
      vmsKnown.set(++known);
      logger.info('Watching a QMP socket.', { vm, address });
    },
    vmRemoved(vm: string, address: string): void {
      sessionsChanged();
      vmsKnown.set(--known);
      logger.info('Stopped watching a QMP socket.', { vm, address });
    },
    sessionStarted(
      vm: string,
      sessionId: string,
      qemuVersion: string | null,
      reconnect: boolean,
    ): void {
      vmsConnected.set(++connected);
      if (reconnect) reconnects.inc();
      sessionsChanged();
      logger.info('QMP session started.', { vm, sessionId, qemuVersion, reconnect });
    },
    sessionEnded(vm: string, sessionId: string, events: number, reason: string): void {
      vmsConnected.set(--connected);
      sessionsChanged();
      logger.info('QMP session ended; events until the next session are lost.', {
        vm,
        sessionId,
        events,
        reason,
      });
    },
    qmpConnectFailed(vm: string, error: unknown, retryInMs: number): void {
      rateLimited(`connect:${vm}`, 'warn', 'A QMP socket could not be read; retrying.', {
        vm,
        retryInMs,
        error,
      });
    },
    vmNameConflict(vm: string, source: string, owner: string, problem: string): void {
      vmNameConflicts.inc();
      rateLimited(
        `vm-name:${vm}:${source}`,
        'error',
        'A source was refused: its VM name is taken.',
        {
          vm,
          source,
          owner,
          problem,
        },
      );
    },
    watchFailed(dir: string, error: unknown): void {
      rateLimited(`watch:${dir}`, 'error', 'The socket directory cannot be listed.', {
        dir,
        error,
      });
    },
    eventAccepted(vm: string, sessionId: string, sequence: number, event: string): void {
      logger.debug('Event accepted.', { vm, sessionId, sequence, event });
    },
    /** Counted once on disk: a write that fails is counted as dropped instead, never both. */
    eventsWritten(count: number): void {
      received.inc(count);
      if (!kafkaIsUp) spooled.inc(count);
    },
    eventsDropped(reason: DropReason, count: number, detail?: unknown): void {
      dropped.inc({ reason }, count);
      rateLimited(`dropped:${reason}`, 'error', 'Events were dropped.', { reason, count, detail });
    },
    spoolChanged(events: number, bytes: number): void {
      spoolEvents.set(events);
      spoolBytes.set(bytes);
    },
    spoolRecovered(events: number, bytes: number): void {
      spooled.inc(events);
      logger.info('The spool holds events from a previous run; resending them.', { events, bytes });
    },
    spoolIoFailed(what: string, error: unknown): void {
      spoolIoErrors.inc();
      rateLimited('spool-io', 'error', 'Spool I/O failed; it is retried.', { what, error });
    },
    spoolSyncFailed(segment: number, events: number, error: unknown): void {
      spoolIoErrors.inc();
      unsynced.inc(events);
      logger.error(
        'fdatasync of a spool segment failed: the events written since its last sync may not be on disk. It is not retried (the kernel has marked the failed pages clean); their VMs continue in a new session.',
        { segment, events, error },
      );
    },
    spoolLockTakenOver(dir: string, pid: number): void {
      logger.warn('The spool directory was locked by a process that is gone; lock taken over.', {
        dir,
        pid,
      });
    },
    spoolTornTailTruncated(segment: number, offset: number, bytes: number): void {
      logger.warn('A torn write at the end of the spool was truncated.', {
        segment,
        offset,
        bytes,
      });
    },
    recordsPublished(count: number, receivedMicros: readonly number[], nowMicros: number): void {
      published.inc(count);
      for (const micros of receivedMicros) publishLatency.observe((nowMicros - micros) / 1e6);
      if (!kafkaIsUp) logger.info('Kafka acknowledged a batch; publishing.', { count });
      kafkaIsUp = true;
      kafkaUp.set(1);
    },
    publishFailed(error: unknown, pending: number, retryInMs: number, refusal?: Refusal): void {
      kafkaIsUp = false;
      kafkaUp.set(0);
      const kafkaErrors = kafkaErrorLabels(error);
      for (const kafkaError of kafkaErrors) publishErrors.inc({ kafka_error: kafkaError });
      if (refusal !== undefined) {
        refused.inc({ reason: refusal.reason });
        rateLimited(
          `refused-${refusal.reason}`,
          'error',
          'Kafka refused the collector; events stay in the spool.',
          {
            reason: refusal.reason,
            detail: refusal.detail,
            ...(refusal.resource === undefined ? {} : { resource: refusal.resource }),
            pending,
            retryInMs,
          },
        );
        return;
      }
      rateLimited('publish', 'error', 'Kafka publish failed; events stay in the spool.', {
        pending,
        retryInMs,
        kafkaErrors,
        error,
      });
    },
    recordRejected(fields: {
      reason: string;
      detail: string;
      key: string;
      bytes: number;
      file: string;
      /** Only when the rejected file could not be written: the record's bytes, base64. */
      value?: string;
      error?: unknown;
    }): void {
      rejected.inc({ reason: fields.reason });
      rateLimited(
        `record-rejected:${fields.reason}`,
        'error',
        fields.error === undefined
          ? 'Kafka refused a record for good; it is kept in the rejected file and skipped.'
          : 'Kafka refused a record for good and the rejected file could not be written; it is skipped.',
        fields,
      );
    },
    recordsResent(count: number): void {
      resent.inc(count);
    },
    sessionRenewed(vm: string, reason: string, previousSessionId: string, sessionId: string): void {
      sessionsRenewed.inc({ reason });
      rateLimited(
        `renewed:${vm}`,
        'warn',
        'Events of a VM were dropped; its next events start a new session.',
        { vm, reason, previousSessionId, sessionId },
      );
    },
    kafkaConnected(topic: string, partitions: number): void {
      // Connected counts as up: events accepted now are not waiting for an outage to end.
      kafkaIsUp = true;
      kafkaUp.set(1);
      logger.info('Kafka producer connected.', { topic, partitions });
    },
  };
}
