import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseExporterConfig } from '../../../services/exporter/config.ts';
import type { LiveSummary } from '../../../services/exporter/core/live-summary.ts';
import type { TransitionSink } from '../../../services/exporter/io/transition-sink.ts';
import { startExporter } from '../../../services/exporter/main.ts';
import type { TransitionRecord } from '../../../services/shared/core/transition-record.ts';
import { createTransitionCodec } from '../../../services/shared/io/avro-codec.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';

const T0 = 1_700_000_000_000_000;
const prepare: TransitionRecord = {
  type: 'prepare',
  host: 'h1',
  vm: 'vm-a',
  qomPath: '/machine/peripheral/nic0',
  deviceId: 'nic0',
  target: 'pre-copy-p2p',
  prepareState: 'pre-copy-p2p-prepare',
  outcome: 'completed',
  next: 'pre-copy-p2p',
  seconds: 0.012,
  startMicros: T0,
  endMicros: T0 + 12_000,
};

async function startWithFakeConsumer(t: import('node:test').TestContext) {
  let ready = false;
  let sink: TransitionSink | undefined;
  const logs: string[] = [];
  const config = parseExporterConfig({
    env: { KAFKA_BROKERS: 'unused:9092' },
    flags: { 'http-port': '0', 'quantile-interval-ms': '100' },
  });
  const exporter = await startExporter(config, createLogger({ write: (l) => logs.push(l) }), {
    startConsumer: (s) => {
      sink = s;
      return Promise.resolve({
        readiness: () =>
          ready
            ? { ready: true, reasons: ['kafka: t partitions 0'] }
            : { ready: false, reasons: ['kafka: joining g'] },
        stop: () => Promise.resolve(),
      });
    },
  });
  t.after(() => exporter.stop());
  assert.ok(sink !== undefined);
  return { exporter, sink, logs, setReady: (r: boolean) => (ready = r) };
}

const get = (url: string) =>
  fetch(url).then(async (r) => ({
    status: r.status,
    type: r.headers.get('content-type'),
    body: await r.text(),
  }));

test('/healthz, /readyz, /metrics, the live page and /api/summary', async (t) => {
  const { exporter, sink, setReady, logs } = await startWithFakeConsumer(t);
  const url = exporter.http.url;
  const codec = createTransitionCodec();

  assert.equal((await get(`${url}/healthz`)).status, 200);
  const notReady = await get(`${url}/readyz`);
  assert.equal(notReady.status, 503);
  assert.match(notReady.body, /not ready\nkafka: joining g/);
  setReady(true);
  assert.equal((await get(`${url}/readyz`)).status, 200);

  const now = T0 + 12_000 + 30_000;
  sink.observe(codec.encode(prepare), now, { partition: 0, offset: '0' });
  sink.observe(
    codec.encode({ ...prepare, outcome: 'aborted', seconds: null, next: null, endMicros: null }),
    now,
    {
      partition: 0,
      offset: '1',
    },
  );
  sink.observe(Buffer.from('not avro'), now, { partition: 0, offset: '2' });
  sink.observe(null, now, { partition: 0, offset: '3' });

  const metrics = await get(`${url}/metrics`);
  assert.equal(metrics.status, 200);
  assert.match(metrics.type ?? '', /^text\/plain/);
  const lines = metrics.body.split('\n');
  const labels = 'target="pre-copy-p2p",outcome="completed",host="h1"';
  for (const line of [
    `vfio_prepare_duration_seconds_bucket{le="0.01",${labels}} 0`,
    `vfio_prepare_duration_seconds_bucket{le="0.015",${labels}} 1`,
    `vfio_prepare_duration_seconds_count{${labels}} 1`,
    `vfio_prepare_duration_seconds_sum{${labels}} 0.012`,
    `vfio_prepare_outcomes_total{${labels}} 1`,
    'vfio_prepare_outcomes_total{target="pre-copy-p2p",outcome="aborted",host="h1"} 1',
    'vfio_transition_delivery_lag_seconds_count 2',
    'vfio_exporter_records_consumed_total 4',
    'vfio_exporter_records_invalid_total{reason="bad_marker"} 1',
    'vfio_exporter_records_invalid_total{reason="empty_value"} 1',
    'vfio_exporter_records_invalid_total{reason="bad_body"} 0',
    'vfio_exporter_label_values_folded_total{label="host"} 0',
  ]) {
    assert.ok(lines.includes(line), `missing: ${line}`);
  }
  assert.ok(lines.some((l) => l.startsWith('vfio_exporter_process_cpu_seconds_total')));
  // The runtime is reported, so a fleet can find hosts on an unsupported Node.
  assert.ok(
    lines.some(
      (l) =>
        l.startsWith('vfio_exporter_nodejs_version_info{') &&
        l.includes(`version="${process.version}"`),
    ),
    'nodejs_version_info names the running Node',
  );
  assert.ok(logs.some((l) => l.includes('A transition record was skipped.')));

  const page = await get(`${url}/`);
  assert.equal(page.status, 200);
  assert.match(page.type ?? '', /^text\/html/);
  assert.match(page.body, /<script src="\/live.js"/);
  assert.doesNotMatch(page.body, /https?:\/\/(?!www\.w3\.org)/, 'no external assets');
  assert.equal((await get(`${url}/live.js`)).status, 200);
  assert.match((await get(`${url}/live.css`)).type ?? '', /^text\/css/);

  const summary = JSON.parse((await get(`${url}/api/summary`)).body) as LiveSummary;
  assert.equal(summary.ready, true);
  assert.equal(summary.recordsConsumed, 4);
  assert.equal(summary.recordsInvalid, 2);
  assert.deepEqual(
    summary.outcomes.filter((o) => o.count > 0),
    [
      { outcome: 'completed', count: 1 },
      { outcome: 'aborted', count: 1 },
    ],
  );
  const completed = summary.latency.find((l) => l.outcome === 'completed');
  assert.equal(completed?.count, 1);
  assert.equal(completed?.withinBudget, 1);

  assert.equal((await get(`${url}/nope`)).status, 404);
  assert.equal((await fetch(`${url}/metrics`, { method: 'POST' })).status, 405);
});

