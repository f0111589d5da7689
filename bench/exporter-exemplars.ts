/**
 * Exporter: what exemplars cost (issue 11). Side by side, on one core:
 *
 * - `observe`: prom-client's histogram `observe` as the exporter made it before exemplars (classic
 *   registry), and as it makes it now (OpenMetrics registry, `enableExemplars`, the exemplar
 *   labels built by `exemplarLabelsOf` for every observation);
 * - `/metrics` at 10,000 devices: an exporter fed the transitions of 10,000 devices on 250 hosts,
 *   scraped over HTTP in the classic format and in OpenMetrics (with exemplars): median time and
 *   body size.
 */
import { Histogram, Registry, type OpenMetricsContentType } from 'prom-client';
import { parseExporterConfig } from '../services/exporter/config.ts';
import { exemplarLabelsOf } from '../services/exporter/core/exemplar-labels.ts';
import type { TransitionSink } from '../services/exporter/io/transition-sink.ts';
import { startExporter } from '../services/exporter/main.ts';
import { DURATION_BUCKETS_SECONDS } from '../services/shared/core/bucket-policy.ts';
import type { TransitionRecord } from '../services/shared/core/transition-record.ts';
import { createTransitionCodec } from '../services/shared/io/avro-codec.ts';
import { createLogger } from '../services/shared/io/logger.ts';
import { measure, median, type BenchSection, type RunResult } from './harness.ts';

const OBSERVATIONS = 200_000;
const DEVICES = 10_000;
const HOSTS = 250;
const TARGETS = ['pre-copy-p2p', 'stop-copy-p2p', 'pre-copy', 'stop-copy'];
const SCRAPES = 15;
const OPENMETRICS_ACCEPT =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

/** The same observations for both histograms: 64 hosts × 4 targets, latencies 1 ms – 2 s. */
function workload(): {
  labels: Record<string, string>;
  value: number;
  /** As the Avro decoder hands them over, for both variants. */
  vm: string;
  qomPath: string;
  closingMicros: number;
}[] {
  return Array.from({ length: OBSERVATIONS }, (_, i) => {
    const u = ((i * 7919) % 10_007) / 10_007;
    const device = i % DEVICES;
    return {
      labels: { target: TARGETS[i % 4] as string, outcome: 'completed', host: `hv-${i % 64}` },
      value: 0.001 * Math.exp(7.6 * u * u),
      vm: `tenant-${device % 977}-vm-${device}`,
      qomPath: `/machine/peripheral-anon/device[${device % 8}]`,
      closingMicros: 1_733_150_000_000_000 + i * 1000,
    };
  });
}

function observeCost(): { plain: RunResult; exemplars: RunResult } {
  const work = workload();
  const plainHistogram = new Histogram({
    name: 'bench_plain_seconds',
    help: 'bench',
    labelNames: ['target', 'outcome', 'host'],
    buckets: [...DURATION_BUCKETS_SECONDS],
    registers: [new Registry()],
  });
  const om = new Registry<OpenMetricsContentType>();
  om.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
  const exemplarHistogram = new Histogram<string>({
    name: 'bench_exemplar_seconds',
    help: 'bench',
    labelNames: ['target', 'outcome', 'host'],
    buckets: [...DURATION_BUCKETS_SECONDS],
    enableExemplars: true,
    registers: [om],
  });
  const plain = measure('plain', OBSERVATIONS, () => {
    for (const o of work) plainHistogram.observe(o.labels, o.value);
  });
  const exemplars = measure('exemplars', OBSERVATIONS, () => {
    for (const o of work) {
      const exemplarLabels = exemplarLabelsOf({
        host: o.labels['host'] as string,
        vm: o.vm,
        deviceId: '',
        qomPath: o.qomPath,
        closingMicros: o.closingMicros,
      }) as Record<string, string>;
      exemplarHistogram.observe({ labels: o.labels, value: o.value, exemplarLabels });
    }
  });
  return { plain, exemplars };
}

/** Every device: 3 prepares (one failed in ten) and 2 dwells, closed a second apart. */
export function fleetRecords(): TransitionRecord[] {
  const records: TransitionRecord[] = [];
  const t0 = 1_733_150_000_000_000;
  for (let d = 0; d < DEVICES; d++) {
    const host = `hv-${String(d % HOSTS).padStart(3, '0')}.rack${d % 17}.example.net`;
    const vm = `tenant-${d % 977}-vm-${Math.floor(d / 4)}`;
    const base = {
      host,
      vm,
      qomPath: `/machine/peripheral/hostdev${d % 4}`,
      deviceId: `hostdev${d % 4}`,
    };
    for (let k = 0; k < 3; k++) {
      const u = (((d * 3 + k) * 7919) % 10_007) / 10_007;
      const seconds = 0.002 * Math.exp(6 * u * u);
      const target = TARGETS[(d + k) % 4] as string;
      const end = t0 + d * 1000 + k * 1_000_000;
      records.push({
        ...base,
        type: 'prepare',
        target,
        prepareState: `${target}-prepare`,
        outcome: (d + k) % 10 === 0 ? 'failed' : 'completed',
        next: target,
        seconds,
        startMicros: end - Math.round(seconds * 1e6),
        endMicros: end,
      });
    }
    for (const [state, next] of [
      ['running', 'pre-copy-p2p-prepare'],
      ['pre-copy-p2p', 'stop-copy-p2p-prepare'],
    ] as const) {
      const end = t0 + d * 1000 + 5_000_000;
      records.push({
        ...base,
        type: 'dwell',
        state,
        next,
        seconds: 4.5,
        startMicros: end - 4_500_000,
        endMicros: end,
      });
    }
  }
  return records;
}

