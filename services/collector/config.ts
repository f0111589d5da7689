import {
  option,
  parseConfig,
  type ConfigOf,
  type ConfigSources,
} from '../shared/core/config-spec.ts';
import { EVENTS_TOPIC } from '../shared/core/topics.ts';
import { describeAddress, parseQmpTarget } from './core/qmp-target.ts';
import { duplicateVmNames } from './core/vm-names.ts';
import { parseLibvirtTarget } from './core/libvirt-target.ts';
import { parseSocketGlob } from './core/socket-glob.ts';
import {
  kafkaConnectionOptions,
  kafkaSecurityProblems,
  topicNameProblem,
} from '../shared/kafka/core/options.ts';
import { serviceOptions } from '../shared/core/service-options.ts';

export const COLLECTOR_ENV_PREFIX = 'VFIO_COLLECTOR_';

const MiB = 1024 * 1024;

/**
 * The collector's options. `hostname` is the machine's name (os.hostname()), passed in so that
 * the spec stays pure.
 */
export function collectorConfigSpec(hostname: string) {
  return {
    host: option({
      type: 'string',
      default: hostname,
      env: 'VFIO_COLLECTOR_HOST',
      flag: 'host',
      doc: 'host name written into every record and the Kafka key',
      check: (v) => (v.trim() === '' ? 'must not be empty' : null),
    }),
    socketDir: option({
      type: 'string',
      default: '',
      env: 'VFIO_COLLECTOR_SOCKET_DIR',
      flag: 'socket-dir',
      doc: 'directory of QMP unix sockets to watch (one per VM, VM = file name sans extension)',
    }),
    sockets: option({
      type: 'list',
      default: [],
      env: 'VFIO_COLLECTOR_SOCKETS',
      flag: 'socket',
      doc: 'explicit QMP sockets: [NAME=]PATH or [NAME=]tcp:HOST:PORT',
      check: (list) =>
        list
          .map((t) => parseQmpTarget(t))
          .map((r) => ('problem' in r ? r.problem : null))
          .find((p) => p !== null) ?? null,
    }),
    libvirt: option({
      type: 'list',
      default: [],
      env: 'VFIO_COLLECTOR_LIBVIRT',
      flag: 'libvirt',
      doc: "libvirt daemons to read every domain's QMP events from: qemu:///system, qemu:///session, qemu+unix:///system?socket=PATH or a socket path",
      check: (list) =>
        list
          .map((t) => parseLibvirtTarget(t, '/run/user/0'))
          .map((r) => ('problem' in r ? r.problem : null))
          .find((p) => p !== null) ?? null,
    }),
    libvirtGlobs: option({
      type: 'list',
      default: [],
      env: 'VFIO_COLLECTOR_LIBVIRT_GLOBS',
      flag: 'libvirt-glob',
      doc: 'libvirt daemon sockets to connect to as they appear: PATTERN or qemu+unix:///session?socket=PATTERN (or system), * and ? within a segment (KubeVirt: qemu+unix:///session?socket=/var/lib/kubelet/pods/*/volumes/kubernetes.io~empty-dir/libvirt-runtime/virtqemud-sock)',
      check: (list) =>
        list
          .map((t) => parseSocketGlob(t))
          .map((r) => ('problem' in r ? r.problem : null))
          .find((p) => p !== null) ?? null,
    }),
    libvirtGlobIntervalMs: option({
      type: 'integer',
      default: 2_000,
      min: 100,
      env: 'VFIO_COLLECTOR_LIBVIRT_GLOB_INTERVAL_MS',
      flag: 'libvirt-glob-interval-ms',
      doc: 'how often the --libvirt-glob patterns are listed for sockets that appeared or went',
    }),
    libvirtEvents: option({
      type: 'list',
      default: ['VFIO_MIGRATION', 'MIGRATION', 'STOP', 'RESUME', 'SHUTDOWN'],
      env: 'VFIO_COLLECTOR_LIBVIRT_EVENTS',
      flag: 'libvirt-event',
      doc: 'QMP events registered for on libvirt (one registration each, SHUTDOWN always; "*" for all)',
      check: (list) =>
        list.find((e) => e !== '*' && !/^[A-Z0-9_]+$/.test(e)) === undefined
          ? null
          : 'event names are upper case letters, digits and _ (or "*")',
    }),
    libvirtVmName: option({
      type: 'string',
      default: 'name',
      oneOf: ['name', 'uuid'],
      env: 'VFIO_COLLECTOR_LIBVIRT_VM_NAME',
      flag: 'libvirt-vm-name',
      doc: "what names a libvirt domain's VM in records: its name or its UUID",
    }),
    libvirtKeepaliveMs: option({
      type: 'integer',
      default: 5000,
      min: 100,
      env: 'VFIO_COLLECTOR_LIBVIRT_KEEPALIVE_MS',
      flag: 'libvirt-keepalive-ms',
      doc: 'keepalive ping after this much silence; libvirt is dropped after 5 unanswered',
    }),
    rescanIntervalMs: option({
      type: 'integer',
      default: 30_000,
      min: 50,
      env: 'VFIO_COLLECTOR_RESCAN_INTERVAL_MS',
      flag: 'rescan-interval-ms',
      doc: 'safety listing of the socket directory behind fs.watch (every 1 s while it cannot be watched)',
    }),
    ...kafkaConnectionOptions(),
    topic: option({
      type: 'string',
      default: EVENTS_TOPIC,
      env: 'VFIO_COLLECTOR_TOPIC',
      flag: 'topic',
      doc: 'Kafka topic of the event records',
      check: topicNameProblem,
    }),
    clientId: option({
      type: 'string',
      default: 'vfio-collector',
      env: 'VFIO_COLLECTOR_CLIENT_ID',
      flag: 'client-id',
      doc: 'Kafka client id',
    }),
    spoolDir: option({
      type: 'string',
      env: 'VFIO_COLLECTOR_SPOOL_DIR',
      flag: 'spool-dir',
      doc: 'directory of the on-disk spool (write-ahead log); keep it across restarts',
      check: (v) => (v.trim() === '' ? 'must not be empty' : null),
    }),
    spoolMaxBytes: option({
      type: 'integer',
      default: 256 * MiB,
      min: 64 * 1024,
      env: 'VFIO_COLLECTOR_SPOOL_MAX_BYTES',
      flag: 'spool-max-bytes',
      doc: 'spool size bound on disk; when full, new events are dropped and counted',
    }),
    spoolSegmentBytes: option({
      type: 'integer',
      default: 8 * MiB,
      min: 16 * 1024,
      env: 'VFIO_COLLECTOR_SPOOL_SEGMENT_BYTES',
      flag: 'spool-segment-bytes',
      doc: 'size at which a spool segment file is closed and a new one started',
    }),
    fsyncIntervalMs: option({
      type: 'integer',
      default: 100,
      min: 1,
      max: 60_000,
      env: 'VFIO_COLLECTOR_FSYNC_INTERVAL_MS',
      flag: 'fsync-interval-ms',
      doc: 'spool fdatasync period; an OS crash loses at most this much accepted data',
    }),
    batchMaxEvents: option({
      type: 'integer',
      default: 1000,
      min: 1,
      max: 100_000,
      env: 'VFIO_COLLECTOR_BATCH_MAX_EVENTS',
      flag: 'batch-max-events',
      doc: 'most events in one Kafka produce request',
    }),
    lingerMs: option({
      type: 'integer',
      // A produce request costs the agent about 1 ms of CPU (docs/decisions.md, "Linger"): at a
      // trickle, 50 ms lets one request carry several events; full batches never wait.
      default: 50,
      min: 0,
      max: 10_000,
      env: 'VFIO_COLLECTOR_LINGER_MS',
      flag: 'linger-ms',
      doc: 'longest wait for a batch to fill before it is sent (full batches and a backlog never wait)',
    }),
    reconnectInitialMs: option({
      type: 'integer',
      default: 100,
      min: 1,
      env: 'VFIO_COLLECTOR_RECONNECT_INITIAL_MS',
      flag: 'reconnect-initial-ms',
      doc: 'first QMP reconnect delay step (doubles per attempt, half of it random)',
    }),
    reconnectMaxMs: option({
      type: 'integer',
      default: 30_000,
      min: 1,
      env: 'VFIO_COLLECTOR_RECONNECT_MAX_MS',
      flag: 'reconnect-max-ms',
      doc: 'longest QMP reconnect delay',
    }),
    greetingTimeoutMs: option({
      type: 'integer',
      default: 10_000,
      min: 10,
      env: 'VFIO_COLLECTOR_GREETING_TIMEOUT_MS',
      flag: 'greeting-timeout-ms',
      doc: 'reconnect when a socket sends no greeting in time (another client holds the monitor)',
    }),
    kafkaRetryMaxMs: option({
      type: 'integer',
      default: 5000,
      min: 10,
      env: 'VFIO_COLLECTOR_KAFKA_RETRY_MAX_MS',
      flag: 'kafka-retry-max-ms',
      doc: 'longest delay between attempts to publish a batch while Kafka is unreachable',
    }),
    stallTimeoutMs: option({
      type: 'integer',
      default: 30_000,
      min: 100,
      env: 'VFIO_COLLECTOR_STALL_TIMEOUT_MS',
      flag: 'stall-timeout-ms',
      doc: '/readyz fails when the spool holds events and none was acknowledged for this long',
    }),
    ...serviceOptions({
      envPrefix: COLLECTOR_ENV_PREFIX,
      httpPort: 9464,
      serves: '/metrics, /healthz, /readyz',
      shutdownTimeoutMs: 10_000,
      shutdownDoc: 'how long SIGTERM may take to flush the spool to Kafka before the process exits',
    }),
  } as const;
}

