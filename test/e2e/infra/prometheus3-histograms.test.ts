/**
 * What Prometheus 3 changed about classic histograms, on a real scrape of the real exporter:
 *
 * - `le` normalization: Prometheus 3 stores a bucket bound float-formatted (`le="1.0"`, `le="30.0"`)
 *   where 2.42 keeps what the exporter wrote (`le="1"`); the rules' matchers (leMatcher) take both.
 *   promtool.test.ts scans every expression for the spelling; this shows it on real ingestion.
 * - `convert_classic_histograms_to_nhcb`: with `always_scrape_classic_histograms` the classic
 *   series stay next to the native histogram with custom buckets (NHCB): every dashboard and
 *   recording rule that reads an exporter histogram returns numbers, the SLO and recording rules
 *   the exact values of the fed mix, and native queries on the NHCB agree. Without it the classic series are gone, and with them every
 *   `_bucket`/`_count` query (docs/operations.md, "Prometheus 2 and 3").
 *
 * The exporter is fed the same mix on every tick (8 completed prepares at 4 ms and 2 at 200 ms),
 * so a ratio or a quantile of rates has one exact value, however the scrapes fall.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { leMatcher } from '../../../infra/slo/slo-rules.ts';
import {
  DURATION_BUCKETS_SECONDS,
  RDMA_BUDGET_SECONDS,
} from '../../../services/shared/core/bucket-policy.ts';
import { startFedExporter, type FedExporter } from '../../helpers/fed-exporter.ts';
import {
  pollUntil,
  repoExpressions,
  repoRuleFiles,
  PROMETHEUS_VERSIONS,
  startPrometheus,
  type PromqlSource,
  type RunningPrometheus,
} from '../../helpers/prometheus.ts';

const TIMEOUT_MS = 60_000;

const FAST = { seconds: 0.004, perTick: 8 };
const SLOW = { seconds: 0.2, perTick: 2 };
const TOTAL = FAST.perTick + SLOW.perTick;

/** Classic histogram_quantile of the fed mix: linear within the bucket holding the rank. */
function expectedQuantile(q: number): number {
  const observations = [
    ...Array<number>(FAST.perTick).fill(FAST.seconds),
    ...Array<number>(SLOW.perTick).fill(SLOW.seconds),
  ];
  const rank = q * TOTAL;
  let lower = 0;
  for (const upper of DURATION_BUCKETS_SECONDS) {
    const below = observations.filter((s) => s <= lower).length;
    const inside = observations.filter((s) => s > lower && s <= upper).length;
    if (below + inside >= rank) return lower + ((upper - lower) * (rank - below)) / inside;
    lower = upper;
  }
  throw new Error(`no bucket holds rank ${rank}`);
}

function feedTicks(t: TestContext | undefined, exporter: FedExporter): () => void {
  const prepare = (seconds: number, endMicros: number) =>
    exporter.feed(
      {
        type: 'prepare',
        host: 'hv-0',
        vm: 'vm-1',
        qomPath: '/machine/peripheral/vf0',
        deviceId: 'vf0',
        target: 'pre-copy-p2p',
        prepareState: 'pre-copy-p2p-prepare',
        outcome: 'completed',
        next: 'pre-copy-p2p',
        seconds,
        startMicros: endMicros - Math.round(seconds * 1e6),
        endMicros,
      },
      endMicros + 1000,
    );
  const tick = () => {
    const now = Date.now() * 1000;
    for (let i = 0; i < FAST.perTick; i++) prepare(FAST.seconds, now);
    for (let i = 0; i < SLOW.perTick; i++) prepare(SLOW.seconds, now);
    exporter.feed(
      {
        type: 'dwell',
        host: 'hv-0',
        vm: 'vm-1',
        qomPath: '/machine/peripheral/vf0',
        deviceId: 'vf0',
        state: 'running',
        next: 'pre-copy-p2p-prepare',
        seconds: 1.5,
        startMicros: now - 1_500_000,
        endMicros: now,
      },
      now + 1000,
    );
  };
  tick();
  const timer = setInterval(tick, 250);
  const stop = () => clearInterval(timer);
  t?.after(stop);
  return stop;
}

interface Sample {
  metric: Record<string, string>;
  value?: [number, string];
  histogram?: [number, unknown];
}

