/**
 * Hostile HTTP requests against the endpoints every stage serves (services/shared/io/
 * http-server.ts), here the collector's: raw bytes on a TCP connection — any method token, paths
 * with traversal, encodings, NUL, prototype names and 64 KB of length, headers that are invalid,
 * huge, duplicated or contradict each other (Content-Length vs Transfer-Encoding), bodies on GET,
 * truncated requests, pure garbage, and a flood of idle connections. The server answers or closes
 * each one; it never throws, never stops answering /healthz, and the process never dies.
 *
 * Fixed seed in CI; `FUZZ_RUNS=3000 FUZZ_SEED=$RANDOM node --import tsx --test
 * test/io/shared/fuzz-http-server.test.ts` for a longer hunt.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { parseCollectorConfig } from '../../../services/collector/config.ts';
import { startCollector, type RunningCollector } from '../../../services/collector/main.ts';
import { startHttpServer } from '../../../services/shared/io/http-server.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { ackAll, fakeKafka } from '../collector/fake-kafka-port.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const SEED = Number(process.env['FUZZ_SEED'] ?? 20261202);
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 300);

async function startCollectorHttp(
  t: TestContext,
  flags: Record<string, string> = {},
): Promise<RunningCollector> {
  const dir = mkdtempSync(join(tmpdir(), 'fuzz-http-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = parseCollectorConfig('test-host', {
    env: {},
    flags: {
      'socket-dir': dir,
      'spool-dir': join(dir, 'spool'),
      'http-host': '127.0.0.1',
      'http-port': '0',
      brokers: ['127.0.0.1:9'],
      ...flags,
    },
  });
  const collector = await startCollector(
    config,
    createLogger({ level: 'error', write: () => {} }),
    fakeKafka({ send: ackAll }, 1).port,
  );
  t.after(() => collector.stop());
  return collector;
}

/** Sends `bytes` on a fresh connection; resolves with what came back once it closes or idles. */
function exchange(port: number, bytes: Buffer, idleMs = 300): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    let timer = setTimeout(() => socket.destroy(), idleMs);
    socket.on('data', (chunk: Buffer) => {
      got += chunk.toString('latin1');
      clearTimeout(timer);
      timer = setTimeout(() => socket.destroy(), idleMs);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    socket.write(bytes, () => socket.end());
  });
}

const token = fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 12 });
const method = fc.oneof(
  fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT', 'PATCH'),
  fc.constantFrom('get', 'G ET', 'PRI', 'QUIT', ''),
  token,
);
const path = fc.oneof(
  fc.constantFrom(
    '/metrics',
    '/healthz',
    '/readyz',
    '/',
    '*',
    '/-/quit',
    '/metrics?x=1&x=2',
    '/metrics/../healthz',
    '/%2e%2e/%2e%2e/etc/passwd',
    '/%00',
    '/constructor',
    '/__proto__',
    '/hasOwnProperty',
    '//metrics',
    'http://evil/metrics',
    '/metrics#frag',
    '/%',
    '/\u00e9',
  ),
  fc.string({ unit: 'binary-ascii', maxLength: 60 }).map((s) => `/${s}`),
  fc.integer({ min: 1, max: 64 * 1024 }).map((n) => `/${'a'.repeat(n)}`),
);
const version = fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/9', 'http/1.1', '', 'X');
const header = fc.oneof(
  fc.tuple(token, fc.string({ unit: 'binary', maxLength: 40 })).map(([k, v]) => `${k}: ${v}`),
  fc.constantFrom(
    'Host: x',
    'Content-Length: 5',
    'Content-Length: -1',
    'Content-Length: 99999999999999999999',
    'Content-Length: 5\r\nContent-Length: 6',
    'Transfer-Encoding: chunked',
    'Transfer-Encoding: chunked\r\nContent-Length: 3',
    'Transfer-Encoding: gzip, chunked',
    'Expect: 100-continue',
    'Connection: upgrade\r\nUpgrade: websocket',
    'Accept: application/openmetrics-text; version=1.0.0',
    'Accept: */*;q=NaN',
    ' leading: space',
    'no-colon',
    'X: \u0000',
  ),
  fc.integer({ min: 1, max: 40_000 }).map((n) => `X-Big: ${'b'.repeat(n)}`),
);
const body = fc.oneof(
  fc.constant(''),
  fc.string({ unit: 'binary', maxLength: 100 }),
  fc.constantFrom('5\r\nhello\r\n0\r\n\r\n', 'zz\r\n', '0\r\n\r\n', 'ffffffffffffffff\r\n'),
  fc.integer({ min: 1, max: 200_000 }).map((n) => 'x'.repeat(n)),
);
const request = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .record({ method, path, version, headers: fc.array(header, { maxLength: 6 }), body })
      .map(({ method: m, path: p, version: v, headers, body: b }) =>
        Buffer.from(`${m} ${p} ${v}\r\n${headers.join('\r\n')}\r\n\r\n${b}`, 'latin1'),
      ),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.nat(60), fc.integer({ min: 1, max: 4000 }))
      .map(([cut, headers]) =>
        Buffer.from(
          `GET /metrics HTTP/1.1\r\n${Array.from({ length: headers }, (_, i) => `H${i}: v`).join('\r\n')}`.slice(
            0,
            cut === 0 ? undefined : cut,
          ),
        ),
      ),
  },
);

