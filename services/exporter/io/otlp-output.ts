/**
 * The exporter's optional OTLP output: the OpenTelemetry JS SDK aggregates the latencies
 * `core/otlp-observations.ts` maps into base-2 exponential histograms (cumulative, as Prometheus'
 * OTLP receiver wants them) and a periodic reader pushes them as OTLP/HTTP protobuf to `endpoint`
 * every `intervalMs`. Best effort: a failed export is counted in
 * `vfio_exporter_otlp_exports_total{result="failure"}` and logged (rate-limited); it never touches
 * the consumer or /readyz, and the next export carries the cumulative state again.
 *
 * No global OpenTelemetry state: the meter provider is this object's, never registered with the
 * API's globals. `close` collects and exports once more, then shuts the SDK down: the stage
 * closes it after the consumer, so the last records observed are in that final export.
 */
import type { Attributes } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  AggregationType,
  MeterProvider,
  PeriodicExportingMetricReader,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { Counter, type Registry, type RegistryContentType } from 'prom-client';
import type { Logger } from '../../shared/io/logger.ts';
import { createRateLimitedLog } from '../../shared/io/rate-limited-log.ts';
import {
  OTLP_HISTOGRAM_MAX_BUCKETS,
  OTLP_HISTOGRAMS,
  otlpRecordingsOf,
  type OtlpHistogram,
} from '../core/otlp-observations.ts';
import type { Observation } from '../core/transition-observations.ts';

export interface OtlpOutputOptions {
  /** The OTLP/HTTP metrics URL, e.g. `http://prometheus:9090/api/v1/otlp/v1/metrics`. */
  endpoint: string;
  intervalMs: number;
  /** Longest one export may take; at most `intervalMs`. */
  timeoutMs: number;
  /** `service.name` and `service.instance.id`: Prometheus makes them `job` and `instance`. */
  serviceName: string;
  instanceId: string;
  /** Where `vfio_exporter_otlp_exports_total` goes. */
  registry: Registry<RegistryContentType>;
  logger: Logger;
  maxBuckets?: number;
}

export interface OtlpOutput {
  /** Records the latencies among one record's observations. */
  record(observations: readonly Observation[]): void;
  /** Exports once more, then stops the SDK; once. */
  close(): Promise<void>;
}

export function startOtlpOutput(options: OtlpOutputOptions): OtlpOutput {
  const { logger } = options;
  const exports = new Counter({
    name: 'vfio_exporter_otlp_exports_total',
    help: 'OTLP metric exports, by result.',
    labelNames: ['result'],
    registers: [options.registry],
  });
  for (const result of ['success', 'failure']) exports.inc({ result }, 0);
  const rateLimited = createRateLimitedLog(logger);

  const otlp = new OTLPMetricExporter({
    url: options.endpoint,
    timeoutMillis: options.timeoutMs,
    temporalityPreference: AggregationTemporality.CUMULATIVE,
  });
  const counted: PushMetricExporter = {
    export(metrics: ResourceMetrics, done: (result: ExportResult) => void): void {
      otlp.export(metrics, (result) => {
        if (result.code === ExportResultCode.SUCCESS) {
          exports.inc({ result: 'success' });
        } else {
          exports.inc({ result: 'failure' });
          rateLimited('otlp:export', 'warn', 'An OTLP export failed; the next one retries.', {
            endpoint: options.endpoint,
            error: result.error,
          });
        }
        done(result);
      });
    },
    forceFlush: () => otlp.forceFlush(),
    shutdown: () => otlp.shutdown(),
    selectAggregationTemporality: (type) => otlp.selectAggregationTemporality(type),
  };

  const maxSize = options.maxBuckets ?? OTLP_HISTOGRAM_MAX_BUCKETS;
  const provider = new MeterProvider({
    resource: resourceFromAttributes({
      'service.name': options.serviceName,
      'service.instance.id': options.instanceId,
    }),
    views: Object.values(OTLP_HISTOGRAMS).map((spec) => ({
      instrumentName: spec.name,
      aggregation: {
        type: AggregationType.EXPONENTIAL_HISTOGRAM,
        options: { maxSize, recordMinMax: true },
      },
    })),
    readers: [
      new PeriodicExportingMetricReader({
        exporter: counted,
        exportIntervalMillis: options.intervalMs,
        exportTimeoutMillis: Math.min(options.timeoutMs, options.intervalMs),
      }),
    ],
  });
  const meter = provider.getMeter('vfio-telemetry-exporter');
  const histograms = Object.fromEntries(
    Object.entries(OTLP_HISTOGRAMS).map(([key, spec]) => [
      key,
      meter.createHistogram(spec.name, { description: spec.description, unit: spec.unit }),
    ]),
  ) as Record<OtlpHistogram, { record(value: number, attributes: Attributes): void }>;

  let closing: Promise<void> | undefined;
  return {
    record(observations) {
      for (const r of otlpRecordingsOf(observations)) {
        histograms[r.histogram].record(r.value, r.attributes);
      }
    },
    close: () =>
      (closing ??= provider
        .shutdown({ timeoutMillis: options.timeoutMs })
        .catch((error: unknown) => {
          logger.warn('The last OTLP export did not finish.', {
            endpoint: options.endpoint,
            error,
          });
        })),
  };
}