interface Scrape {
  ms: number;
  bytes: number;
  exemplars: number;
}

async function scrapeCost(): Promise<{ classic: Scrape; openMetrics: Scrape; series: number }> {
  let sink: TransitionSink | undefined;
  const config = parseExporterConfig({
    env: { KAFKA_BROKERS: 'unused:9092' },
    flags: { 'http-port': '0' },
  });
  const exporter = await startExporter(config, createLogger({ level: 'error' }), {
    startConsumer: (s) => {
      sink = s;
      return Promise.resolve({
        readiness: () => ({ ready: true, reasons: [] }),
        stop: () => Promise.resolve(),
      });
    },
  });
  try {
    const codec = createTransitionCodec();
    const now = Date.now() * 1000;
    fleetRecords().forEach((r, i) =>
      sink?.observe(codec.encode(r), now, { partition: 0, offset: String(i) }),
    );
    const url = `${exporter.http.url}/metrics`;
    // Alternating, so both formats see the same machine load and JIT state.
    const times: Record<'classic' | 'openMetrics', number[]> = { classic: [], openMetrics: [] };
    const bodies = { classic: '', openMetrics: '' };
    for (let i = 0; i < SCRAPES + 2; i++) {
      for (const format of ['classic', 'openMetrics'] as const) {
        const init = format === 'classic' ? {} : { headers: { accept: OPENMETRICS_ACCEPT } };
        const start = process.hrtime.bigint();
        bodies[format] = await (await fetch(url, init)).text();
        if (i >= 2) times[format].push(Number(process.hrtime.bigint() - start) / 1e6);
      }
    }
    const result = (format: 'classic' | 'openMetrics'): Scrape => ({
      ms: median(times[format]),
      bytes: Buffer.byteLength(bodies[format]),
      exemplars: bodies[format].split('\n').filter((l) => l.includes(' # {')).length,
    });
    const classic = result('classic');
    const openMetrics = result('openMetrics');
    const series = (await exporter.registry.getMetricsAsJSON())
      .filter((m) => m.name.startsWith('vfio_') && !m.name.startsWith('vfio_exporter_'))
      .reduce((n, m) => n + m.values.length, 0);
    return { classic, openMetrics, series };
  } finally {
    await exporter.stop();
  }
}

export async function runExporterExemplars(): Promise<BenchSection> {
  const { plain, exemplars } = observeCost();
  const { classic, openMetrics, series } = await scrapeCost();
  const ns = (r: RunResult): string => `${(1e9 / r.perSecond).toFixed(0)} ns`;
  const kib = (b: number): string => `${(b / 1024).toFixed(0)} KiB`;
  return {
    title: 'Exporter: exemplars (one core)',
    columns: ['measure', 'without exemplars', 'with exemplars', 'with / without'],
    rows: [
      [
        'histogram `observe` (median per observation)',
        ns(plain),
        ns(exemplars),
        `${(plain.perSecond / exemplars.perSecond).toFixed(2)}x`,
      ],
      [
        `\`/metrics\` scrape at ${DEVICES.toLocaleString('en')} devices (median time)`,
        `${classic.ms.toFixed(1)} ms (classic text)`,
        `${openMetrics.ms.toFixed(1)} ms (OpenMetrics)`,
        `${(openMetrics.ms / classic.ms).toFixed(2)}x`,
      ],
      [
        `\`/metrics\` body at ${DEVICES.toLocaleString('en')} devices`,
        kib(classic.bytes),
        `${kib(openMetrics.bytes)}, ${openMetrics.exemplars.toLocaleString('en')} exemplars`,
        `${(openMetrics.bytes / classic.bytes).toFixed(2)}x`,
      ],
    ],
    notes: [
      `observe: ${OBSERVATIONS.toLocaleString('en')} observations per run over 64 hosts × 4 targets (1 ms – 2 s); with exemplars includes building the labels (\`exemplarLabelsOf\`, qom-path fallback) for each; median of 7 timed runs after 2 warm-ups.`,
      `scrape: ${DEVICES.toLocaleString('en')} devices on ${HOSTS} hosts (the host label keeps 64, the rest fold into \`other\`), 3 prepares and 2 dwells each, fed through the exporter's Avro sink; ${series.toLocaleString('en')} \`vfio_*\` sample lines; median of ${SCRAPES} HTTP scrapes after 2 warm-ups.`,
      'Exemplars are per bucket of each series, not per device: the exemplar count is bounded by the sample lines, whatever the number of devices.',
    ],
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(JSON.stringify(await runExporterExemplars()) + '\n');
}
