import assert from 'node:assert/strict';
import { test } from 'node:test';
import { metricNamesIn } from '../../helpers/metrics-doc.ts';

const DOC = `# Metrics

## Exporter (\`vfio_\`)

| name | type |
| ---- | ---- |
| \`vfio_prepare_duration_seconds\` | histogram |
| \`vfio:recorded\` | rule |

### OTLP output (exporter, optional)

| \`vfio_prepare_duration_exponential_seconds\` | native histogram |
| \`vfio_exporter_otlp_exports_total\` (scraped) | counter |

## Every stage's HTTP server

| \`vfio_collector_http_requests_total\` | counter |
`;

test('metricNamesIn reads the table rows, and leaves the pushed OTLP series out when asked', () => {
  assert.deepEqual(
    [...metricNamesIn(DOC, { scrapedOnly: false })],
    [
      'vfio_prepare_duration_seconds',
      'vfio:recorded',
      'vfio_prepare_duration_exponential_seconds',
      'vfio_collector_http_requests_total',
    ],
  );
  assert.deepEqual(
    [...metricNamesIn(DOC, { scrapedOnly: true })],
    ['vfio_prepare_duration_seconds', 'vfio:recorded', 'vfio_collector_http_requests_total'],
  );
});
