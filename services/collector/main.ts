/**
 * Wires the collector: QMP sockets → event records → spool (write-ahead log) → Kafka, plus the
 * HTTP endpoints. The only place that opens sockets, files and timers; `startCollector` is the
 * in-process API the `collect` command and the tests use.
 */
import { Registry } from 'prom-client';
import { isTelemetryError } from '../shared/core/errors.ts';
import type { EventRecord } from '../shared/core/event-record.ts';
import { createEventCodec } from '../shared/io/avro-codec.ts';
import { startHttpServer, type RunningHttpServer } from '../shared/io/http-server.ts';
import { createKafkaClient } from '../shared/io/kafka-client.ts';
import type { Logger } from '../shared/io/logger.ts';
import type { CollectorConfig } from './config.ts';
import { buildEventRecord } from './core/event-record-builder.ts';
import { eventKey } from './core/partitioner.ts';
import {
  describeAddress,
  parseQmpTarget,
  vmNameOfSocket,
  type QmpTarget,
} from './core/qmp-target.ts';
import { createCollectorTelemetry, type CollectorTelemetry } from './io/collector-telemetry.ts';
import { KafkaSender } from './io/kafka-sender.ts';
import { QmpConnection, type QmpConnectionHandler } from './io/qmp-connection.ts';
import { SocketDirWatcher } from './io/socket-dir-watcher.ts';
import { Spool } from './io/spool.ts';

export interface RunningCollector {
  http: RunningHttpServer;
  registry: Registry;
  telemetry: CollectorTelemetry;
  /** Names of the VMs being read. */
  vms(): string[];
  /** Stops reading QMP, sends what the spool holds until `drainMs` passes, closes everything. */
  stop(drainMs?: number): Promise<void>;
}