test('quantile points appear in /api/summary every interval', async (t) => {
  const { exporter, sink } = await startWithFakeConsumer(t);
  const codec = createTransitionCodec();
  for (let i = 0; i < 10; i++) {
    sink.observe(codec.encode({ ...prepare, seconds: 0.02 + i * 0.001 }), T0, {
      partition: 0,
      offset: String(i),
    });
  }
  const deadline = Date.now() + 5000;
  let summary: LiveSummary;
  do {
    summary = await exporter.summary();
    if (summary.quantiles.some((p) => p.p99 !== null)) break;
    await new Promise((r) => setTimeout(r, 50));
  } while (Date.now() < deadline);
  const last = summary.quantiles.findLast((p) => p.p99 !== null);
  assert.ok(last !== undefined, 'no quantile point with data');
  assert.equal(last.count, 10);
  // 10 observations 20..29 ms: buckets (0.02,0.025] holds 5 (20 is in ≤0.02), …
  assert.ok(last.p50 !== null && last.p50 > 0.02 && last.p50 <= 0.025, String(last.p50));
  assert.ok(last.p99 !== null && last.p99 > 0.025 && last.p99 <= 0.03, String(last.p99));
});

test('/metrics: OpenMetrics with exemplars when asked for, classic otherwise, before and after', async (t) => {
  const { exporter, sink } = await startWithFakeConsumer(t);
  const url = `${exporter.http.url}/metrics`;
  const codec = createTransitionCodec();
  sink.observe(
    codec.encode({
      ...prepare,
      vm: 'vm-slow',
      deviceId: '',
      seconds: 0.07,
      endMicros: T0 + 70_000,
    }),
    T0 + 100_000,
    { partition: 0, offset: '0' },
  );
  const openMetrics = (accept: string) => fetch(url, { headers: { accept } });
  const classicBefore = await get(url);

  const om = await openMetrics(
    'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
  );
  assert.match(
    om.headers.get('content-type') ?? '',
    /^application\/openmetrics-text; version=1.0.0/,
  );
  const omText = await om.text();
  assert.ok(omText.endsWith('# EOF\n'));
  const bucket = omText
    .split('\n')
    .find((l) => l.startsWith('vfio_prepare_duration_seconds_bucket{le="0.075"'));
  assert.match(
    bucket ?? '',
    / 1 # \{host="h1",vm="vm-slow",device="peripheral\/nic0",qemu_ts="1700000000.070000"\} 0.07 \d+(\.\d+)?$/,
  );
  assert.ok(omText.includes('# TYPE vfio_prepare_outcomes counter\n'));
  assert.ok(omText.includes('\nvfio_prepare_outcomes_total{'));

  // The classic format has no exemplars and keeps counter names whole after an OpenMetrics scrape
  // (prom-client renames counters in place while writing OpenMetrics).
  for (const accept of [undefined, '*/*', 'text/plain;version=0.0.4']) {
    const classic = await fetch(url, accept === undefined ? {} : { headers: { accept } });
    assert.match(classic.headers.get('content-type') ?? '', /^text\/plain; version=0.0.4/);
    const text = await classic.text();
    assert.doesNotMatch(text, / # \{/, 'no exemplar in the classic format');
    assert.doesNotMatch(text, /# EOF/);
    assert.ok(text.includes('# TYPE vfio_prepare_outcomes_total counter\n'), String(accept));
    assert.ok(text.includes('# TYPE vfio_exporter_records_consumed_total counter\n'));
  }
  assert.ok(classicBefore.body.includes('# TYPE vfio_prepare_outcomes_total counter\n'));
  const names = (await exporter.registry.getMetricsAsJSON()).map((m) => m.name);
  assert.ok(names.includes('vfio_prepare_outcomes_total'));
});
