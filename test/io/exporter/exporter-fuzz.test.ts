/**
 * Hostile input at every boundary of the exporter (issue 9, item 5), fuzzed with fast-check on a
 * fixed seed (FUZZ_SEED and FUZZ_RUNS override it for a longer run, e.g.
 * `FUZZ_RUNS=20000 node --import tsx --test test/io/exporter/exporter-fuzz.test.ts`):
 *
 * - message values on the transitions topic: arbitrary bytes, valid frames with flipped,
 *   truncated or appended bytes, and schema-valid records with hostile field values. The sink
 *   never throws and counts every one: read, then either observed or invalid by reason;
 * - HTTP: arbitrary methods, paths and headers (Accept included) on every endpoint, and raw
 *   garbage on the socket. Never a 5xx, and the server keeps answering;
 * - a flood of distinct hosts, VMs and devices: label values, series, the live page's table and
 *   the heap stay bounded.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { test, type TestContext } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { parseExporterConfig } from '../../../services/exporter/config.ts';
import type { LiveSummary } from '../../../services/exporter/core/live-summary.ts';
import type { TransitionSink } from '../../../services/exporter/io/transition-sink.ts';
import { startExporter, type RunningExporter } from '../../../services/exporter/main.ts';
import type {
  PrepareRecord,
  TransitionRecord,
} from '../../../services/shared/core/transition-record.ts';
import { createTransitionCodec } from '../../../services/shared/io/avro-codec.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';

const SEED = Number(process.env['FUZZ_SEED'] ?? 9_005);
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 300);
const T0 = 1_733_150_000_000_000;
const codec = createTransitionCodec();

async function startFuzzExporter(
  t: TestContext,
  flags: Record<string, string> = {},
): Promise<{ exporter: RunningExporter; sink: TransitionSink }> {
  let sink: TransitionSink | undefined;
  const config = parseExporterConfig({
    env: { KAFKA_BROKERS: 'unused:9092' },
    flags: { 'http-port': '0', ...flags },
  });
  const exporter = await startExporter(config, createLogger({ write: () => undefined }), {
    startConsumer: (s) => {
      sink = s;
      return Promise.resolve({
        readiness: () => ({ ready: true, reasons: ['kafka: fake'] }),
        stop: () => Promise.resolve(),
      });
    },
  });
  t.after(() => exporter.stop());
  assert.ok(sink !== undefined);
  return { exporter, sink };
}

/** Sums of the counters that account for every record read. */
async function accounting(exporter: RunningExporter) {
  let consumed = 0;
  let invalid = 0;
  let prepares = 0;
  let dwells = 0;
  for (const m of await exporter.registry.getMetricsAsJSON()) {
    const values = m.values as { value: number; metricName?: string }[];
    const sum = (f: (v: { metricName?: string }) => boolean = () => true) =>
      values.filter(f).reduce((n, v) => n + v.value, 0);
    if (m.name === 'vfio_exporter_records_consumed_total') consumed = sum();
    if (m.name === 'vfio_exporter_records_invalid_total') invalid = sum();
    if (m.name === 'vfio_prepare_outcomes_total') prepares = sum();
    if (m.name === 'vfio_state_dwell_seconds') {
      dwells = sum((v) => v.metricName === 'vfio_state_dwell_seconds_count');
    }
  }
  return { consumed, invalid, prepares, dwells };
}

const text = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.constantFrom('', 'other', 'completed', 'pre-copy-p2p', '\n"\\{}#', 'x'.repeat(5000)),
);
const micros = fc.oneof(
  fc.integer({ min: -1e15, max: 1e15 }),
  // avsc's long stops short of 2^53 − 1.
  fc.constantFrom(0, -1, 2 ** 52, -(2 ** 52), T0),
);
const seconds = fc.oneof(
  fc.double(),
  fc.constantFrom(Number.NaN, Infinity, -Infinity, -0, 1e308, 0.05),
);
/** Records the schema accepts, with values no sane processor would write. */
const hostileRecord = fc.record({
  type: fc.oneof(fc.constantFrom('prepare', 'dwell'), text),
  host: text,
  vm: text,
  qomPath: text,
  deviceId: text,
  target: fc.option(text),
  prepareState: fc.option(text),
  outcome: fc.option(fc.oneof(fc.constantFrom('completed', 'failed', 'timed_out'), text)),
  state: fc.option(text),
  next: fc.option(text),
  seconds: fc.option(seconds),
  startMicros: micros,
  endMicros: fc.option(micros),
  sessionId: fc.option(text),
});