async function samples(p: RunningPrometheus, expr: string): Promise<Sample[]> {
  const response = await p.query(expr);
  assert.equal(response.status, 'success', `${response.error ?? ''}\n${expr}`);
  const data = response.data as { resultType: string; result: Sample[] | [number, string] };
  if (data.resultType === 'scalar') {
    return [{ metric: {}, value: data.result as [number, string] }];
  }
  return data.result as Sample[];
}

/**
 * Polls until `expr` returns series and none is NaN (a ratio of rates is 0/0 until two scrapes
 * with observations between them are in its range); their float values.
 */
async function valuesOf(p: RunningPrometheus, expr: string): Promise<number[]> {
  return pollUntil(
    `numbers from ${expr}`,
    async () => {
      const values = (await samples(p, expr)).map((s) => Number(s.value?.[1]));
      return values.length > 0 && !values.some(Number.isNaN) ? values : undefined;
    },
    TIMEOUT_MS,
    250,
  );
}

async function assertValue(p: RunningPrometheus, expr: string, expected: number): Promise<void> {
  const values = await valuesOf(p, expr);
  assert.equal(values.length, 1, `${expr}: ${values.join(', ')}`);
  const [value = NaN] = values;
  assert.ok(Math.abs(value - expected) < 1e-9, `${expr} = ${value}, expected ${expected}`);
}

const PROMETHEUS3 = PROMETHEUS_VERSIONS.find((v) => v.major === 3);
assert.ok(PROMETHEUS3);

for (const version of PROMETHEUS_VERSIONS)
  test(`a bound's le is stored as ${version.name} spells it, and the rules' matcher takes it`, async (t) => {
    const exporter = await startFedExporter(t);
    feedTicks(t, exporter);
    const p = await startPrometheus({
      binary: version.prometheus,
      t,
      targets: { 'vfio-exporter': [exporter.address] },
    });
    for (const [metric, bound] of [
      ['vfio_prepare_duration_seconds_bucket', 1],
      ['vfio_transition_delivery_lag_seconds_bucket', 30],
    ] as const) {
      await valuesOf(p, `${metric}{le="+Inf"}`);
      const stored = version.major === 3 ? `${bound}.0` : String(bound);
      const other = version.major === 3 ? String(bound) : `${bound}.0`;
      assert.equal((await samples(p, `${metric}{le="${stored}"}`)).length > 0, true, stored);
      assert.deepEqual(await samples(p, `${metric}{le="${other}"}`), [], `${metric} le="${other}"`);
      assert.ok((await samples(p, `${metric}{${leMatcher(bound)}}`)).length > 0, leMatcher(bound));
    }
  });

/** The recording rules' and dashboard panels' expressions that read an exporter histogram. */
async function histogramExpressions(): Promise<PromqlSource[]> {
  // Alerts return nothing while quiet; their inputs are the recording rules checked here.
  const sources = await repoExpressions({ withAlerts: false });
  return sources.filter((s) =>
    /vfio_(prepare_duration|state_dwell|transition_delivery_lag)_seconds_(bucket|count|sum)\b/.test(
      s.expr,
    ),
  );
}

