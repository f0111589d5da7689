/**
 * The collector's HTTP server under a connection flood while QMP events flow (issue 17): 5,000
 * connections that never send a byte and 200 slow-header clients (one byte every 500 ms), each
 * opened again 1 s after the server closes it, from a separate process. The limits
 * (--http-max-connections, header timeout) must keep the flood from costing the collector its
 * events or its memory: every event emitted during the flood reaches Kafka, RSS stays within a
 * bound, refused connections are counted, and /metrics answers again once the flood stops.
 *
 * File descriptors: the flood's sockets live in the child process, which Node starts with its
 * soft open-file limit raised to the hard one; if that hard limit is too small for 5,200 sockets
 * the flood is sized down to fit (and says so in the test's diagnostics) rather than failing on
 * EMFILE. The collector's side holds at most --http-max-connections sockets by design.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { test, type TestContext } from 'node:test';
import { parseCollectorConfig } from '../../../services/collector/config.ts';
import { startCollector } from '../../../services/collector/main.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { startFakeQmpServer } from '../../helpers/qmp-server.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { ackAll, fakeKafka } from './fake-kafka-port.ts';
import { metricValue } from '../../helpers/metrics-text.ts';

const FLOOD_HELPER = new URL('../../helpers/http-flood.ts', import.meta.url).pathname;
const IDLE = 5000;
const SLOW = 200;
const MiB = 1024 * 1024;

function tempDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The hard open-file limit, which Node raises its soft limit to at start. */
function hardOpenFileLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const hard = line?.split(/\s{2,}/)[2];
  return hard === undefined || hard === 'unlimited' ? Infinity : Number(hard);
}

async function metric(
  registry: { getSingleMetricAsString(name: string): Promise<string> },
  name: string,
): Promise<number> {
  return metricValue(await registry.getSingleMetricAsString(name), name, {}, NaN);
}

test('5,000 idle and 200 slow-header connections while QMP events flow: no event lost, RSS bounded, refused counted, /metrics back after', async (t) => {
  const dir = tempDir(t, 'http-flood-');
  const vms = ['vm-1', 'vm-2', 'vm-3', 'vm-4'];
  const servers = await Promise.all(vms.map((vm) => startFakeQmpServer(join(dir, `${vm}.qmp`))));
  t.after(() => Promise.all(servers.map((s) => s.close())));
  const kafka = fakeKafka({ send: ackAll }, 4);
  const config = parseCollectorConfig('test-host', {
    env: {},
    flags: {
      socket: servers.map((s, i) => `${vms[i]}=${s.path}`),
      'spool-dir': join(dir, 'spool'),
      'http-host': '127.0.0.1',
      'http-port': '0',
      brokers: ['127.0.0.1:9'],
      'http-headers-timeout-ms': '2000',
      'http-request-timeout-ms': '4000',
    },
  });
  assert.equal(config.httpMaxConnections, 256, 'the default limit is what is tested');
  const collector = await startCollector(
    config,
    createLogger({ level: 'error', write: () => {} }),
    kafka.port,
  );
  t.after(() => collector.stop());
  await waitFor(() => servers.every((s) => s.negotiated), { description: 'all VMs negotiated' });

  let emitted = 0;
  const emitRound = (n: number): void => {
    for (const server of servers) {
      if (server.emit(n % 2 === 0 ? 'STOP' : 'RESUME', { n }) >= 0) emitted++;
    }
  };
  for (let n = 0; n < 50; n++) emitRound(n);
  await waitFor(() => kafka.stored.length === emitted, { description: 'warm-up events stored' });
  const baselineRss = process.memoryUsage().rss;

  const limit = hardOpenFileLimit();
  const idle = Math.min(IDLE, Math.max(0, limit - SLOW - 200));
  t.diagnostic(`open-file hard limit ${limit}; flood of ${idle} idle + ${SLOW} slow connections`);
  const flood = spawn(
    process.execPath,
    ['--import', 'tsx', FLOOD_HELPER, String(collector.http.port), String(idle), String(SLOW)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const floodExit = new Promise<void>((resolve) => flood.once('exit', () => resolve()));
  t.after(async () => {
    if (flood.exitCode === null && flood.signalCode === null) {
      process.kill(flood.pid as number, 'SIGKILL');
      await floodExit;
    }
  });
  const reports: { open: number; closed: number; connected: number }[] = [];
  createInterface({ input: flood.stdout }).on('line', (line) => {
    reports.push(JSON.parse(line) as { open: number; closed: number; connected: number });
  });
  await waitFor(() => reports.length > 0, {
    timeoutMs: 60_000,
    description: 'the flood’s first wave settled',
  });

  // Events flow through the flood for 8 s; RSS is sampled as they do.
  let maxRss = baselineRss;
  const floodEnd = Date.now() + 8000;
  for (let n = 50; Date.now() < floodEnd; n++) {
    emitRound(n);
    maxRss = Math.max(maxRss, process.memoryUsage().rss);
    await sleep(10);
  }
  const refused = await metric(collector.registry, 'vfio_collector_http_connections_refused_total');
  const openDuringFlood = await metric(collector.registry, 'vfio_collector_http_connections');
  const lastReport = reports.at(-1);

  process.kill(flood.pid as number, 'SIGKILL');
  await floodExit;
  const metricsBack = Date.now();
  const response = await waitFor(
    async () => {
      const r = await fetch(`${collector.http.url}/metrics`);
      return r.status === 200 ? r.text() : null;
    },
    { timeoutMs: 30_000, intervalMs: 200, description: '/metrics answers again' },
  );
  const backMs = Date.now() - metricsBack;
  await waitFor(() => kafka.stored.length === emitted, {
    timeoutMs: 30_000,
    description: `all ${emitted} events stored (have ${kafka.stored.length})`,
  });

  t.diagnostic(
    `events ${emitted} emitted, ${kafka.stored.length} stored; refused connections ${refused}; ` +
      `open at the end of the flood ${openDuringFlood} (limit 256); flood client saw ${JSON.stringify(lastReport)}; ` +
      `RSS ${Math.round(baselineRss / MiB)} MiB before, ${Math.round(maxRss / MiB)} MiB at most; ` +
      `/metrics answered ${backMs} ms after the flood stopped`,
  );
  assert.ok(metricValue(response, 'vfio_collector_http_connections_refused_total') >= 1);
  assert.ok(refused >= idle + SLOW - 256, `${refused} refused connections counted`);
  assert.ok(openDuringFlood <= 256, `${openDuringFlood} open`);
  assert.equal(await metric(collector.registry, 'vfio_collector_events_dropped_total'), 0);
  assert.ok(
    maxRss - baselineRss < 64 * MiB,
    `RSS grew by ${Math.round((maxRss - baselineRss) / MiB)} MiB during the flood`,
  );
});