const validFrame = hostileRecord.map((r) => codec.encode(r as unknown as TransitionRecord));
const corruptedFrame = fc
  .tuple(
    validFrame,
    fc.nat(),
    fc.integer({ min: 1, max: 255 }),
    fc.constantFrom('flip', 'cut', 'add'),
  )
  .map(([frame, at, byte, how]) => {
    const b = Buffer.from(frame);
    const i = at % b.length;
    if (how === 'flip') b[i] = (b[i] as number) ^ byte;
    if (how === 'cut') return b.subarray(0, i);
    if (how === 'add') return Buffer.concat([b, Buffer.alloc(byte, byte)]);
    return b;
  });
const anyValue = fc.oneof(
  fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
  fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.concat([Buffer.from([0xc3, 0x01]), a])),
  fc.constant(null),
  validFrame,
  corruptedFrame,
);

test('transition values: arbitrary bytes, corrupted frames and hostile records never throw; every one is counted', async (t) => {
  const { exporter, sink } = await startFuzzExporter(t);
  let offset = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(anyValue, { maxLength: 30 }), async (values) => {
      const before = await accounting(exporter);
      for (const value of values) {
        sink.observe(value, T0, { partition: 0, offset: String(offset++) });
      }
      const after = await accounting(exporter);
      assert.equal(after.consumed - before.consumed, values.length);
      // Read = invalid + observed: each valid prepare counts one outcome, each dwell one count.
      assert.equal(
        after.invalid -
          before.invalid +
          (after.prepares - before.prepares) +
          (after.dwells - before.dwells),
        values.length,
      );
    }),
    { seed: SEED, numRuns: RUNS },
  );
  // What was observed still serves, in both formats, and the exemplars kept the 128 limit.
  const om = await fetch(`${exporter.http.url}/metrics`, {
    headers: { accept: 'application/openmetrics-text' },
  });
  assert.equal(om.status, 200);
  const body = await om.text();
  assert.ok(body.endsWith('# EOF\n'));
  assert.ok(body.includes(' # {'), 'some exemplars');
  assert.equal((await fetch(`${exporter.http.url}/metrics`)).status, 200);
  const summary = (await (await fetch(`${exporter.http.url}/api/summary`)).json()) as LiveSummary;
  assert.ok(summary.recordsInvalid > 0 && summary.recordsConsumed > summary.recordsInvalid);
});

const token = fc.stringMatching(/^[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,15}$/);
const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,200}$/);
const pathSegment = fc.oneof(
  fc.constantFrom('', 'metrics', 'healthz', 'readyz', 'api', 'summary', 'live.js', 'live.css'),
  fc.constantFrom('constructor', '__proto__', 'toString', '..', '%00', '%ZZ', '?a=1', '#x', '//'),
  fc.stringMatching(/^[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,20}$/),
);
const httpRequest = fc.record({
  method: fc.oneof(
    fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'),
    token,
  ),
  path: fc.array(pathSegment, { minLength: 1, maxLength: 4 }).map((s) => `/${s.join('/')}`),
  accept: fc.option(
    fc.oneof(
      headerValue,
      fc.constantFrom(
        'application/openmetrics-text; version=1.0.0',
        'application/openmetrics-text;q=abc,text/plain;q=1e9',
        ';;;,,,q=',
        '*/*;q=0',
      ),
    ),
  ),
  headers: fc.dictionary(token, headerValue, { maxKeys: 4 }),
});