describe(`convert_classic_histograms_to_nhcb on ${PROMETHEUS3.name}`, () => {
  let withClassic: RunningPrometheus | undefined;
  let nhcbOnly: RunningPrometheus | undefined;
  let stopFeeding: (() => void) | undefined;
  const stops: (() => Promise<void>)[] = [];
  after(async () => {
    stopFeeding?.();
    for (const stop of stops.reverse()) await stop();
  });

  before(async () => {
    const exporter = await startFedExporter();
    stops.push(() => exporter.stop());
    stopFeeding = feedTicks(undefined, exporter);
    const ruleFiles = await repoRuleFiles();
    const start = (scrapeSettings: Record<string, unknown>) =>
      startPrometheus({
        binary: PROMETHEUS3.prometheus,
        targets: { 'vfio-exporter': [exporter.address] },
        ruleFiles,
        scrapeSettings,
      });
    withClassic = await start({
      convert_classic_histograms_to_nhcb: true,
      always_scrape_classic_histograms: true,
    });
    stops.push(() => withClassic?.stop() ?? Promise.resolve());
    nhcbOnly = await start({ convert_classic_histograms_to_nhcb: true });
    stops.push(() => nhcbOnly?.stop() ?? Promise.resolve());
  });

  test('the exporter histograms are stored as native histograms with custom buckets', async () => {
    assert.ok(withClassic && nhcbOnly);
    for (const p of [withClassic, nhcbOnly]) {
      const series = await pollUntil(
        'a native vfio_prepare_duration_seconds',
        async () => {
          const result = await samples(p, 'vfio_prepare_duration_seconds{outcome="completed"}');
          return result.length > 0 ? result : undefined;
        },
        TIMEOUT_MS,
        250,
      );
      assert.equal(series.length, 1);
      assert.ok(series[0]?.histogram, 'a histogram sample, not a float');
    }
  });

  test('with always_scrape_classic_histograms the SLO and recording rules give the exact values', async () => {
    const p = withClassic;
    assert.ok(p);
    const bad = SLOW.perTick / TOTAL;
    const latency = 'slo="prepare-latency", target="pre-copy-p2p"';
    for (const w of ['5m', '30m', '1h', '3d']) {
      await assertValue(p, `vfio:slo_sli_error:ratio_rate${w}{${latency}}`, bad);
    }
    await assertValue(p, `vfio:slo_error_budget_remaining:ratio{${latency}}`, 1 - bad / 0.01);
    await assertValue(p, 'vfio:prepare_within_rdma_budget:ratio_rate5m', 1 - bad);
    await assertValue(p, 'vfio:slo_sli_error:ratio_rate5m{slo="pipeline-freshness"}', 0);
    await assertValue(
      p,
      'vfio:slo_sli_error:ratio_rate5m{slo="prepare-success", target="pre-copy-p2p"}',
      0,
    );
    for (const q of [0.5, 0.9, 0.99]) {
      await assertValue(
        p,
        `vfio:prepare_duration_seconds:quantile_rate5m{quantile="${q}", outcome="completed"}`,
        expectedQuantile(q),
      );
    }
  });

  test('with always_scrape_classic_histograms every histogram query of the rules and dashboards returns series', async (t) => {
    const p = withClassic;
    assert.ok(p);
    const sources = await histogramExpressions();
    assert.ok(sources.length >= 20, `only ${sources.length} histogram expressions`);
    for (const { where, expr } of sources) {
      await t.test(where, async () => {
        await valuesOf(p, expr);
      });
    }
  });

  test('native queries on the NHCB agree with the classic ones', async () => {
    const p = withClassic;
    assert.ok(p);
    const native = 'rate(vfio_prepare_duration_seconds{outcome="completed"}[1m])';
    for (const q of [0.5, 0.9, 0.99]) {
      await assertValue(p, `histogram_quantile(${q}, sum(${native}))`, expectedQuantile(q));
    }
    await assertValue(
      p,
      `histogram_fraction(0, ${RDMA_BUDGET_SECONDS}, sum(${native}))`,
      FAST.perTick / TOTAL,
    );
    // The count of the NHCB is the classic _count, scrape for scrape.
    await assertValue(
      p,
      'histogram_count(vfio_prepare_duration_seconds{outcome="completed"}) - vfio_prepare_duration_seconds_count{outcome="completed"}',
      0,
    );
  });

  test('without always_scrape_classic_histograms the classic series and the rules on them are gone', async () => {
    const p = nhcbOnly;
    assert.ok(p);
    await valuesOf(p, 'vfio:rdma_budget_seconds');
    await valuesOf(p, 'histogram_count(vfio_prepare_duration_seconds{outcome="completed"})');
    // A rule on a counter has a rate: the rules have run over two scrapes or more.
    await valuesOf(p, 'vfio:slo_sli_error:ratio_rate5m{slo="prepare-success"}');
    for (const expr of [
      'vfio_prepare_duration_seconds_bucket',
      'vfio_prepare_duration_seconds_count',
      'vfio_transition_delivery_lag_seconds_bucket',
      'vfio:slo_sli_error:ratio_rate5m{slo="prepare-latency"}',
      'vfio:prepare_duration_seconds:quantile_rate5m',
    ]) {
      assert.deepEqual(await samples(p, expr), [], expr);
    }
  });
});
