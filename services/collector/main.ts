/**
 * Wires the collector: QMP sockets → event records → spool (write-ahead log) → Kafka, plus the
 * HTTP endpoints. The only place that opens sockets, files and timers; `startCollector` is the
 * in-process API the `collect` command and the tests use.
 */
import { Registry } from 'prom-client';
import { isTelemetryError } from '../shared/core/errors.ts';
import type { EventRecord } from '../shared/core/event-record.ts';
import { buildEventRecord } from '../shared/core/event-record-builder.ts';
import { createEventCodec } from '../shared/io/avro-codec.ts';
import { startHttpServer, type RunningHttpServer } from '../shared/io/http-server.ts';
import { createKafkaPort } from '../shared/kafka/io/client.ts';
import { kafkaSecurityOf } from '../shared/kafka/core/options.ts';
import { createRefusalDiagnosis } from '../shared/kafka/io/security.ts';
import type { KafkaPort } from '../shared/kafka/io/port.ts';
import type { Logger } from '../shared/io/logger.ts';
import type { CollectorConfig } from './config.ts';
import { eventKey } from './core/partitioner.ts';
import { RecordNumbering, type RecordNumber } from './core/record-numbering.ts';
import {
  describeAddress,
  parseQmpTarget,
  vmNameOfSocket,
  type QmpTarget,
} from './core/qmp-target.ts';
import { createCollectorTelemetry, type CollectorTelemetry } from './io/collector-telemetry.ts';
import { KafkaSender } from './io/kafka-sender.ts';
import { resolveLibvirtTargets, startLibvirtSource } from './io/libvirt-source.ts';
import { createLibvirtTelemetry } from './io/libvirt-telemetry.ts';
import { QmpConnection, type QmpConnectionHandler, type QmpSession } from './io/qmp-connection.ts';
import { RejectedRecordFile } from './io/rejected-record-file.ts';
import { SocketDirWatcher } from './io/socket-dir-watcher.ts';
import { Spool, type SpoolOptions } from './io/spool.ts';
import { createSessionIdSource } from './io/session-ids.ts';
import { VmNames } from './core/vm-names.ts';

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
 * `kafka` replaces the port built from `config.brokers` (io tests pass an in-memory fake;
 * everything else reaches Kafka through `createKafkaPort`).
 */
