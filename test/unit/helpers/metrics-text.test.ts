import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import {
  metricSamples,
  metricValue,
  metricsBySeries,
  parseMetricsText,
  seriesKey,
} from '../../helpers/metrics-text.ts';

const PAGE = [
  '# HELP vfio_x_total Things.',
  '# TYPE vfio_x_total counter',
  'vfio_x_total{kind="a"} 3',
  'vfio_x_total{kind="b",zone="z1"} 4.5',
  'vfio_x_total_created{kind="a"} 1700000000',
  'vfio_y 7 1700000000000',
  'vfio_q{path="C:\\\\dir",say="he said \\"hi\\"\\nbye"} +Inf',
  'vfio_n NaN',
  'vfio_lag_mean_seconds Nan',
  'vfio_m{a="1",} -Inf',
  'vfio_e_bucket{le="0.1"} 2 # {trace_id="abc"} 0.05 1700000000.000',
  '',
  '# EOF',
].join('\n');

test('parseMetricsText reads names, labels (unescaped), values, and skips comments and exemplars', () => {
  const samples = parseMetricsText(PAGE);
  assert.deepEqual(
    samples.map((s) => [s.name, s.labels, s.value]),
    [
      ['vfio_x_total', { kind: 'a' }, 3],
      ['vfio_x_total', { kind: 'b', zone: 'z1' }, 4.5],
      ['vfio_x_total_created', { kind: 'a' }, 1700000000],
      ['vfio_y', {}, 7],
      ['vfio_q', { path: 'C:\\dir', say: 'he said "hi"\nbye' }, Infinity],
      ['vfio_n', {}, NaN],
      ['vfio_lag_mean_seconds', {}, NaN],
      ['vfio_m', { a: '1' }, -Infinity],
      ['vfio_e_bucket', { le: '0.1' }, 2],
    ],
  );
});

test('metricValue sums every label set, or the series that have the labels asked for; 0 when absent', () => {
  assert.equal(metricValue(PAGE, 'vfio_x_total'), 7.5);
  assert.equal(metricValue(PAGE, 'vfio_x_total', { kind: 'a' }), 3);
  assert.equal(metricValue(PAGE, 'vfio_x_total', { zone: 'z1' }), 4.5);
  assert.equal(metricValue(PAGE, 'vfio_x_total', { kind: 'c' }), 0);
  assert.equal(metricValue(PAGE, 'vfio_absent_total'), 0);
  assert.equal(metricValue(PAGE, 'vfio_absent_total', {}, NaN), NaN);
  assert.equal(metricValue(PAGE, 'vfio_x_total', { kind: 'a' }, NaN), 3);
  // A name is matched whole: vfio_x_total is not a prefix match of vfio_x_total_created.
  assert.equal(metricSamples(PAGE, 'vfio_x').length, 0);
});

test('metricsBySeries keys series by name and labels sorted by name', () => {
  const bySeries = metricsBySeries(PAGE);
  assert.equal(bySeries.get(seriesKey('vfio_x_total', { zone: 'z1', kind: 'b' })), 4.5);
  assert.equal(bySeries.get('vfio_y{}'), 7);
});

test('a line that is not a sample throws instead of reading as 0', () => {
  for (const line of [
    'vfio_x_total',
    'vfio_x_total{kind="a} 1',
    'vfio_x{kind=a} 1',
    'vfio_x one',
    '{a="1"} 2',
    'vfio_x 1 2 3',
  ])
    assert.throws(() => parseMetricsText(line), /metrics/, line);
});

test("prom-client's own page reads back: counters with labels, histogram buckets, sum and count", async () => {
  const registry = new Registry();
  const counter = new Counter({
    name: 'vfio_test_total',
    help: 'A test counter.',
    labelNames: ['reason'],
    registers: [registry],
  });
  const histogram = new Histogram({
    name: 'vfio_test_seconds',
    help: 'A test histogram.',
    buckets: [0.1, 1],
    registers: [registry],
  });
  counter.inc({ reason: 'with "quotes"\nand \\ backslash' }, 2);
  counter.inc({ reason: 'plain' });
  histogram.observe(0.5);
  histogram.observe(5);
  const text = await registry.metrics();
  assert.equal(metricValue(text, 'vfio_test_total'), 3);
  assert.equal(
    metricValue(text, 'vfio_test_total', { reason: 'with "quotes"\nand \\ backslash' }),
    2,
  );
  assert.equal(metricValue(text, 'vfio_test_seconds_bucket', { le: '0.1' }), 0);
  assert.equal(metricValue(text, 'vfio_test_seconds_bucket', { le: '1' }), 1);
  assert.equal(metricValue(text, 'vfio_test_seconds_bucket', { le: '+Inf' }), 2);
  assert.equal(metricValue(text, 'vfio_test_seconds_sum'), 5.5);
  assert.equal(metricValue(text, 'vfio_test_seconds_count'), 2);
});
