/**
 * Exemplars end to end: transition records on the real broker, the exporter running in-process,
 * a real Prometheus (`--enable-feature=exemplar-storage`) scraping it. Prometheus asks for
 * OpenMetrics, so `/api/v1/query_exemplars` must name the slowest devices; a second job scrapes
 * through a proxy that asks for the classic text format only, and must get the same series and no
 * exemplars.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import type { TransitionRecord } from '../../../services/shared/core/transition-record.ts';
import { createTransitionCodec } from '../../../services/shared/io/avro-codec.ts';
import { uniqueTopic } from '../../helpers/kafka.ts';
import { pollUntil, startPrometheus } from '../../helpers/prometheus.ts';
import { produce, startTestExporter } from './exporter-harness.ts';

const codec = createTransitionCodec();

function prepare(
  host: string,
  vm: string,
  deviceId: string,
  seconds: number,
  endMicros: number,
): TransitionRecord {
  return {
    type: 'prepare',
    host,
    vm,
    qomPath: `/machine/peripheral/${deviceId}`,
    deviceId,
    target: 'pre-copy-p2p',
    prepareState: 'pre-copy-p2p-prepare',
    outcome: 'completed',
    next: 'pre-copy-p2p',
    seconds,
    startMicros: endMicros - Math.round(seconds * 1e6),
    endMicros,
  };
}

/** Forwards GET /metrics to `target` asking for the classic text format only. */
async function classicProxy(target: string): Promise<Server> {
  const server = createServer((req, res) => {
    fetch(`${target}${req.url ?? '/metrics'}`, { headers: { accept: 'text/plain;version=0.0.4' } })
      .then(async (r) => {
        res
          .writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'text/plain' })
          .end(await r.text());
      })
      .catch(() => res.writeHead(502).end());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

interface ExemplarSeries {
  seriesLabels: Record<string, string>;
  exemplars: { labels: Record<string, string>; value: string; timestamp: number }[];
}

test('Prometheus stores exemplars naming the slowest devices; the classic format still parses', async (t) => {
  const topic = await uniqueTopic(t, 'exporter-exemplars');
  const exporter = await startTestExporter(t, topic);
  const base = Date.now() * 1000 - 60_000_000;
  const records: TransitionRecord[] = [];
  // 40 ordinary prepares of 5–20 ms on 20 devices of 10 VMs over 2 hosts …
  for (let i = 0; i < 40; i++) {
    const seconds = 0.005 + (i % 16) / 1000;
    records.push(prepare(`hv-${i % 2}`, `vm-${i % 10}`, `vf${i % 20}`, seconds, base + i * 1000));
  }
  // … and three slow ones, each alone in its bucket (le 1, 5 and 30).
  const slow = [
    prepare('hv-1', 'db-primary', 'gpu-3', 0.875, base + 50_000),
    prepare('hv-0', 'batch-07', 'nvme-1', 3.5, base + 51_000),
    prepare('hv-1', 'render-2', 'gpu-0', 17.25, base + 52_123),
  ];
  // A hostile one in a bucket of its own (le 0.35): quotes, a backslash, a newline and an emoji in
  // names far over the exemplar limit. Prometheus must still take the scrape.
  const hostileVm = `vm "quoted"\\back\nslash 😀${'v'.repeat(200)}`;
  const hostile = prepare(`hôte-${'h'.repeat(150)}`, hostileVm, '', 0.3, base + 53_000);
  hostile.qomPath = `/machine/peripheral-anon/${'q'.repeat(100)}/device[7]`;
  records.splice(10, 0, ...slow, hostile);
  await produce(
    t,
    topic,
    records.map((r) => codec.encode(r)),
  );

  const proxy = await classicProxy(exporter.http.url);
  t.after(() => new Promise<void>((resolve) => proxy.close(() => resolve())));
  const address = exporter.http.url.replace(/^http:\/\//, '');
  const prometheus = await startPrometheus({
    t,
    targets: {
      'vfio-exporter': [address],
      classic: [`127.0.0.1:${(proxy.address() as AddressInfo).port}`],
    },
    extraArgs: ['--enable-feature=exemplar-storage'],
  });

  const now = Date.now() / 1000;
  const exemplarsOf = async (selector: string): Promise<ExemplarSeries[]> => {
    const response = await prometheus.get(
      `/api/v1/query_exemplars?query=${encodeURIComponent(selector)}&start=${now - 3600}&end=${now + 3600}`,
    );
    assert.equal(response.status, 'success', response.error);
    return response.data as ExemplarSeries[];
  };

  const all = await pollUntil(
    'exemplars of the slow and the hostile prepares',
    async () => {
      const series = await exemplarsOf('vfio_prepare_duration_seconds_bucket{job="vfio-exporter"}');
      const exemplars = series.flatMap((s) => s.exemplars);
      return exemplars.some((e) => e.labels.vm === 'render-2') &&
        exemplars.some((e) => e.labels.vm?.startsWith(written('vm "quoted"')))
        ? exemplars
        : undefined;
    },
    60_000,
    500,
  );
  const slowest = [...all]
    .sort((a, b) => Number(b.value) - Number(a.value))
    .slice(0, 3)
    .map((e) => ({ value: Number(e.value), ...e.labels }));
  assert.deepEqual(slowest, [
    { value: 17.25, host: 'hv-1', vm: 'render-2', device: 'gpu-0', qemu_ts: qemuTs(base + 52_123) },
    { value: 3.5, host: 'hv-0', vm: 'batch-07', device: 'nvme-1', qemu_ts: qemuTs(base + 51_000) },
    {
      value: 0.875,
      host: 'hv-1',
      vm: 'db-primary',
      device: 'gpu-3',
      qemu_ts: qemuTs(base + 50_000),
    },
  ]);
  // Stored by Prometheus, shortened by the rule: 31 + 30 + 31 characters as written. Prometheus
  // 2.42 keeps exemplar label values as written in the exposition (escapes not undone) and
  // checks the 128 limit on that text, which is why the rule counts escapes twice.
  const shortened = all.find((e) => e.labels.vm?.startsWith(written('vm "quoted"')));
  assert.deepEqual(shortened?.labels, {
    host: `hôte-${'h'.repeat(25)}~`,
    vm: written('vm "quoted"\\back\nslash 😀~'),
    device: `~${'q'.repeat(20)}/device[7]`,
    qemu_ts: qemuTs(base + 53_000),
  });
  const up = await prometheus.query('up{job="vfio-exporter"}');
  assert.equal((up.data as { result: { value: [number, string] }[] }).result[0]?.value[1], '1');
  // One exemplar per bucket and series: never more than the buckets hold.
  for (const s of await exemplarsOf('vfio_prepare_duration_seconds_bucket{job="vfio-exporter"}')) {
    assert.ok(s.exemplars.length >= 1);
    assert.ok(s.seriesLabels.le !== undefined);
  }

  // The classic job parses the same series and gets no exemplars.
  const count = (job: string) =>
    pollUntil(
      `the ${job} job's prepare count`,
      async () => {
        const r = await prometheus.query(`sum(vfio_prepare_duration_seconds_count{job="${job}"})`);
        assert.equal(r.status, 'success', r.error);
        const [sample] = (r.data as { result: { value: [number, string] }[] }).result;
        return sample !== undefined && Number(sample.value[1]) === records.length
          ? Number(sample.value[1])
          : undefined;
      },
      60_000,
      500,
    );
  assert.equal(await count('classic'), 44);
  assert.equal(await count('vfio-exporter'), 44);
  const outcomes = await prometheus.query('sum(vfio_prepare_outcomes_total{job="classic"})');
  assert.equal(
    (outcomes.data as { result: { value: [number, string] }[] }).result[0]?.value[1],
    '44',
  );
  assert.deepEqual(await exemplarsOf('vfio_prepare_duration_seconds_bucket{job="classic"}'), []);
});

/** A label value as the exposition writes it. */
function written(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function qemuTs(micros: number): string {
  return `${Math.floor(micros / 1e6)}.${String(micros % 1e6).padStart(6, '0')}`;
}