export async function startCollector(
  config: CollectorConfig,
  logger: Logger,
  kafka: CollectorKafka = createKafkaPort({
    brokers: config.brokers,
    security: kafkaSecurityOf(config),
    clientId: config.clientId,
    logger,
  }),
): Promise<RunningCollector> {
  const libvirtTargets = resolveLibvirtTargets(
    config.libvirt,
    process.env['XDG_RUNTIME_DIR'] ?? null,
  );
  const registry = new Registry();
  const telemetry = createCollectorTelemetry(registry, logger);
  const codec = createEventCodec();
  // One source of session ids (UUIDv7, increasing) for every connection and the numbering.
  const newSessionId = createSessionIdSource();
  const numbering = new RecordNumbering(newSessionId);
  const spoolOptions: SpoolOptions = {
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
  };
  let spool: Spool;
  try {
    spool = Spool.open(spoolOptions);
  } catch (error) {
    // Locked by another collector, or not writable (SPOOL_LOCKED, SPOOL_UNWRITABLE): nothing
    // else was started.
    await kafka.close().catch(() => {});
    throw error;
  }

  const accept = (
    session: QmpSession,
    key: string,
    number: RecordNumber,
    record: EventRecord,
  ): void => {
    let value: Buffer;
    try {
      value = codec.encode(record);
    } catch (error) {
      if (!isTelemetryError(error, 'AVRO_INVALID_RECORD')) throw error;
      numbering.dropped(key, 'invalid_record');
      telemetry.eventsDropped('invalid_record', 1, error);
      return;
    }
    // A refused append reports the drop to `numbering` through the spool's `dropped`.
    if (!spool.append({ receivedMicros: record.receivedMicros, key, value })) return;
    numbering.accepted(key, number);
    session.sequence++;
    if (number.renewed !== null) {
      telemetry.sessionRenewed(
        record.vm,
        number.renewed.after,
        number.renewed.previousSessionId,
        number.sessionId,
      );
    }
    telemetry.eventAccepted(record.vm, record.sessionId, record.sequence, record.event);
  };

  const handler: QmpConnectionHandler = {
    message: (kind) => telemetry.qmpMessageRead(kind),
    rejected: (vm, invalid) => telemetry.qmpMessageRejected(vm, invalid),
    sessionStarted: (session, greeting, reconnect) =>
      telemetry.sessionStarted(session.vm, session.sessionId, greeting.qemuVersion, reconnect),
    sessionEnded: (session, reason) => {
      numbering.ended(eventKey(config.host, session.vm), session.sessionId);
      telemetry.sessionEnded(session.vm, session.sessionId, session.sequence, reason);
    },
    connectFailed: (vm, error, retryInMs) => telemetry.qmpConnectFailed(vm, error, retryInMs),
    event: (session, event, receivedMicros) => {
      const key = eventKey(config.host, session.vm);
      const number = numbering.next(key, session.sessionId);
      const record = buildEventRecord(
        {
          host: config.host,
          vm: session.vm,
          sessionId: number.sessionId,
          sequence: number.sequence,
          receivedMicros,
        },
        event,
      );
      if ('kind' in record) {
        telemetry.qmpMessageRejected(session.vm, record);
        return;
      }
      accept(session, key, number, record);
    },
  };

  const connections = new Map<string, QmpConnection>();
  const backoff = {
    initialMs: config.reconnectInitialMs,
    maxMs: config.reconnectMaxMs,
    multiplier: 2,
  };
  // One VM name, one source, across the socket directory, explicit targets and libvirt.
  const vmNames = new VmNames();
  // Sources refused for a taken name, by id: the first one is read once the owner goes away.
  const refused = new Map<string, QmpTarget>();
  const addTarget = (id: string, target: QmpTarget): void => {
    if (connections.has(id)) return;
    const source = describeAddress(target.address);
    const claim = vmNames.claim(target.vm, source);
    if (!claim.ok) {
      if (!refused.has(id)) telemetry.vmNameConflict(target.vm, source, claim.owner, claim.problem);
      refused.set(id, target);
      return;
    }
    refused.delete(id);
    const connection = new QmpConnection({
      target,
      backoff,
      greetingTimeoutMs: config.greetingTimeoutMs,
      handler,
      newSessionId,
    });
    connections.set(id, connection);
    telemetry.vmDiscovered(target.vm, describeAddress(target.address));
    connection.start();
  };
  const retiring = new Set<QmpConnection>();
  const removeTarget = (id: string): void => {
    refused.delete(id);
    const connection = connections.get(id);
    if (connection === undefined) return;
    connections.delete(id);
    vmNames.release(connection.vm, describeAddress(connection.target.address));
    telemetry.vmRemoved(connection.vm, id);
    // Read what the VM wrote before its socket vanished; stop is still there for shutdown.
    retiring.add(connection);
    void connection.retire().then(() => retiring.delete(connection));
    readRefused(connection.vm);
  };
  /** The first source refused for `vm` is read, now that the name's owner let it go. */
  const readRefused = (vm: string): void => {
    const waiting = [...refused].find(([, target]) => target.vm === vm);
    if (waiting !== undefined) addTarget(...waiting);
  };

  const rejected = new RejectedRecordFile(config.spoolDir, (value) => {
    const decoded = codec.decode(value);
    return decoded.kind === 'record' ? decoded.value : null;
  });
  const sender = new KafkaSender({
    kafka,
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
  const libvirt = startLibvirtSource({
    targets: libvirtTargets,
    events: config.libvirtEvents,
    vmName: config.libvirtVmName === 'uuid' ? 'uuid' : 'name',
    keepaliveIntervalMs: config.libvirtKeepaliveMs,
    replyTimeoutMs: config.greetingTimeoutMs,
    backoff,
    handler,
    vmNames,
    nameReleased: readRefused,
    telemetry,
    libvirtTelemetry: createLibvirtTelemetry(registry, logger),
    newSessionId,
  });

  const http = await startHttpServer({
    host: config.httpHost,
    port: config.httpPort,
    registry,
    logger,
    readiness: () => {
      const reasons: string[] = [];
      const kafkaOk = sender.connected || spool.accepting;
      const refusal = sender.refusal;
      if (!sender.connected)
        reasons.push(
          (refusal === undefined
            ? 'kafka: unreachable'
            : `kafka: refused (${refusal.reason}: ${refusal.detail})`) +
            (spool.accepting ? ', spooling' : ' and spool full'),
        );
      const watching = watcher === undefined || watcher.running;
      if (!watching) reasons.push(`watcher: ${config.socketDir} cannot be listed`);
      const stall = sender.stall();
      if (stall !== null) {
        reasons.push(
          `kafka: no event acknowledged for ${Math.round(stall.sinceMs / 1000)} s while ` +
            `${stall.pendingEvents} wait in the spool` +
            (stall.lastError === null ? '' : ` (last error: ${stall.lastError})`),
        );
      }
      // A libvirt daemon we cannot register with (down, restarting, refusing us) means the
      // events of its domains are not read: not ready, as for an unlistable socket directory.
      const unconnected = libvirt.unconnected();
      for (const text of unconnected) reasons.push(`libvirt: ${text} not connected`);
      return {
        ready: kafkaOk && watching && stall === null && unconnected.length === 0,
        reasons,
      };
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
    await libvirt.stop();
    connections.clear();
    spool.flush();
    await sender.stop(drainMs > 0 ? deadline : undefined);
    spool.close();
    await kafka.close().catch(() => {});
    await http.close();
    logger.info('Collector stopped.', { spooledEvents: spool.pendingEvents });
  };

  return {
    http,
    registry,
    telemetry,
    vms: () => [...[...connections.values()].map((c) => c.vm), ...libvirt.vms()],
    stop: (drainMs) => (stopping ??= stop(drainMs)),
    flushSpool: () => spool.close(),
  };
}
