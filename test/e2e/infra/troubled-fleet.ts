/**
 * Stand-ins for the pipeline's /metrics endpoints until the services land: prom-client
 * registries with exactly the names of docs/metrics.md, served over HTTP on loopback.
 *
 * The fleet is in trouble on purpose, so that every alert expression has something to return:
 * one collector ("busy") sees events that Kafka never acknowledges, lost one of its VMs, keeps
 * reconnecting and drops from a growing spool; another ("idle") is connected to VMs that never
 * emit; the processor's lag grows and it dead-letters; most completed prepares to pre-copy-p2p
 * take longer than the RDMA budget; some transitions reach the exporter late. Each scrape
 * advances the counters and observes new values, because rate() and deriv() need change between
 * samples, not just a value.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { createHttpTelemetry } from '../../../services/shared/io/http-server.ts';
import {
  DURATION_BUCKETS_SECONDS,
  LAG_BUCKETS_SECONDS,
} from '../../../services/shared/core/bucket-policy.ts';

export interface FleetEndpoint {
  /** `127.0.0.1:PORT`, a scrape target. */
  address: string;
  registry: Registry;
}

export interface TroubledFleet {
  collectors: FleetEndpoint[];
  processors: FleetEndpoint[];
  exporters: FleetEndpoint[];
  close(): Promise<void>;
}

type Tick = () => void;

const buckets = [...DURATION_BUCKETS_SECONDS];
const lagBuckets = [...LAG_BUCKETS_SECONDS];

function collectorRegistry(kind: 'busy' | 'idle'): [Registry, Tick] {
  const registers = [new Registry()];
  const [registry] = registers as [Registry];
  // The HTTP server's own metrics, as every stage's server registers them.
  createHttpTelemetry(registry, 'vfio_collector_');
  const messages = new Counter({
    name: 'vfio_collector_qmp_messages_total',
    help: 'valid QMP messages read',
    labelNames: ['kind'],
    registers,
  });
  const rejected = new Counter({
    name: 'vfio_collector_qmp_rejected_total',
    help: 'input rejected',
    labelNames: ['reason'],
    registers,
  });
  const received = new Counter({
    name: 'vfio_collector_events_received_total',
    help: 'valid events accepted',
    registers,
  });
  const published = new Counter({
    name: 'vfio_collector_events_published_total',
    help: 'events acknowledged by Kafka',
    registers,
  });
  const spooled = new Counter({
    name: 'vfio_collector_events_spooled_total',
    help: 'events that waited in the spool',
    registers,
  });
  const dropped = new Counter({
    name: 'vfio_collector_events_dropped_total',
    help: 'events lost by the spool-full policy',
    labelNames: ['reason'],
    registers,
  });
  const recordsRejected = new Counter({
    name: 'vfio_collector_records_rejected_total',
    help: 'records Kafka refuses for good',
    labelNames: ['reason'],
    registers,
  });
  const resent = new Counter({
    name: 'vfio_collector_records_resent_total',
    help: 'records handed to Kafka a second time',
    registers,
  });
  const renewed = new Counter({
    name: 'vfio_collector_sessions_renewed_total',
    help: 'VMs continued in a new session after a loss',
    labelNames: ['reason'],
    registers,
  });
  const spoolEvents = new Gauge({
    name: 'vfio_collector_spool_events',
    help: 'events in the spool',
    registers,
  });
  const spoolBytes = new Gauge({
    name: 'vfio_collector_spool_bytes',
    help: 'bytes used by the spool',
    registers,
  });
  const connected = new Gauge({
    name: 'vfio_collector_vms_connected',
    help: 'QMP sockets with a negotiated session',
    registers,
  });
  const known = new Gauge({
    name: 'vfio_collector_vms_known',
    help: 'QMP sockets being watched',
    registers,
  });
  const reconnects = new Counter({
    name: 'vfio_collector_reconnects_total',
    help: 'QMP connections re-established',
    registers,
  });
  const publishLatency = new Histogram({
    name: 'vfio_collector_publish_latency_seconds',
    help: 'event received to Kafka acknowledgement',
    buckets: lagBuckets,
    registers,
  });
  new Counter({
    name: 'vfio_collector_spool_io_errors_total',
    help: 'spool I/O that failed and is retried',
    registers,
  });
  new Counter({
    name: 'vfio_collector_vm_name_conflicts_total',
    help: 'sources refused because their VM name is taken',
    registers,
  });
  new Gauge({
    name: 'vfio_collector_libvirt_connections_up',
    help: 'libvirt daemons registered with for QEMU monitor events',
    registers,
  });
  new Counter({
    name: 'vfio_collector_libvirt_reconnects_total',
    help: 'libvirt connections registered again after a loss',
    registers,
  });
  new Gauge({
    name: 'vfio_collector_libvirt_glob_sockets',
    help: 'libvirt daemon sockets matched by --libvirt-glob',
    registers,
  });
  const kafkaUp = new Gauge({
    name: 'vfio_collector_kafka_up',
    help: '1 when the last produce succeeded',
    registers,
  });
  const unsynced = new Counter({
    name: 'vfio_collector_events_unsynced_total',
    help: 'spool entries whose fdatasync failed',
    registers,
  });
  const publishErrors = new Counter({
    name: 'vfio_collector_publish_errors_total',
    help: 'failed produce calls, by Kafka error',
    labelNames: ['kafka_error'],
    registers,
  });
  const kafkaRefused = new Counter({
    name: 'vfio_collector_kafka_refused_total',
    help: 'attempts Kafka refused, by reason',
    labelNames: ['reason'],
    registers,
  });
  kafkaRefused.inc({ reason: 'authentication' }, 0);
  messages.inc({ kind: 'greeting' }, kind === 'busy' ? 4 : 2);
  messages.inc({ kind: 'return' }, kind === 'busy' ? 8 : 4);
  if (kind === 'idle') {
    connected.set(2);
    known.set(2);
    kafkaUp.set(1);
    return [registry, () => undefined];
  }
  // Kafka went away after the first few events: nothing is acknowledged from here on.
  published.inc(3);
  publishLatency.observe(0.004);
  kafkaUp.set(0);
  connected.set(3);
  known.set(4);
  return [
    registry,
    () => {
      messages.inc({ kind: 'event' }, 12);
      rejected.inc({ reason: 'not_json' });
      received.inc(12);
      spooled.inc(12);
      spoolEvents.inc(10);
      spoolBytes.inc(10 * 180);
      dropped.inc({ reason: 'spool_full' }, 2);
      recordsRejected.inc({ reason: 'MESSAGE_TOO_LARGE' });
      resent.inc(3);
      renewed.inc({ reason: 'spool_full' });
      reconnects.inc(25);
      // The disk under the spool fails, and the broker is unreachable.
      unsynced.inc(2);
      publishErrors.inc({ kafka_error: 'PLT_KFK_NETWORK' });
    },
  ];
}

