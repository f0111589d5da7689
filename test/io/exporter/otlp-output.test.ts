/**
 * The OTLP output against a real HTTP receiver on loopback: `close` sends the observations once
 * as OTLP/HTTP protobuf, and a receiver that refuses them is counted and logged, never thrown.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { Registry } from 'prom-client';
import type { Observation } from '../../../services/exporter/core/transition-observations.ts';
import { startOtlpOutput } from '../../../services/exporter/io/otlp-output.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { metricValue } from '../../helpers/metrics-text.ts';

interface Received {
  path: string;
  contentType: string | undefined;
  body: Buffer;
}

async function startReceiver(
  t: TestContext,
  status: number,
): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({
        path: req.url ?? '',
        contentType: req.headers['content-type'],
        body: Buffer.concat(chunks),
      });
      res.writeHead(status).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/api/v1/otlp/v1/metrics`, received };
}

const observations: Observation[] = [
  { metric: 'prepareOutcome', labels: { target: 'stop-copy', outcome: 'completed' } },
  {
    metric: 'prepareDuration',
    labels: { target: 'stop-copy', outcome: 'completed' },
    value: 0.0123,
  },
  { metric: 'stateDwell', labels: { state: 'running', next: 'stop-copy' }, value: 42 },
  { metric: 'deliveryLag', value: 0.5 },
];

function startOutput(endpoint: string, lines: string[]) {
  const registry = new Registry();
  const output = startOtlpOutput({
    endpoint,
    intervalMs: 600_000,
    timeoutMs: 5000,
    serviceName: 'vfio-exporter',
    instanceId: 'io-test',
    registry,
    logger: createLogger({ write: (line) => lines.push(line) }),
  });
  return { registry, output };
}

test('close exports the recorded latencies once, as OTLP protobuf with the instrument names', async (t) => {
  const receiver = await startReceiver(t, 200);
  const lines: string[] = [];
  const { registry, output } = startOutput(receiver.url, lines);
  output.record(observations);
  await Promise.all([output.close(), output.close()]);

  assert.equal(receiver.received.length, 1);
  const [request] = receiver.received;
  assert.ok(request !== undefined);
  assert.equal(request.path, '/api/v1/otlp/v1/metrics');
  assert.equal(request.contentType, 'application/x-protobuf');
  // Protobuf keeps strings as they are: the names, units and attribute values are in the body.
  const body = request.body.toString('latin1');
  for (const text of [
    'vfio_prepare_duration_exponential_seconds',
    'vfio_state_dwell_exponential_seconds',
    'stop-copy',
    'vfio-exporter',
    'io-test',
  ]) {
    assert.ok(body.includes(text), `${text} is not in the export`);
  }
  assert.ok(!body.includes('delivery'), 'the delivery lag stays prom-client only');
  const exports = await registry.metrics();
  assert.equal(metricValue(exports, 'vfio_exporter_otlp_exports_total', { result: 'success' }), 1);
  assert.equal(
    metricValue(exports, 'vfio_exporter_otlp_exports_total', { result: 'failure' }, NaN),
    0,
  );
  assert.deepEqual(lines, []);
});

test('a receiver that refuses the export is counted and logged, and close still resolves', async (t) => {
  const receiver = await startReceiver(t, 400);
  const lines: string[] = [];
  const { registry, output } = startOutput(receiver.url, lines);
  output.record(observations);
  await output.close();

  assert.equal(receiver.received.length, 1);
  assert.equal(
    metricValue(await registry.metrics(), 'vfio_exporter_otlp_exports_total', {
      result: 'failure',
    }),
    1,
  );
  const warning = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    warning.map((l) => [l['level'], l['msg'] ?? l['message'], l['endpoint']]),
    [['warn', 'An OTLP export failed; the next one retries.', receiver.url]],
  );
});
