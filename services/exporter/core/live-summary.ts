/**
 * The JSON behind the live page (`GET /api/summary`), built from the exporter's own metric
 * values. The samples have prom-client's `get()` shape, but as plain data: this module neither
 * imports prom-client nor reads a clock.
 */
import { PREPARE_OUTCOMES } from '../../shared/core/transition-record.ts';
import { histogramQuantile } from './histogram-quantile.ts';
import type { QuantilePoint } from './quantile-history.ts';
import type { SlowPrepare } from './slowest-prepares.ts';

export interface MetricSample {
  labels: Readonly<Record<string, string | number | undefined>>;
  value: number;
  /** `<name>_bucket`, `<name>_sum` or `<name>_count` for a histogram. */
  metricName?: string;
}

export interface AggregatedHistogram {
  /** Cumulative counts per finite bound, then +Inf. */
  cumulative: number[];
  sum: number;
  count: number;
}

/** `sum by (groupBy, le)` of a histogram's samples; one entry per value of `groupBy`. */
export function aggregateHistogram(
  samples: readonly MetricSample[],
  bounds: readonly number[],
  groupBy: string,
): Map<string, AggregatedHistogram> {
  const out = new Map<string, AggregatedHistogram>();
  const entry = (key: string): AggregatedHistogram => {
    let h = out.get(key);
    if (h === undefined) {
      h = { cumulative: new Array<number>(bounds.length + 1).fill(0), sum: 0, count: 0 };
      out.set(key, h);
    }
    return h;
  };
  for (const s of samples) {
    const h = entry(String(s.labels[groupBy] ?? ''));
    const name = s.metricName ?? '';
    if (name.endsWith('_bucket')) {
      const le = s.labels['le'];
      const i = le === '+Inf' ? bounds.length : bounds.indexOf(Number(le));
      if (i >= 0) h.cumulative[i] = (h.cumulative[i] as number) + s.value;
    } else if (name.endsWith('_sum')) h.sum += s.value;
    else if (name.endsWith('_count')) h.count += s.value;
  }
  return out;
}

/** `sum by (label)` of a counter's samples. */
export function sumBy(samples: readonly MetricSample[], label: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    const key = String(s.labels[label] ?? '');
    out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}

export interface LatencyDistribution {
  outcome: string;
  count: number;
  sum: number;
  /** Observations per bucket (not cumulative): one per finite bound, then +Inf. */
  perBucket: number[];
  /** Share of observations at or under the budget bound; null without observations. */
  withinBudget: number | null;
}

export interface LiveSummary {
  atMs: number;
  ready: boolean;
  readiness: readonly string[];
  recordsConsumed: number;
  recordsInvalid: number;
  bounds: readonly number[];
  budgetSeconds: number;
  latency: LatencyDistribution[];
  outcomes: { outcome: string; count: number }[];
  quantileWindowSeconds: number;
  quantiles: QuantilePoint[];
  /** The slowest prepares observed in the last `slowestWindowSeconds`, slowest first. */
  slowest: SlowPrepare[];
  slowestWindowSeconds: number;
  /** One row per value of the host label (empty when the label is off), by host. */
  hosts: HostSummary[];
}

export interface HostSummary {
  host: string;
  /** Every prepare, any outcome. */
  prepares: number;
  /** Completed prepares (the latency histogram's count). */
  completed: number;
  /** p99 of completed prepares, as `histogram_quantile` would give; null without any. */
  p99: number | null;
  /** Completed prepares slower than the budget bound. */
  overBudget: number;
}

export interface LiveSummaryInput {
  atMs: number;
  ready: boolean;
  readiness: readonly string[];
  recordsConsumed: number;
  recordsInvalid: number;
  bounds: readonly number[];
  budgetSeconds: number;
  /** Latency histogram aggregated by outcome. */
  latencyByOutcome: ReadonlyMap<string, AggregatedHistogram>;
  /** Outcome counter summed by outcome. */
  outcomeCounts: ReadonlyMap<string, number>;
  quantileWindowSeconds: number;
  quantiles: QuantilePoint[];
  slowest?: SlowPrepare[];
  slowestWindowSeconds?: number;
  /** Completed-prepare latency histogram aggregated by host. */
  latencyByHost?: ReadonlyMap<string, AggregatedHistogram>;
  /** Outcome counter summed by host. */
  preparesByHost?: ReadonlyMap<string, number>;
}

/**
 * Per-host figures since the exporter started. Hosts come from the outcome counter (every
 * prepare) and the latency histogram; a folded `other` is a host row like any other.
 */
export function buildHostSummaries(
  bounds: readonly number[],
  budgetSeconds: number,
  latencyByHost: ReadonlyMap<string, AggregatedHistogram>,
  preparesByHost: ReadonlyMap<string, number>,
): HostSummary[] {
  const budgetIndex = bounds.indexOf(budgetSeconds);
  const hosts = [...new Set([...preparesByHost.keys(), ...latencyByHost.keys()])]
    .filter((h) => h !== '')
    .sort();
  return hosts.map((host) => {
    const h = latencyByHost.get(host);
    const cumulative = h?.cumulative ?? [];
    const completed = cumulative[cumulative.length - 1] ?? 0;
    const p99 =
      completed === 0
        ? null
        : histogramQuantile(
            0.99,
            cumulative.map((count, i) => ({ le: bounds[i] ?? Number.POSITIVE_INFINITY, count })),
          );
    return {
      host,
      prepares: preparesByHost.get(host) ?? 0,
      completed,
      p99: p99 === null || Number.isNaN(p99) ? null : p99,
      overBudget: budgetIndex < 0 ? 0 : completed - (cumulative[budgetIndex] ?? 0),
    };
  });
}

export function buildLiveSummary(input: LiveSummaryInput): LiveSummary {
  const budgetIndex = input.bounds.indexOf(input.budgetSeconds);
  const latency = ['completed', 'failed', ...input.latencyByOutcome.keys()]
    .filter((o, i, all) => all.indexOf(o) === i)
    .map((outcome) => {
      const h = input.latencyByOutcome.get(outcome);
      const cumulative = h?.cumulative ?? new Array<number>(input.bounds.length + 1).fill(0);
      const count = cumulative[cumulative.length - 1] ?? 0;
      return {
        outcome,
        count,
        sum: h?.sum ?? 0,
        perBucket: cumulative.map((c, i) => c - (i === 0 ? 0 : (cumulative[i - 1] as number))),
        withinBudget:
          count === 0 || budgetIndex < 0 ? null : (cumulative[budgetIndex] as number) / count,
      };
    });
  const outcomes = [...PREPARE_OUTCOMES, ...input.outcomeCounts.keys()]
    .filter((o, i, all) => all.indexOf(o) === i)
    .map((outcome) => ({ outcome, count: input.outcomeCounts.get(outcome) ?? 0 }));
  return {
    atMs: input.atMs,
    ready: input.ready,
    readiness: input.readiness,
    recordsConsumed: input.recordsConsumed,
    recordsInvalid: input.recordsInvalid,
    bounds: input.bounds,
    budgetSeconds: input.budgetSeconds,
    latency,
    outcomes,
    quantileWindowSeconds: input.quantileWindowSeconds,
    quantiles: input.quantiles,
    slowest: input.slowest ?? [],
    slowestWindowSeconds: input.slowestWindowSeconds ?? 0,
    hosts: buildHostSummaries(
      input.bounds,
      input.budgetSeconds,
      input.latencyByHost ?? new Map(),
      input.preparesByHost ?? new Map(),
    ),
  };
}