async function healthy(url: string): Promise<void> {
  const response = await fetch(`${url}/healthz`);
  assert.equal(response.status, 200);
  assert.equal(await response.text(), 'ok\n');
}

test('hostile HTTP requests: each answered or closed, /healthz keeps answering, nothing throws', async (t) => {
  const collector = await startCollectorHttp(t);
  const { port, url } = collector.http;
  let statuses = 0;
  await fc.assert(
    fc.asyncProperty(request, async (bytes) => {
      const reply = await exchange(port, bytes);
      if (reply !== '') {
        assert.match(reply, /^HTTP\/1\.[01] \d{3} /, 'an HTTP answer or nothing');
        statuses++;
      }
      await healthy(url);
    }),
    { seed: SEED, numRuns: RUNS },
  );
  assert.ok(statuses > RUNS / 2, `${statuses} answers`);
});

test('the fixed routes answer only GET and HEAD; /metrics and /readyz stay well-formed', async (t) => {
  const collector = await startCollectorHttp(t);
  const { url } = collector.http;
  for (const m of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
    const response = await fetch(`${url}/metrics`, { method: m });
    assert.equal(response.status, 405, m);
    assert.equal(response.headers.get('allow'), 'GET, HEAD');
  }
  const head = await fetch(`${url}/metrics`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), '');
  for (const p of ['/constructor', '/__proto__', '/toString', '/metrics/']) {
    assert.equal((await fetch(`${url}${p}`)).status, 404, p);
  }
  const metrics = await (await fetch(`${url}/metrics?x=${'y'.repeat(4000)}`)).text();
  assert.match(metrics, /^# HELP vfio_collector_/m);
});

test('a flood of 300 half-sent requests (slowloris): over the limit refused, the rest cut at the header timeout, /healthz answers again', async (t) => {
  const collector = await startCollectorHttp(t, {
    'http-max-connections': '100',
    'http-headers-timeout-ms': '1000',
  });
  const { port, url } = collector.http;
  let closed = 0;
  const sockets = Array.from({ length: 300 }, () => {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.on('data', () => {});
    socket.on('close', () => closed++);
    // Half a request line, then nothing (slowloris).
    socket.write('GET /metr');
    return socket;
  });
  t.after(() => sockets.forEach((s) => s.destroy()));
  await waitFor(() => closed === 300, { description: 'every flood socket closed by the server' });
  await healthy(url);
  const refused = await collector.registry.getSingleMetricAsString(
    'vfio_collector_http_connections_refused_total',
  );
  // 200 unless some of the first 100 were cut before the last of the 300 arrived.
  const count = Number(/^vfio_collector_http_connections_refused_total (\d+)$/m.exec(refused)?.[1]);
  assert.ok(count >= 100 && count <= 200, `${count} refused`);
});

test('a route that fails answers 500 every time, logged once per rate window with a bounded path', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const server = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    registry: new Registry(),
    readiness: () => {
      throw new Error('readiness broke');
    },
    logger: createLogger({
      level: 'info',
      write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>),
    }),
  });
  t.after(() => server.close());
  for (let i = 0; i < 30; i++) {
    const response = await fetch(`${server.url}/readyz?${'q'.repeat(10_000)}`);
    assert.equal(response.status, 500);
    await response.arrayBuffer();
  }
  await healthy(server.url);
  assert.equal(lines.length, 1, 'one line for 30 failures');
  assert.ok(String(lines[0]?.['path']).length <= 200);
});
