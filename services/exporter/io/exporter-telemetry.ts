/**
 * The exporter's metrics (docs/metrics.md, "Exporter") on the OpenMetrics registry passed in
 * (the latency histograms carry exemplars, which prom-client keeps only there; the classic
 * format is served through `classicRegistryOf`), and its
 * self-telemetry as named events (Vector `internal_events`): each function both counts and logs,
 * so logs and metrics never disagree. Warnings are rate-limited per event (one line per 10 s,
 * with the number suppressed); counting never is.
 */
import {
  collectDefaultMetrics,
  Counter,
  Histogram,
  Registry,
  type Metric,
  type OpenMetricsContentType,
} from 'prom-client';
import { DURATION_BUCKETS_SECONDS, LAG_BUCKETS_SECONDS } from '../../shared/core/bucket-policy.ts';
import type { Logger } from '../../shared/io/logger.ts';
import { createRateLimitedLog } from '../../shared/io/rate-limited-log.ts';
import { INVALID_REASONS, type InvalidReason } from '../core/invalid-reason.ts';
import type { MetricSample } from '../core/live-summary.ts';
import type { LabelFold, Observation } from '../core/transition-observations.ts';

export const PROCESS_METRIC_PREFIX = 'vfio_exporter_';

export interface ExporterTelemetryOptions {
  registry: Registry<OpenMetricsContentType>;
  logger: Logger;
  hostLabel: boolean;
}

export type ExporterTelemetry = ReturnType<typeof createExporterTelemetry>;

export function createExporterTelemetry({ registry, logger, hostLabel }: ExporterTelemetryOptions) {
  collectDefaultMetrics({ register: registry, prefix: PROCESS_METRIC_PREFIX });
  const registers = [registry];
  const prepareLabels = hostLabel ? ['target', 'outcome', 'host'] : ['target', 'outcome'];
  const prepareDuration = new Histogram<string>({
    name: 'vfio_prepare_duration_seconds',
    help: 'Prepare state to the next state of the device, for prepares that an event closed.',
    labelNames: prepareLabels,
    buckets: [...DURATION_BUCKETS_SECONDS],
    enableExemplars: true,
    registers,
  });
  const prepareOutcomes = new Counter({
    name: 'vfio_prepare_outcomes_total',
    help: 'Every prepare, by how it ended.',
    labelNames: prepareLabels,
    registers,
  });
  const stateDwell = new Histogram<string>({
    name: 'vfio_state_dwell_seconds',
    help: 'Time a device spent in a state before the next one.',
    labelNames: ['state', 'next'],
    buckets: [...DURATION_BUCKETS_SECONDS],
    enableExemplars: true,
    registers,
  });
  const deliveryLag = new Histogram({
    name: 'vfio_transition_delivery_lag_seconds',
    help: 'QEMU timestamp of the event that closed a transition to the exporter observing it.',
    buckets: [...LAG_BUCKETS_SECONDS],
    registers,
  });
  const consumed = new Counter({
    name: 'vfio_exporter_records_consumed_total',
    help: 'Transition records read.',
    registers,
  });
  const invalid = new Counter({
    name: 'vfio_exporter_records_invalid_total',
    help: 'Transition records that could not be decoded or broke the schema rules, by reason.',
    labelNames: ['reason'],
    registers,
  });
  const folded = new Counter({
    name: 'vfio_exporter_label_values_folded_total',
    help: 'Observations whose label value was replaced by "other" by the cardinality limit.',
    labelNames: ['label'],
    registers,
  });
  for (const reason of INVALID_REASONS) invalid.inc({ reason }, 0);
  for (const label of hostLabel
    ? ['target', 'outcome', 'state', 'host']
    : ['target', 'outcome', 'state']) {
    folded.inc({ label }, 0);
  }

  const rateLimited = createRateLimitedLog(logger);

  return {
    recordsConsumed(count: number): void {
      consumed.inc(count);
    },
    recordInvalid(reason: InvalidReason, where: Record<string, unknown>): void {
      invalid.inc({ reason });
      rateLimited(`invalid:${reason}`, 'warn', 'A transition record was skipped.', {
        reason,
        ...where,
      });
    },
    labelsFolded(folds: readonly LabelFold[]): void {
      for (const fold of folds) {
        folded.inc({ label: fold.label });
        rateLimited(
          `folded:${fold.label}`,
          'warn',
          'A label value was folded into "other": the label has reached its limit of distinct values.',
          { label: fold.label, value: fold.value },
        );
      }
    },
    observed(observations: readonly Observation[]): void {
      for (const o of observations) {
        switch (o.metric) {
          case 'prepareDuration':
            prepareDuration.observe({ labels: o.labels, value: o.value, ...exemplar(o) });
            break;
          case 'prepareOutcome':
            prepareOutcomes.inc(o.labels);
            break;
          case 'stateDwell':
            stateDwell.observe({ labels: o.labels, value: o.value, ...exemplar(o) });
            break;
          case 'deliveryLag':
            deliveryLag.observe(o.value);
            break;
        }
      }
    },
    /** The values the live page is built from. */
    async samples(): Promise<{
      prepareDuration: MetricSample[];
      prepareOutcomes: MetricSample[];
      consumed: number;
      invalid: number;
    }> {
      const [duration, outcomes, c, i] = await Promise.all([
        prepareDuration.get(),
        prepareOutcomes.get(),
        consumed.get(),
        invalid.get(),
      ]);
      const total = (values: readonly MetricSample[]): number =>
        values.reduce((sum, v) => sum + v.value, 0);
      return {
        prepareDuration: duration.values,
        prepareOutcomes: outcomes.values,
        consumed: total(c.values),
        invalid: total(i.values),
      };
    },
  };
}

/** An exemplar-enabled histogram takes the observation and its exemplar in one object. */
function exemplar(o: { exemplar?: Readonly<Record<string, string | undefined>> }): {
  exemplarLabels?: Record<string, string>;
} {
  if (o.exemplar === undefined) return {};
  const labels: Record<string, string> = {};
  for (const [name, value] of Object.entries(o.exemplar))
    if (value !== undefined) labels[name] = value;
  return { exemplarLabels: labels };
}

export function createOpenMetricsRegistry(): Registry<OpenMetricsContentType> {
  const registry = new Registry<OpenMetricsContentType>();
  registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
  return registry;
}

/**
 * The same metrics as `openMetrics`, served in the classic text format. prom-client renames a
 * counter in place while it writes OpenMetrics (`x_total` becomes `x`, the lines get `_total`
 * back), so registering the metric objects themselves would print `vfio_prepare_outcomes` to the
 * next classic scrape; the classic registry holds views that keep each metric's registered name.
 * Call it after every metric is registered.
 */
export function classicRegistryOf(openMetrics: Registry<OpenMetricsContentType>): Registry {
  const classic = new Registry();
  for (const metric of openMetrics.getMetricsAsArray()) {
    const source = metric as unknown as PromClientMetric;
    const { name } = source;
    const view: PromClientMetric = {
      name,
      get: async () => ({ ...(await source.get()), name }),
      reset: () => source.reset(),
    };
    if (source.getForPromString !== undefined) {
      const forPromString = source.getForPromString.bind(source);
      view.getForPromString = async () => ({ ...(await forPromString()), name });
    }
    classic.registerMetric(view as unknown as Metric);
  }
  return classic;
}

/** What prom-client's Registry uses of a metric object. */
interface PromClientMetric {
  name: string;
  get(): Promise<object>;
  getForPromString?: () => Promise<object>;
  reset(): void;
}
