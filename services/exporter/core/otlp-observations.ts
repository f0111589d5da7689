/**
 * What the exporter's observations add to its optional OTLP output (docs/metrics.md, "OTLP
 * output"): the two latencies again, as OpenTelemetry histograms that the SDK aggregates into
 * base-2 exponential histograms (Prometheus 3 stores them as native histograms):
 *
 *   prepareDuration → vfio_prepare_duration_exponential_seconds{target,outcome[,host]}
 *   stateDwell      → vfio_state_dwell_exponential_seconds{state,next}
 *
 * The values and labels are those of the prom-client histograms (the same guarded labels, the
 * seconds QEMU's timestamps give, clamped at 0): only the aggregation differs. The names carry
 * `_exponential` so that a Prometheus that both scrapes the exporter (classic histograms, or
 * their native custom-bucket conversion) and receives its OTLP never mixes the two schemas in one
 * query; they are already in Prometheus form, so every OTLP translation strategy keeps them.
 *
 * An exponential histogram of scale s has buckets (2^((i−1)/2^s), 2^(i/2^s)]: any value inside a
 * bucket is within a factor 2^(2^−s) of either bound, whatever its magnitude. The SDK picks the
 * largest scale (≤ 20) at which every value seen fits in `maxBuckets` consecutive buckets, so the
 * error bound follows from the range of values a series has seen (`exponentialScaleFor`).
 *
 * Pure: no SDK here; `io/otlp-output.ts` records what this returns.
 */
import type { Observation } from './transition-observations.ts';

export interface OtlpHistogramSpec {
  name: string;
  description: string;
  unit: 's';
}

export const OTLP_HISTOGRAMS = {
  prepareDuration: {
    name: 'vfio_prepare_duration_exponential_seconds',
    description:
      'Prepare state to the next state of the device, for prepares that an event closed (base-2 exponential buckets).',
    unit: 's',
  },
  stateDwell: {
    name: 'vfio_state_dwell_exponential_seconds',
    description: 'Time a device spent in a state before the next one (base-2 exponential buckets).',
    unit: 's',
  },
} as const satisfies Record<string, OtlpHistogramSpec>;

export type OtlpHistogram = keyof typeof OTLP_HISTOGRAMS;

/**
 * Buckets per series. 512 keep scale 4 (16 buckets per doubling, values within 4.4 % of a bucket
 * bound) over 32 doublings: 1 µs to 71 minutes in one series. The SDK's default of 160 would fall
 * to scale 2 (19 %) over the same range. Memory is 8 bytes a bucket per series, allocated as
 * values spread.
 */
export const OTLP_HISTOGRAM_MAX_BUCKETS = 512;

/** The SDK's largest scale (OpenTelemetry's MaxScale); Prometheus reduces scales above 8 to 8. */
export const EXPONENTIAL_MAX_SCALE = 20;
export const EXPONENTIAL_MIN_SCALE = -10;

export interface OtlpRecording {
  histogram: OtlpHistogram;
  /** Seconds, ≥ 0. */
  value: number;
  attributes: Readonly<Record<string, string>>;
}

/** The OTLP recordings of one record's observations (outcome counts and lag stay prom-client's). */
export function otlpRecordingsOf(observations: readonly Observation[]): OtlpRecording[] {
  const recordings: OtlpRecording[] = [];
  for (const o of observations) {
    if (o.metric === 'prepareDuration') {
      recordings.push({ histogram: 'prepareDuration', value: o.value, attributes: o.labels });
    } else if (o.metric === 'stateDwell') {
      recordings.push({ histogram: 'stateDwell', value: o.value, attributes: o.labels });
    }
  }
  return recordings;
}

/**
 * The scale an exponential histogram of `maxBuckets` buckets ends at once it has seen values from
 * `minValue` to `maxValue` (both > 0): the largest scale at which both fall in `maxBuckets`
 * consecutive buckets (bucket index ⌈log2(v)·2^scale⌉ − 1, OpenTelemetry's data model).
 */
export function exponentialScaleFor(
  minValue: number,
  maxValue: number,
  maxBuckets: number,
): number {
  if (!(minValue > 0) || !(maxValue >= minValue)) {
    throw new RangeError(`need 0 < minValue ≤ maxValue, got ${minValue} and ${maxValue}`);
  }
  for (let scale = EXPONENTIAL_MAX_SCALE; scale > EXPONENTIAL_MIN_SCALE; scale--) {
    const factor = 2 ** scale;
    const low = Math.ceil(Math.log2(minValue) * factor) - 1;
    const high = Math.ceil(Math.log2(maxValue) * factor) - 1;
    if (high - low + 1 <= maxBuckets) return scale;
  }
  return EXPONENTIAL_MIN_SCALE;
}

/**
 * The largest relative error of a quantile read from a histogram of this scale: the quantile and
 * the value it estimates lie in the same bucket, whose bounds differ by a factor 2^(2^−scale).
 */
export function exponentialRelativeError(scale: number): number {
  return 2 ** (2 ** -scale) - 1;
}
