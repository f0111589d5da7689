/**
 * Wires the collector: QMP sources → event intake → spool (write-ahead log) → Kafka, plus the
 * HTTP endpoints, under the stage contract (services/shared/io/stage.ts): each part registers its
 * close as it starts, so a start that fails halfway closes what had started. The only place that
 * opens sockets, files and timers; `startCollector` is the in-process API the `collect` command
 * and the tests use.
 */
import { Registry } from 'prom-client';
import { createEventCodec } from '../shared/io/avro-codec.ts';
import type { RunningHttpServer } from '../shared/io/http-server.ts';
import type { KafkaPort } from '../shared/kafka/io/port.ts';
import type { Logger } from '../shared/io/logger.ts';
import { kafkaSecurityOf } from '../shared/kafka/core/options.ts';
import { createRefusalDiagnosis } from '../shared/kafka/io/security.ts';
import { settleGc } from '../shared/io/settle-gc.ts';
import { startStage, type KafkaPortFactory } from '../shared/io/stage.ts';
import type { CollectorConfig } from './config.ts';
import { collectorReadiness } from './core/collector-readiness.ts';
import { RecordNumbering } from './core/record-numbering.ts';
import { createCollectorTelemetry, type CollectorTelemetry } from './io/collector-telemetry.ts';
import { createEventIntake } from './io/event-intake.ts';
import { KafkaSender } from './io/kafka-sender.ts';
import { resolveLibvirtTargets, socketGlob } from './io/libvirt-source.ts';
import { createLibvirtTelemetry } from './io/libvirt-telemetry.ts';
import { startQmpSources } from './io/qmp-sources.ts';
import { RejectedRecordFile } from './io/rejected-record-file.ts';
import { createSessionIdSource } from './io/session-ids.ts';
import { Spool } from './io/spool.ts';

/**
 * The collector runs one full garbage collection this long after it started serving and after
 * the last QMP socket or session came or went (services/shared/io/settle-gc.ts): a burst of
 * 1,000 connections settles well within it.
 */
const SETTLE_GC_QUIET_MS = 5_000;

export interface RunningCollector {
  http: RunningHttpServer;
  registry: Registry;
  telemetry: CollectorTelemetry;
  /** Names of the VMs being read. */
  vms(): string[];
  /** Stops reading QMP, sends what the spool holds until `drainMs` passes, closes everything. */
  stop(drainMs?: number): Promise<void>;
  /**
   * Writes what the spool has queued, syncs it and closes it, synchronously: the last resort's
   * hook before the process exits, so every event accepted is on disk for the next run.
   */
  flushSpool(): void;
}

/** What the collector needs of Kafka: the port's producer, topic metadata, and close. */
export type CollectorKafka = Pick<KafkaPort, 'producer' | 'describeTopics' | 'close'>;

/**
 * `kafka` replaces the port the stage makes from `config.brokers` (io tests pass an in-memory
 * fake); `kafkaPortFactory` replaces how the stage makes ports.
 */
