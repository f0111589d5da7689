import assert from 'node:assert/strict';
import { test } from 'node:test';
import { negotiateMetricsFormat } from '../../../services/exporter/core/metrics-format.ts';

const PROMETHEUS_2_42 =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

test('negotiateMetricsFormat: OpenMetrics only for a client that prefers it', () => {
  const cases: [string | undefined, string][] = [
    [PROMETHEUS_2_42, 'openmetrics'],
    ['application/openmetrics-text', 'openmetrics'],
    ['Application/OpenMetrics-Text; version=1.0.0', 'openmetrics'],
    [undefined, 'classic'],
    ['', 'classic'],
    ['*/*', 'classic'],
    ['text/plain;version=0.0.4', 'classic'],
    ['text/html,application/xhtml+xml,*/*;q=0.8', 'classic'],
    ['text/plain,application/openmetrics-text;q=0.5', 'classic'],
    ['application/openmetrics-text;q=0', 'classic'],
    ['application/openmetrics-text;q=0.9,text/plain;q=0.9', 'openmetrics'],
    ['application/openmetrics-text;q=banana', 'classic'],
    [',,;;q=,application/openmetrics-text;;', 'openmetrics'],
  ];
  for (const [accept, format] of cases) {
    assert.equal(negotiateMetricsFormat(accept), format, String(accept));
  }
});