function processorRegistry(): [Registry, Tick] {
  const registers = [new Registry()];
  const [registry] = registers as [Registry];
  // The HTTP server's own metrics, as every stage's server registers them.
  createHttpTelemetry(registry, 'vfio_processor_');
  new Counter({
    name: 'vfio_processor_kafka_refused_total',
    help: 'attempts Kafka refused',
    labelNames: ['reason'],
    registers,
  }).inc({ reason: 'authorization' }, 0);
  const consumed = new Counter({
    name: 'vfio_processor_records_consumed_total',
    help: 'event records read',
    registers,
  });
  const deadLettered = new Counter({
    name: 'vfio_processor_records_dead_lettered_total',
    help: 'records sent to the dead-letter topic',
    labelNames: ['reason'],
    registers,
  });
  const duplicates = new Counter({
    name: 'vfio_processor_events_duplicate_total',
    help: 'events ignored as already seen',
    labelNames: ['kind'],
    registers,
  });
  const transitions = new Counter({
    name: 'vfio_processor_transitions_published_total',
    help: 'transition records published',
    labelNames: ['type'],
    registers,
  });
  const openPrepares = new Gauge({
    name: 'vfio_processor_open_prepares',
    help: 'prepares waiting for their next state',
    registers,
  });
  const tracked = new Gauge({
    name: 'vfio_processor_tracked_devices',
    help: 'devices with state in the engine',
    registers,
  });
  const lag = new Gauge({
    name: 'vfio_processor_consumer_lag',
    help: 'records behind the high watermark',
    labelNames: ['partition'],
    registers,
  });
  const latency = new Histogram({
    name: 'vfio_processor_processing_latency_seconds',
    help: 'event received by the collector to transition published',
    buckets: lagBuckets,
    registers,
  });
  const sessions = new Counter({
    name: 'vfio_processor_sessions_started_total',
    help: 'new QMP sessions seen',
    registers,
  });
  const sequenceGaps = new Counter({
    name: 'vfio_processor_sequence_gaps_total',
    help: 'sequence gaps within a QMP session',
    registers,
  });
  const silentTimeouts = new Counter({
    name: 'vfio_processor_silent_vm_timeouts_total',
    help: 'VMs whose open prepares timed out on the partition clock',
    registers,
  });
  const forgotten = new Counter({
    name: 'vfio_processor_vms_forgotten_total',
    help: 'shut-down VMs forgotten',
    registers,
  });
  const expired = new Counter({
    name: 'vfio_processor_vms_expired_total',
    help: 'VMs forgotten after the VM retention',
    registers,
  });
  const untrusted = new Counter({
    name: 'vfio_processor_untrusted_receive_times_total',
    help: 'records whose receive time does not move the clock',
    registers,
  });
  const trackedVms = new Gauge({
    name: 'vfio_processor_tracked_vms',
    help: 'VMs with state in the engine',
    registers,
  });
  const committed = new Counter({
    name: 'vfio_processor_transactions_committed_total',
    help: 'transactions committed',
    registers,
  });
  const inputHoles = new Counter({
    name: 'vfio_processor_input_holes_total',
    help: 'restores that found a hole before the records in hand',
    labelNames: ['result'],
    registers,
  });
  const refused = new Counter({
    name: 'vfio_processor_records_refused_total',
    help: 'output records Kafka refused for good',
    labelNames: ['topic'],
    registers,
  });
  const restores = new Counter({
    name: 'vfio_processor_partition_restores_total',
    help: 'partitions whose engine state was rebuilt from the state topic',
    registers,
  });
  const transactionFailures = new Counter({
    name: 'vfio_processor_transaction_failures_total',
    help: 'transactions aborted',
    labelNames: ['kind'],
    registers,
  });
  const transactionErrors = new Counter({
    name: 'vfio_processor_transaction_errors_total',
    help: 'aborted transactions by Kafka error',
    labelNames: ['kafka_error'],
    registers,
  });
  const unknownCommits = new Counter({
    name: 'vfio_processor_commit_outcomes_unknown_total',
    help: 'commits never answered, by how they settled',
    labelNames: ['settled'],
    registers,
  });
  const duplicateWriters = new Counter({
    name: 'vfio_processor_duplicate_writer_events_total',
    help: 'events of an earlier session still advancing',
    registers,
  });
  const hostClockOffset = new Gauge({
    name: 'vfio_processor_host_clock_offset_seconds',
    help: 'receive time minus broker time, per host',
    labelNames: ['host'],
    registers,
  });
  const clockOffsets = new Histogram({
    name: 'vfio_processor_clock_offset_seconds',
    help: 'receive time minus broker time, every host',
    buckets: [-1, -0.05, 0.05, 1],
    registers,
  });
  unknownCommits.inc({ settled: 'committed' }, 0);
  // host-a's clock is a minute ahead (NTP broken); host-b's is right.
  hostClockOffset.set({ host: 'host-a' }, 60);
  hostClockOffset.set({ host: 'host-b' }, 0.003);
  clockOffsets.observe(60);
  clockOffsets.observe(0.003);
  tracked.set(40);
  trackedVms.set(20);
  restores.inc(2);
  forgotten.inc(1);
  expired.inc(0);
  untrusted.inc(0);
  refused.inc({ topic: 'transitions' }, 0);
  inputHoles.inc({ result: 'restored_again' }, 0);
  lag.set({ partition: '1' }, 0);
  return [
    registry,
    () => {
      consumed.inc(8);
      deadLettered.inc({ reason: 'undecodable' });
      sessions.inc();
      transactionFailures.inc({ kind: 'fenced' });
      transactionErrors.inc({ kafka_error: 'PRODUCER_FENCED' });
      duplicateWriters.inc(2);
      sequenceGaps.inc();
      silentTimeouts.inc();
      committed.inc(4);
      duplicates.inc({ kind: 'redelivery' });
      transitions.inc({ type: 'prepare' }, 3);
      transitions.inc({ type: 'dwell' }, 5);
      openPrepares.set(2);
      lag.inc({ partition: '0' }, 50);
      latency.observe(0.012);
      latency.observe(0.3);
    },
  ];
}