export async function startCollector(
  config: CollectorConfig,
  logger: Logger,
  kafka?: CollectorKafka,
  kafkaPortFactory?: KafkaPortFactory,
): Promise<RunningCollector> {
  const libvirtTargets = resolveLibvirtTargets(
    config.libvirt,
    process.env['XDG_RUNTIME_DIR'] ?? null,
  );
  const registry = new Registry();
  return startStage(
    {
      name: 'collector',
      logger,
      registry,
      http: config,
      ...(kafkaPortFactory === undefined ? {} : { kafkaPortFactory }),
    },
    async (stage) => {
      // Start-up and a burst of connections leave garbage an idle collector never collects.
      const settle = settleGc({ quietMs: SETTLE_GC_QUIET_MS });
      stage.started('settle gc', () => settle.stop());
      const telemetry = createCollectorTelemetry(registry, logger, () => settle.poke());
      const codec = createEventCodec();
      // One source of session ids (UUIDv7, increasing) for every connection and the numbering.
      const newSessionId = createSessionIdSource();
      const numbering = new RecordNumbering(newSessionId);
      const port =
        kafka ??
        stage.kafkaPort({
          brokers: config.brokers,
          clientId: config.clientId,
          security: kafkaSecurityOf(config),
        });
      stage.started('kafka', () => port.close().catch(() => {}));

      const spool = Spool.open({
        dir: config.spoolDir,
        maxBytes: config.spoolMaxBytes,
        segmentBytes: config.spoolSegmentBytes,
        fsyncIntervalMs: config.fsyncIntervalMs,
        events: {
          written: (count) => telemetry.eventsWritten(count),
          dropped: (reason, count, detail, keys) => {
            telemetry.eventsDropped(reason, count, detail);
            // Damaged entries are from sessions long gone; a refused or lost write breaks a live one.
            if (reason === 'spool_corrupt') return;
            for (const key of new Set(keys)) numbering.dropped(key, reason);
          },
          recovered: (events, bytes) => telemetry.spoolRecovered(events, bytes),
          tornTailTruncated: (segment, offset, bytes) =>
            telemetry.spoolTornTailTruncated(segment, offset, bytes),
          changed: (events, bytes) => telemetry.spoolChanged(events, bytes),
          ioFailed: (what, error) => telemetry.spoolIoFailed(what, error),
          syncFailed: (segment, events, keys, error) => {
            telemetry.spoolSyncFailed(segment, events, error);
            for (const key of keys) numbering.dropped(key, 'spool_sync');
          },
          staleLockTakenOver: (pid) => telemetry.spoolLockTakenOver(config.spoolDir, pid),
        },
      });
      // Locked by another collector or not writable (SPOOL_LOCKED, SPOOL_UNWRITABLE): the open
      // throws and the stage closes the Kafka port, the only part started before it.
      stage.started('spool', () => spool.close());

      const rejected = new RejectedRecordFile(config.spoolDir, (value) => {
        const decoded = codec.decode(value);
        return decoded.kind === 'record' ? decoded.value : null;
      });
      const sender = new KafkaSender({
        kafka: port,
        spool,
        rejected,
        topic: config.topic,
        batchMaxEvents: config.batchMaxEvents,
        lingerMs: config.lingerMs,
        retry: { initialMs: 200, maxMs: config.kafkaRetryMaxMs, multiplier: 2 },
        stallTimeoutMs: config.stallTimeoutMs,
        telemetry,
        diagnose: createRefusalDiagnosis(config.brokers, kafkaSecurityOf(config)),
      });
      sender.start();
      // The drain deadline is the stop's: what the spool holds is sent until then.
      let drainUntil: number | undefined;
      stage.started('kafka sender', async () => {
        spool.flush();
        await sender.stop(drainUntil);
      });

      const backoff = {
        initialMs: config.reconnectInitialMs,
        maxMs: config.reconnectMaxMs,
        multiplier: 2,
      };
      const sources = await startQmpSources({
        sockets: config.sockets,
        socketDir: config.socketDir,
        rescanIntervalMs: config.rescanIntervalMs,
        libvirt: {
          targets: libvirtTargets,
          globs: config.libvirtGlobs.map(socketGlob),
          globIntervalMs: config.libvirtGlobIntervalMs,
          events: config.libvirtEvents,
          vmName: config.libvirtVmName === 'uuid' ? 'uuid' : 'name',
          keepaliveIntervalMs: config.libvirtKeepaliveMs,
        },
        greetingTimeoutMs: config.greetingTimeoutMs,
        backoff,
        newSessionId,
        handler: createEventIntake({ host: config.host, codec, spool, numbering, telemetry }),
        telemetry,
        libvirtTelemetry: createLibvirtTelemetry(registry, logger),
      });
      stage.started('QMP sources', () => sources.stop());

      stage.readiness(() =>
        collectorReadiness({
          kafkaConnected: sender.connected,
          kafkaRefusal: sender.refusal,
          spoolAccepting: spool.accepting,
          watcher: sources.watcher(),
          stall: sender.stall(),
          libvirtUnconnected: sources.libvirtUnconnected(),
          libvirtGlobsUnlisted: sources.libvirtGlobsUnlisted(),
        }),
      );
      const http = await stage.serve({ registry });
      settle.poke();
      logger.info('Collector started.', {
        host: config.host,
        topic: config.topic,
        metrics: `${http.url}/metrics`,
        spoolDir: config.spoolDir,
        spooledEvents: spool.pendingEvents,
      });

      let stopping: Promise<void> | undefined;
      const stop = async (drainMs = 0): Promise<void> => {
        drainUntil = drainMs > 0 ? Date.now() + drainMs : undefined;
        await stage.close();
        logger.info('Collector stopped.', { spooledEvents: spool.pendingEvents });
      };
      return {
        http,
        registry,
        telemetry,
        vms: () => sources.vms(),
        stop: (drainMs) => (stopping ??= stop(drainMs)),
        flushSpool: () => spool.close(),
      };
    },
  );
}
