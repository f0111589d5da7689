import {
  option,
  parseConfig,
  type ConfigOf,
  type ConfigSources,
} from '../shared/core/config-spec.ts';
import { TRANSITIONS_TOPIC } from '../shared/core/topics.ts';
import {
  kafkaConnectionOptions,
  kafkaSecurityProblems,
  topicNameProblem,
} from '../shared/kafka/core/options.ts';
import { serviceOptions } from '../shared/core/service-options.ts';

export const EXPORTER_ENV_PREFIX = 'VFIO_EXPORTER_';

/** The exporter's options (docs in `services/exporter/README.md`). */
export function exporterConfigSpec() {
  return {
    ...kafkaConnectionOptions(),
    topic: option({
      type: 'string',
      default: TRANSITIONS_TOPIC,
      env: 'VFIO_EXPORTER_TOPIC',
      flag: 'topic',
      doc: 'Kafka topic of the transition records',
      check: topicNameProblem,
    }),
    groupId: option({
      type: 'string',
      default: 'vfio-exporter',
      env: 'VFIO_EXPORTER_GROUP_ID',
      flag: 'group-id',
      doc: 'consumer group; exporters in one group split the partitions',
      check: (v) => (v.trim() === '' ? 'must not be empty' : null),
    }),
    clientId: option({
      type: 'string',
      default: 'vfio-exporter',
      env: 'VFIO_EXPORTER_CLIENT_ID',
      flag: 'client-id',
      doc: 'Kafka client id',
    }),
    fromBeginning: option({
      type: 'boolean',
      default: true,
      env: 'VFIO_EXPORTER_FROM_BEGINNING',
      flag: 'from-beginning',
      doc: 'a group without committed offsets starts at the earliest offset (else the latest)',
    }),
    fetchMaxBytes: option({
      type: 'integer',
      default: 4 * 1024 * 1024,
      min: 1024,
      max: 256 * 1024 * 1024,
      env: 'VFIO_EXPORTER_FETCH_MAX_BYTES',
      flag: 'fetch-max-bytes',
      doc: 'most bytes one fetch from Kafka returns (bounds memory while catching up)',
    }),
    batchMaxRecords: option({
      type: 'integer',
      default: 2000,
      min: 1,
      max: 1_000_000,
      env: 'VFIO_EXPORTER_BATCH_MAX_RECORDS',
      flag: 'batch-max-records',
      doc: 'most transition records observed per batch',
    }),
    hostLabel: option({
      type: 'boolean',
      default: true,
      env: 'VFIO_EXPORTER_HOST_LABEL',
      flag: 'host-label',
      doc: 'add a host label to the prepare metrics (--no-host-label for very large fleets)',
    }),
    maxHosts: option({
      type: 'integer',
      default: 64,
      min: 1,
      max: 10_000,
      env: 'VFIO_EXPORTER_MAX_HOSTS',
      flag: 'max-hosts',
      doc: 'distinct host label values kept; later hosts are folded into "other"',
    }),
    maxLabelValues: option({
      type: 'integer',
      default: 16,
      min: 0,
      max: 1000,
      env: 'VFIO_EXPORTER_MAX_LABEL_VALUES',
      flag: 'max-label-values',
      doc: 'distinct unknown target/state/outcome values kept per label; later ones become "other"',
    }),
    quantileIntervalMs: option({
      type: 'integer',
      default: 5000,
      min: 100,
      max: 600_000,
      env: 'VFIO_EXPORTER_QUANTILE_INTERVAL_MS',
      flag: 'quantile-interval-ms',
      doc: 'how often the live page gets a new p50/p90/p99 point',
    }),
    quantileWindowSeconds: option({
      type: 'integer',
      default: 60,
      min: 1,
      max: 86_400,
      env: 'VFIO_EXPORTER_QUANTILE_WINDOW_SECONDS',
      flag: 'quantile-window-seconds',
      doc: 'each live-page quantile point covers the completions of this many seconds',
    }),
    quantilePoints: option({
      type: 'integer',
      default: 180,
      min: 2,
      max: 10_000,
      env: 'VFIO_EXPORTER_QUANTILE_POINTS',
      flag: 'quantile-points',
      doc: 'quantile points the live page keeps (in memory)',
    }),
    slowestWindowMinutes: option({
      type: 'integer',
      default: 10,
      min: 1,
      max: 1440,
      env: 'VFIO_EXPORTER_SLOWEST_WINDOW_MINUTES',
      flag: 'slowest-window-minutes',
      doc: "the live page's slowest-prepares table covers this many minutes",
    }),
    slowestRows: option({
      type: 'integer',
      default: 50,
      min: 1,
      max: 1000,
      env: 'VFIO_EXPORTER_SLOWEST_ROWS',
      flag: 'slowest-rows',
      doc: 'rows of the slowest-prepares table (kept per minute: memory is minutes × rows)',
    }),
    otlpEndpoint: option({
      type: 'string',
      optional: true,
      env: 'VFIO_EXPORTER_OTLP_ENDPOINT',
      flag: 'otlp-endpoint',
      metavar: 'URL',
      doc: 'also push the latencies as OTLP exponential histograms to this OTLP/HTTP metrics URL (off when unset)',
      check: httpUrlProblem,
    }),
    otlpIntervalMs: option({
      type: 'integer',
      default: 15_000,
      min: 100,
      max: 600_000,
      env: 'VFIO_EXPORTER_OTLP_INTERVAL_MS',
      flag: 'otlp-interval-ms',
      doc: 'how often the OTLP output exports (and the longest one export may take)',
    }),
    ...serviceOptions({
      envPrefix: EXPORTER_ENV_PREFIX,
      httpPort: 9466,
      serves: '/metrics, /healthz, /readyz and live page',
      shutdownTimeoutMs: 10_000,
      shutdownDoc: 'how long SIGTERM may take to commit offsets and leave the group',
    }),
  } as const;
}

function httpUrlProblem(value: string): string | null {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:'
      ? null
      : 'must be an http:// or https:// URL';
  } catch {
    return 'must be an http:// or https:// URL';
  }
}

export type ExporterConfigSpec = ReturnType<typeof exporterConfigSpec>;
export type ExporterConfig = ConfigOf<ExporterConfigSpec>;

/** Reads and validates the whole configuration; throws CONFIG_INVALID listing every problem. */
export function parseExporterConfig(sources: ConfigSources): ExporterConfig {
  return parseConfig(exporterConfigSpec(), { envPrefix: EXPORTER_ENV_PREFIX, ...sources }, (c) => [
    ...kafkaSecurityProblems(c),
    ...(c.quantileWindowSeconds * 1000 < c.quantileIntervalMs
      ? ['quantileWindowSeconds must cover at least one quantileIntervalMs']
      : []),
  ]);
}
