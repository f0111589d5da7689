/**
 * Exporter: what the OTLP output costs (issue 20). On one core, the exporter's sink (Avro decode,
 * mapping, prom-client, the live page's table) fed the same fleet's transition records without
 * and with the OTLP output (the SDK's exponential histograms recording the latencies), and one
 * OTLP export of that fleet to a loopback receiver: time and protobuf size.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { createSlowestPrepares } from '../services/exporter/core/slowest-prepares.ts';
import {
  createLabelGuards,
  observationsOf,
  type Observation,
} from '../services/exporter/core/transition-observations.ts';
import {
  createExporterTelemetry,
  createOpenMetricsRegistry,
} from '../services/exporter/io/exporter-telemetry.ts';
import { startOtlpOutput, type OtlpOutput } from '../services/exporter/io/otlp-output.ts';
import { createTransitionSink } from '../services/exporter/io/transition-sink.ts';
import { createTransitionCodec } from '../services/shared/io/avro-codec.ts';
import { createLogger } from '../services/shared/io/logger.ts';
import { fleetRecords } from './exporter-exemplars.ts';
import { measure, type BenchSection, type RunResult } from './harness.ts';

const logger = createLogger({ level: 'error' });

async function startReceiver(): Promise<{ url: string; bytes: () => number; close(): void }> {
  let bytes = 0;
  const server = createServer((req, res) => {
    let size = 0;
    req.on('data', (chunk: Buffer) => (size += chunk.length));
    req.on('end', () => {
      bytes = size;
      res.writeHead(200).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/api/v1/otlp/v1/metrics`,
    bytes: () => bytes,
    close: () => server.close(),
  };
}

function sinkFor(otlp: OtlpOutput | undefined) {
  return createTransitionSink(
    createTransitionCodec(),
    createLabelGuards({ maxLabelValues: 16, maxHosts: 64 }),
    createExporterTelemetry({ registry: createOpenMetricsRegistry(), logger, hostLabel: true }),
    createSlowestPrepares({ windowMs: 600_000, slots: 10, keep: 50 }),
    otlp,
  );
}

export async function runExporterOtlp(): Promise<BenchSection> {
  const codec = createTransitionCodec();
  const records = fleetRecords();
  const encoded = records.map((r) => codec.encode(r));
  const now = Date.now() * 1000;
  const feed = (sink: ReturnType<typeof sinkFor>) => () => {
    encoded.forEach((value, i) => sink.observe(value, now, { partition: 0, offset: String(i) }));
  };

  const receiver = await startReceiver();
  const otlp = startOtlpOutput({
    endpoint: receiver.url,
    intervalMs: 600_000,
    timeoutMs: 30_000,
    serviceName: 'vfio-exporter',
    instanceId: 'bench',
    registry: new Registry(),
    logger,
  });
  const withoutSink = sinkFor(undefined);
  const withSink = sinkFor(otlp);
  // Alternating, so both see the same machine load and JIT state.
  const without: RunResult[] = [];
  const withOtlp: RunResult[] = [];
  for (let round = 0; round < 3; round++) {
    without.push(measure('without', encoded.length, feed(withoutSink), { runs: 3 }));
    withOtlp.push(measure('with', encoded.length, feed(withSink), { runs: 3 }));
  }
  // The recording alone: the same observations into prom-client and into the SDK.
  const guards = createLabelGuards({ maxLabelValues: 16, maxHosts: 64 });
  const observations: Observation[][] = records.flatMap((r) => {
    const mapped = observationsOf(r, now, guards);
    return mapped.kind === 'observations' ? [mapped.observations] : [];
  });
  const telemetry = createExporterTelemetry({
    registry: createOpenMetricsRegistry(),
    logger,
    hostLabel: true,
  });
  const promClient: RunResult[] = [];
  const sdk: RunResult[] = [];
  for (let round = 0; round < 3; round++) {
    promClient.push(
      measure('prom-client', observations.length, () => {
        for (const o of observations) telemetry.observed(o);
      }),
    );
    sdk.push(
      measure('sdk', observations.length, () => {
        for (const o of observations) otlp.record(o);
      }),
    );
  }
  const best = (runs: RunResult[]): number => Math.max(...runs.map((r) => r.perSecond));
  const start = process.hrtime.bigint();
  await otlp.close();
  const exportMs = Number(process.hrtime.bigint() - start) / 1e6;
  receiver.close();

  const ns = (perSecond: number): string => `${(1e9 / perSecond).toFixed(0)} ns`;
  const perSecond = (p: number): string => `${Math.round(p).toLocaleString('en')}/s`;
  const a = best(without);
  const b = best(withOtlp);
  return {
    title: 'Exporter: OTLP output (one core)',
    columns: ['measure', 'without OTLP', 'with OTLP', 'with / without'],
    rows: [
      [
        'transition records through the sink (best of 3 rounds of medians)',
        `${perSecond(a)} (${ns(a)} each)`,
        `${perSecond(b)} (${ns(b)} each)`,
        `${(a / b).toFixed(2)}x the time`,
      ],
      [
        "recording one record's observations alone (prom-client with exemplars; the SDK)",
        ns(best(promClient)),
        `${ns(best(sdk))} added`,
        `+${((best(promClient) / best(sdk)) * 100).toFixed(0)} % of prom-client's`,
      ],
      [
        'one OTLP export of the fleet (collect, protobuf, HTTP to loopback)',
        '—',
        `${exportMs.toFixed(0)} ms, ${(receiver.bytes() / 1024).toFixed(0)} KiB`,
        '',
      ],
    ],
    notes: [
      `${records.length.toLocaleString('en')} transition records of 10,000 devices on 250 hosts (3 prepares and 2 dwells each; the host label keeps 64), Avro-encoded once and fed through \`createTransitionSink\` as the exporter builds it (decode, mapping, prom-client with exemplars, slowest-prepares table); with OTLP the sink also records the prepare and dwell latencies into the SDK's exponential histograms (512 buckets).`,
      'The export is the shutdown export (`close`): the SDK collects every series, encodes OTLP protobuf and posts it; it runs once per `--otlp-interval-ms` (default 15 s), off the record path.',
    ],
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(JSON.stringify(await runExporterOtlp()) + '\n');
}