export async function startCollector(
  config: CollectorConfig,
  logger: Logger,
): Promise<RunningCollector> {
  const registry = new Registry();
  const telemetry = createCollectorTelemetry(registry, logger);
  const codec = createEventCodec();
  const spool = Spool.open({
    dir: config.spoolDir,
    maxBytes: config.spoolMaxBytes,
    segmentBytes: config.spoolSegmentBytes,
    fsyncIntervalMs: config.fsyncIntervalMs,
    events: {
      written: () => {},
      dropped: (reason, count, detail) => telemetry.eventsDropped(reason, count, detail),
      recovered: (events, bytes) => telemetry.spoolRecovered(events, bytes),
      tornTailTruncated: (segment, offset, bytes) =>
        telemetry.spoolTornTailTruncated(segment, offset, bytes),
      changed: (events, bytes) => telemetry.spoolChanged(events, bytes),
      ioFailed: (what, error) =>
        logger.error('A spool write failed; it is retried.', { what, error }),
    },
  });

  const accept = (record: EventRecord): void => {
    let value: Buffer;
    try {
      value = codec.encode(record);
    } catch (error) {
      if (!isTelemetryError(error, 'AVRO_INVALID_RECORD')) throw error;
      telemetry.eventsDropped('invalid_record', 1, error);
      return;
    }
    const key = eventKey(record.host, record.vm);
    if (spool.append({ receivedMicros: record.receivedMicros, key, value })) {
      telemetry.eventAccepted(record.vm, record.sessionId, record.sequence, record.event);
    }
  };

  const handler: QmpConnectionHandler = {
    message: (kind) => telemetry.qmpMessageRead(kind),
    rejected: (vm, invalid) => telemetry.qmpMessageRejected(vm, invalid),
    sessionStarted: (session, greeting, reconnect) =>
      telemetry.sessionStarted(session.vm, session.sessionId, greeting.qemuVersion, reconnect),
    sessionEnded: (session, reason) =>
      telemetry.sessionEnded(session.vm, session.sessionId, session.sequence, reason),
    connectFailed: (vm, error, retryInMs) => telemetry.qmpConnectFailed(vm, error, retryInMs),
    event: (session, event, receivedMicros) => {
      const record = buildEventRecord(
        {
          host: config.host,
          vm: session.vm,
          sessionId: session.sessionId,
          sequence: session.sequence + 1,
          receivedMicros,
        },
        event,
      );
      if ('kind' in record) {
        telemetry.qmpMessageRejected(session.vm, record);
        return;
      }
      session.sequence++;
      accept(record);
    },
  };

  const connections = new Map<string, QmpConnection>();
  const backoff = {
    initialMs: config.reconnectInitialMs,
    maxMs: config.reconnectMaxMs,
    multiplier: 2,
  };
  const addTarget = (id: string, target: QmpTarget): void => {
    if (connections.has(id)) return;
    const connection = new QmpConnection({
      target,
      backoff,
      greetingTimeoutMs: config.greetingTimeoutMs,
      handler,
    });
    connections.set(id, connection);
    telemetry.vmDiscovered(target.vm, describeAddress(target.address));
    connection.start();
  };
  const retiring = new Set<QmpConnection>();
  const removeTarget = (id: string): void => {
    const connection = connections.get(id);
    if (connection === undefined) return;
    connections.delete(id);
    telemetry.vmRemoved(connection.vm, id);
    // Read what the VM wrote before its socket vanished; stop is still there for shutdown.
    retiring.add(connection);
    void connection.retire().then(() => retiring.delete(connection));
  };

  const kafka = createKafkaClient({
    brokers: config.brokers,
    clientId: config.clientId,
    logger,
    retries: 3,
    maxRetryTimeMs: config.kafkaRetryMaxMs,
  });
  const sender = new KafkaSender({
    kafka,
    spool,
    topic: config.topic,
    batchMaxEvents: config.batchMaxEvents,
    lingerMs: config.lingerMs,
    retry: { initialMs: 200, maxMs: config.kafkaRetryMaxMs, multiplier: 2 },
    telemetry,
  });
  sender.start();

  for (const text of config.sockets) {
    const target = parseQmpTarget(text);
    // The config was validated, so every explicit target parses.
    if (!('problem' in target)) addTarget(`target:${text}`, target);
  }
  const watcher =
    config.socketDir === ''
      ? undefined
      : new SocketDirWatcher({
          dir: config.socketDir,
          intervalMs: config.rescanIntervalMs,
          onAdded: (path) =>
            addTarget(path, { vm: vmNameOfSocket(path), address: { kind: 'unix', path } }),
          onRemoved: (path) => removeTarget(path),
          onError: (error) => telemetry.watchFailed(config.socketDir, error),
        });
  await watcher?.start();

  const http = await startHttpServer({
    host: config.httpHost,
    port: config.httpPort,
    registry,
    logger,
    readiness: () => {
      const reasons: string[] = [];
      const kafkaOk = sender.connected || spool.accepting;
      if (!sender.connected)
        reasons.push(
          spool.accepting ? 'kafka: unreachable, spooling' : 'kafka: unreachable and spool full',
        );
      const watching = watcher === undefined || watcher.running;
      if (!watching) reasons.push(`watcher: ${config.socketDir} cannot be listed`);
      return { ready: kafkaOk && watching, reasons };
    },
  });
  logger.info('Collector started.', {
    host: config.host,
    topic: config.topic,
    metrics: `${http.url}/metrics`,
    spoolDir: config.spoolDir,
    spooledEvents: spool.pendingEvents,
  });

  let stopping: Promise<void> | undefined;
  const stop = async (drainMs = 0): Promise<void> => {
    const deadline = Date.now() + drainMs;
    watcher?.stop();
    await Promise.all([...connections.values(), ...retiring].map((c) => c.stop()));
    connections.clear();
    spool.flush();
    await sender.stop(drainMs > 0 ? deadline : undefined);
    spool.close();
    await http.close();
    logger.info('Collector stopped.', { spooledEvents: spool.pendingEvents });
  };

  return {
    http,
    registry,
    telemetry,
    vms: () => [...connections.values()].map((c) => c.vm),
    stop: (drainMs) => (stopping ??= stop(drainMs)),
  };
}
