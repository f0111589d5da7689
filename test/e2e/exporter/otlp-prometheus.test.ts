/**
 * The exporter's OTLP output into a real Prometheus 3 with its OTLP receiver on: prepare
 * latencies from 2 µs to 5 minutes go in as transition records; the shutdown export (the only
 * one: the interval is longer than the test) lands as a native histogram, and
 * `histogram_quantile` on it is within the bucket-width error bound of the exact quantiles of the
 * fed latencies, at microseconds, milliseconds and minutes alike.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseExporterConfig } from '../../../services/exporter/config.ts';
import {
  exponentialRelativeError,
  exponentialScaleFor,
  OTLP_HISTOGRAM_MAX_BUCKETS,
} from '../../../services/exporter/core/otlp-observations.ts';
import type { TransitionSink } from '../../../services/exporter/io/transition-sink.ts';
import { startExporter } from '../../../services/exporter/main.ts';
import type { TransitionRecord } from '../../../services/shared/core/transition-record.ts';
import { createTransitionCodec } from '../../../services/shared/io/avro-codec.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { pollUntil, PROMETHEUS_VERSIONS, startPrometheus } from '../../helpers/prometheus.ts';

const PROMETHEUS_3 = PROMETHEUS_VERSIONS.find((v) => v.name === 'Prometheus 3');
/** Prometheus stores native histograms at schema 8 at most; finer OTLP scales are reduced. */
const PROMETHEUS_MAX_SCALE = 8;

const MIN_SECONDS = 2e-6;
const MAX_SECONDS = 300;
const COUNT = 2000;

/** Log-uniform over [MIN_SECONDS, MAX_SECONDS], spread by the golden ratio: deterministic. */
function latencies(): number[] {
  const values: number[] = [];
  for (let i = 0; i < COUNT; i++) {
    const u = (i * 0.6180339887498949) % 1;
    values.push(MIN_SECONDS * (MAX_SECONDS / MIN_SECONDS) ** u);
  }
  return values;
}

/** The exact quantile as histogram_quantile means it: the value of rank ⌈q·n⌉. */
function exactQuantile(sorted: readonly number[], q: number): number {
  const value = sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];
  assert.ok(value !== undefined);
  return value;
}