function send(
  url: string,
  r: { method: string; path: string; accept: string | null; headers: Record<string, string> },
): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...r.headers };
    delete headers['content-length'];
    delete headers['transfer-encoding'];
    if (r.accept !== null) headers['accept'] = r.accept;
    const req = request(`${url}${r.path}`, { method: r.method, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

test('HTTP: arbitrary methods, paths and headers never get a 5xx, and garbage on the socket is survived', async (t) => {
  const { exporter, sink } = await startFuzzExporter(t);
  sink.observe(codec.encode(prepare('h', 'vm', 'dev', 0.07)), T0, { partition: 0, offset: '0' });
  const url = exporter.http.url;
  const statuses = new Set<number>();
  await fc.assert(
    fc.asyncProperty(httpRequest, async (r) => {
      const status = await send(url, r);
      statuses.add(status);
      assert.ok([200, 400, 404, 405].includes(status), `${r.method} ${r.path}: ${status}`);
    }),
    { seed: SEED, numRuns: RUNS },
  );
  assert.ok(statuses.has(200) && statuses.has(404) && statuses.has(405), [...statuses].join());

  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 2000 }), async (bytes) => {
      await new Promise<void>((resolve) => {
        const socket = connect(Number(new URL(url).port), '127.0.0.1', () => {
          socket.end(Buffer.from(bytes));
        });
        socket.on('data', () => undefined);
        socket.on('error', () => resolve());
        socket.on('close', () => resolve());
        socket.setTimeout(2000, () => socket.destroy());
      });
    }),
    { seed: SEED, numRuns: Math.min(RUNS, 100) },
  );
  assert.equal((await fetch(`${url}/healthz`)).status, 200);
  assert.equal((await fetch(`${url}/metrics`)).status, 200);
});

function prepare(host: string, vm: string, deviceId: string, s: number): PrepareRecord {
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
    seconds: s,
    startMicros: T0,
    endMicros: T0 + Math.round(s * 1e6),
  };
}

function heapAfterGc(): number {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

test('a flood of distinct hosts, VMs and devices keeps labels, series and memory bounded', async (t) => {
  const MAX_HOSTS = 8;
  const PER_ROUND = 60_000;
  const { exporter, sink } = await startFuzzExporter(t, {
    'max-hosts': String(MAX_HOSTS),
    'max-label-values': '4',
  });
  let n = 0;
  const flood = () => {
    const now = Date.now() * 1000;
    for (let i = 0; i < PER_ROUND; i++, n++) {
      const id = `${n}-${'x'.repeat(24)}`;
      const record: TransitionRecord =
        n % 4 === 3
          ? {
              type: 'dwell',
              host: `host-${id}`,
              vm: `vm-${id}`,
              qomPath: `/q/${id}`,
              deviceId: `dev-${id}`,
              state: `state-${n}`,
              next: `state-${n + 1}`,
              seconds: 1,
              startMicros: T0,
              endMicros: T0 + 1_000_000,
            }
          : {
              ...prepare(`host-${id}`, `vm-${id}`, `dev-${id}`, (n % 1000) / 1000),
              target: `t-${n}`,
            };
      sink.observe(codec.encode(record), now, { partition: 0, offset: String(n) });
    }
  };
  const seriesCount = async () =>
    (await exporter.registry.getMetricsAsJSON())
      .filter((m) => m.name.startsWith('vfio_') && !m.name.startsWith('vfio_exporter_'))
      .reduce((sum, m) => sum + m.values.length, 0);

  flood();
  const series1 = await seriesCount();
  const heap1 = heapAfterGc();
  flood();
  flood();
  const series2 = await seriesCount();
  const heap2 = heapAfterGc();

  assert.equal(series2, series1, 'no new series after the label budgets are spent');
  const classic = await (await fetch(`${exporter.http.url}/metrics`)).text();
  const hosts = new Set(
    [...classic.matchAll(/^vfio_prepare_outcomes_total\{[^}]*host="([^"]*)"/gm)].map((m) => m[1]),
  );
  assert.equal(hosts.size, MAX_HOSTS + 1, [...hosts].join());
  assert.ok(hosts.has('other'));
  const folded = /^vfio_exporter_label_values_folded_total\{label="host"\} (\d+)$/m.exec(classic);
  const prepares = (3 * PER_ROUND * 3) / 4;
  assert.equal(Number(folded?.[1]), prepares - MAX_HOSTS, 'every folded host is counted');
  const summary = await exporter.summary();
  assert.ok(summary.slowest.length <= 50, String(summary.slowest.length));
  assert.equal(summary.hosts.length, MAX_HOSTS + 1);
  // 120,000 more records with never-seen hosts, VMs, devices, targets and states: a leak of even
  // 40 bytes a record would be 4.6 MiB.
  const grown = heap2 - heap1;
  assert.ok(grown < 4 * 2 ** 20, `heap grew ${(grown / 2 ** 20).toFixed(1)} MiB`);
});