export type CollectorConfigSpec = ReturnType<typeof collectorConfigSpec>;
export type CollectorConfig = ConfigOf<CollectorConfigSpec>;

/** Reads and validates the whole configuration; throws CONFIG_INVALID listing every problem. */
export function parseCollectorConfig(hostname: string, sources: ConfigSources): CollectorConfig {
  return parseConfig(
    collectorConfigSpec(hostname),
    { envPrefix: COLLECTOR_ENV_PREFIX, ...sources },
    (c) => {
      const problems: string[] = kafkaSecurityProblems(c);
      const none = [c.sockets, c.libvirt, c.libvirtGlobs].every((list) => list.length === 0);
      if (c.socketDir === '' && none) {
        problems.push(
          'no QMP sockets: set socketDir (--socket-dir), sockets (--socket), libvirt (--libvirt) or libvirtGlobs (--libvirt-glob)',
        );
      }
      const targets = c.sockets.map((text) => ({ text, target: parseQmpTarget(text) }));
      problems.push(
        ...duplicateVmNames(
          targets.flatMap(({ target }) =>
            'problem' in target ? [] : [{ vm: target.vm, source: describeAddress(target.address) }],
          ),
        ),
      );
      if (c.spoolSegmentBytes * 2 > c.spoolMaxBytes) {
        problems.push('spoolMaxBytes must be at least twice spoolSegmentBytes');
      }
      if (c.reconnectMaxMs < c.reconnectInitialMs) {
        problems.push('reconnectMaxMs must not be smaller than reconnectInitialMs');
      }
      return problems;
    },
  );
}