test('the OTLP output gives Prometheus 3 a native histogram whose quantiles are within the exponential bound from microseconds to minutes', async (t) => {
  assert.ok(PROMETHEUS_3 !== undefined);
  const prometheus = await startPrometheus({
    binary: PROMETHEUS_3.prometheus,
    t,
    targets: {},
    extraArgs: ['--web.enable-otlp-receiver'],
  });

  let sink: TransitionSink | undefined;
  const config = parseExporterConfig({
    env: { KAFKA_BROKERS: 'unused:9092' },
    flags: {
      'http-port': '0',
      'otlp-endpoint': `${prometheus.url}/api/v1/otlp/v1/metrics`,
      'otlp-interval-ms': '600000',
    },
  });
  const exporter = await startExporter(config, createLogger({ level: 'warn' }), {
    instanceId: 'otlp-test',
    startConsumer: (s) => {
      sink = s;
      return Promise.resolve({
        readiness: () => ({ ready: true, reasons: [] }),
        stop: () => Promise.resolve(),
      });
    },
  });
  t.after(() => exporter.stop());
  assert.ok(sink !== undefined);
  const feed = sink;

  const codec = createTransitionCodec();
  const fed = latencies();
  const t0 = 1_700_000_000_000_000;
  fed.forEach((seconds, i) => {
    const endMicros = t0 + i * 1_000_000;
    const prepare: TransitionRecord = {
      type: 'prepare',
      host: 'hv-1',
      vm: `vm-${i % 5}`,
      qomPath: '/machine/peripheral/vf0',
      deviceId: 'vf0',
      target: 'pre-copy-p2p',
      prepareState: 'pre-copy-p2p-prepare',
      outcome: 'completed',
      next: 'pre-copy-p2p',
      seconds,
      startMicros: endMicros - Math.round(seconds * 1e6),
      endMicros,
    };
    feed.observe(codec.encode(prepare), endMicros, { partition: 0, offset: String(2 * i) });
    const dwell: TransitionRecord = {
      type: 'dwell',
      host: prepare.host,
      vm: prepare.vm,
      qomPath: prepare.qomPath,
      deviceId: prepare.deviceId,
      state: 'running',
      next: 'pre-copy-p2p-prepare',
      seconds: 4.5,
      startMicros: prepare.startMicros - 4_500_000,
      endMicros: prepare.startMicros,
    };
    feed.observe(codec.encode(dwell), endMicros, { partition: 0, offset: String(2 * i + 1) });
  });

  // The shutdown flushes the OTLP output once, after the consumer stopped.
  await exporter.stop();
  const exports = await exporter.registry.getSingleMetricAsString(
    'vfio_exporter_otlp_exports_total',
  );
  assert.match(exports, /vfio_exporter_otlp_exports_total\{result="success"\} 1\n/);
  assert.match(exports, /vfio_exporter_otlp_exports_total\{result="failure"\} 0$/m);

  const scale = Math.min(
    PROMETHEUS_MAX_SCALE,
    exponentialScaleFor(MIN_SECONDS, MAX_SECONDS, OTLP_HISTOGRAM_MAX_BUCKETS),
  );
  const bound = exponentialRelativeError(scale);
  assert.ok(bound < 0.05, `the error bound is ${bound}`);

  const scalar = async (expr: string): Promise<number> =>
    pollUntil(
      `a value for ${expr}`,
      async () => {
        const response = await prometheus.query(expr);
        assert.equal(response.status, 'success', `${response.error ?? ''}\n${expr}`);
        const result = (response.data as { result: { value?: [number, string] }[] }).result;
        const value = result[0]?.value?.[1];
        return value === undefined ? undefined : Number(value);
      },
      30_000,
      200,
    );

  const histogram = 'vfio_prepare_duration_exponential_seconds';
  assert.equal(
    await scalar(`histogram_count(sum(${histogram}{job="vfio-exporter",instance="otlp-test"}))`),
    COUNT,
  );
  assert.equal(
    await scalar(`histogram_count(sum(vfio_state_dwell_exponential_seconds{state="running"}))`),
    COUNT,
  );

  // The buckets Prometheus stored are those of the scale the bound assumes.
  const stored = await pollUntil(
    'the native histogram',
    async () => {
      const response = await prometheus.query(`sum(${histogram})`);
      const result = (
        response.data as { result: { histogram?: [number, { buckets: string[][] }] }[] }
      ).result;
      return result[0]?.histogram?.[1].buckets;
    },
    30_000,
    200,
  );
  assert.ok(stored.length > 100, `${stored.length} buckets`);
  for (const [, lower, upper] of stored) {
    const ratio = Number(upper) / Number(lower);
    assert.ok(Math.abs(ratio - (1 + bound)) < 1e-9, `bucket (${lower}, ${upper}]`);
  }

  // The share within the RDMA budget: off by at most the values of the bucket holding 50 ms.
  const within = fed.filter((s) => s <= 0.05).length / COUNT;
  const fraction = await scalar(`histogram_fraction(0, 0.05, sum(${histogram}))`);
  assert.ok(Math.abs(fraction - within) <= 0.005, `${fraction} within 50 ms, exactly ${within}`);
  t.diagnostic(`within 50 ms: exact ${within}, Prometheus ${fraction.toFixed(4)}`);

  const sorted = [...fed].sort((a, b) => a - b);
  for (const q of [0.01, 0.5, 0.99, 0.999]) {
    const exact = exactQuantile(sorted, q);
    const estimate = await scalar(
      `histogram_quantile(${q}, sum(${histogram}{target="pre-copy-p2p",outcome="completed",host="hv-1"}))`,
    );
    const error = Math.abs(estimate - exact) / exact;
    assert.ok(
      error <= bound,
      `p${q * 100}: Prometheus says ${estimate} s, the fed latencies ${exact} s: ` +
        `relative error ${(error * 100).toFixed(2)} % > ${(bound * 100).toFixed(2)} %`,
    );
    t.diagnostic(
      `p${q * 100}: exact ${exact.toPrecision(4)} s, Prometheus ${estimate.toPrecision(4)} s, ` +
        `error ${(error * 100).toFixed(2)} % (bound ${(bound * 100).toFixed(2)} %, scale ${scale})`,
    );
  }
});