function exporterRegistry(): [Registry, Tick] {
  const registers = [new Registry()];
  const [registry] = registers as [Registry];
  // The HTTP server's own metrics, as every stage's server registers them.
  createHttpTelemetry(registry, 'vfio_exporter_');
  new Counter({
    name: 'vfio_exporter_kafka_refused_total',
    help: 'attempts Kafka refused',
    labelNames: ['reason'],
    registers,
  }).inc({ reason: 'authorization' }, 0);
  const prepare = new Histogram({
    name: 'vfio_prepare_duration_seconds',
    help: 'prepare to next state of the device',
    labelNames: ['target', 'outcome', 'host'],
    buckets,
    registers,
  });
  const outcomes = new Counter({
    name: 'vfio_prepare_outcomes_total',
    help: 'every prepare, by how it ended',
    labelNames: ['target', 'outcome', 'host'],
    registers,
  });
  const dwell = new Histogram({
    name: 'vfio_state_dwell_seconds',
    help: 'time in a state before the next one',
    labelNames: ['state', 'next'],
    buckets,
    registers,
  });
  const deliveryLag = new Histogram({
    name: 'vfio_transition_delivery_lag_seconds',
    help: 'closing event to observed by the exporter',
    buckets: lagBuckets,
    registers,
  });
  const consumed = new Counter({
    name: 'vfio_exporter_records_consumed_total',
    help: 'transition records read',
    registers,
  });
  const invalid = new Counter({
    name: 'vfio_exporter_records_invalid_total',
    help: 'transition records that could not be decoded',
    labelNames: ['reason'],
    registers,
  });
  const folded = new Counter({
    name: 'vfio_exporter_label_values_folded_total',
    help: 'observations whose label value became other',
    labelNames: ['label'],
    registers,
  });
  return [
    registry,
    () => {
      folded.inc({ label: 'host' });
      // The host label is optional: one collector sets it, records from another do not.
      for (const [seconds, host] of [
        [0.008, 'hv-1'],
        [0.062, 'hv-1'],
        [0.071, 'hv-2'],
        [0.09, undefined],
        [0.12, 'hv-2'],
      ] as const) {
        const labels =
          host === undefined
            ? { target: 'pre-copy-p2p', outcome: 'completed' }
            : { target: 'pre-copy-p2p', outcome: 'completed', host };
        prepare.observe(labels, seconds);
        outcomes.inc(labels);
      }
      prepare.observe({ target: 'running-p2p', outcome: 'completed', host: 'hv-1' }, 0.004);
      outcomes.inc({ target: 'running-p2p', outcome: 'completed', host: 'hv-1' });
      prepare.observe({ target: 'pre-copy-p2p', outcome: 'failed', host: 'hv-2' }, 0.4);
      outcomes.inc({ target: 'pre-copy-p2p', outcome: 'failed', host: 'hv-2' });
      outcomes.inc({ target: 'pre-copy-p2p', outcome: 'timed_out', host: 'hv-1' });
      outcomes.inc({ target: 'pre-copy-p2p', outcome: 'aborted', host: 'hv-1' });
      outcomes.inc({ target: 'running-p2p', outcome: 'unfinished', host: 'hv-2' });
      dwell.observe({ state: 'running', next: 'pre-copy' }, 25);
      dwell.observe({ state: 'pre-copy', next: 'pre-copy-p2p-prepare' }, 1.2);
      dwell.observe({ state: 'pre-copy-p2p-prepare', next: 'pre-copy-p2p' }, 0.062);
      dwell.observe({ state: 'pre-copy-p2p', next: 'stop-copy' }, 0.35);
      dwell.observe({ state: 'stop-copy', next: 'stop' }, 0.8);
      deliveryLag.observe(0.02);
      // A transition seen 45 s after its QEMU event: the pipeline is not fresh.
      deliveryLag.observe(45);
      consumed.inc(8);
      invalid.inc({ reason: 'bad_fingerprint' });
    },
  ];
}

async function serve([registry, tick]: [Registry, Tick]): Promise<[FleetEndpoint, Server]> {
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    tick();
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return [{ address: `127.0.0.1:${address.port}`, registry }, server];
}

export async function startTroubledFleet(): Promise<TroubledFleet> {
  const served = await Promise.all([
    serve(collectorRegistry('busy')),
    serve(collectorRegistry('idle')),
    serve(processorRegistry()),
    serve(exporterRegistry()),
  ]);
  const [busy, idle, processor, exporter] = served.map(([endpoint]) => endpoint) as [
    FleetEndpoint,
    FleetEndpoint,
    FleetEndpoint,
    FleetEndpoint,
  ];
  return {
    collectors: [busy, idle],
    processors: [processor],
    exporters: [exporter],
    close: async () => {
      await Promise.all(
        served.map(async ([, server]) => {
          server.closeAllConnections();
          server.close();
          await once(server, 'close');
        }),
      );
    },
  };
}
