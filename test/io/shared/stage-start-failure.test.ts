/**
 * The stage contract (services/shared/io/stage.ts) when start-up fails halfway: what had started
 * is closed in reverse order and nothing is left running — no QMP connection, no Kafka client,
 * no timer, no listening socket — checked against the process's active handles. The collector
 * and the exporter here (in-process, fakes for Kafka); the collector also as a process, which
 * must exit 1 by itself with one clear line. The processor's test needs a broker:
 * test/e2e/processor/processor-start-failure.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { test, type TestContext } from 'node:test';
import { parseCollectorConfig } from '../../../services/collector/config.ts';
import { startCollector } from '../../../services/collector/main.ts';
import { parseExporterConfig } from '../../../services/exporter/config.ts';
import { startExporter } from '../../../services/exporter/main.ts';
import { isTelemetryError } from '../../../services/shared/core/errors.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { startFakeQmpServer } from '../../helpers/qmp-server.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { ackAll, fakeKafka } from '../collector/fake-kafka-port.ts';

const CLI = new URL('../../../bin/vfio-telemetry.js', import.meta.url).pathname;

function tempDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A port someone else listens on. */
async function takenPort(t: TestContext): Promise<number> {
  const blocker: Server = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  return (blocker.address() as { port: number }).port;
}

/**
 * Active handles by type (timers, sockets, watchers), for a before/after comparison; requests in
 * flight are not handles. The child-process test runs last: its pipes close on their own time.
 */
/** The handles open now that were not open `before` (by type). */
function leftRunning(before: readonly string[]): string[] {
  const left = [...before];
  return activeResources().filter((r) => {
    const i = left.indexOf(r);
    if (i === -1) return true;
    left.splice(i, 1);
    return false;
  });
}

function activeResources(): string[] {
  return process
    .getActiveResourcesInfo()
    .filter((r) => !['FSReqPromise', 'FSReqCallback', 'CloseReq'].includes(r))
    .sort();
}

test('collector: the HTTP port is taken → QMP connections, spool, sender and Kafka closed, nothing left running', async (t) => {
  const dir = tempDir(t, 'start-failure-');
  const port = await takenPort(t);
  const qmp = await startFakeQmpServer(join(dir, 'vm-1.qmp'));
  t.after(() => qmp.close());
  const kafka = fakeKafka({ send: ackAll }, 1);
  let kafkaClosed = 0;
  const closeKafka = kafka.port.close;
  kafka.port.close = () => {
    kafkaClosed++;
    return closeKafka();
  };
  const lines: Record<string, unknown>[] = [];
  const config = parseCollectorConfig('test-host', {
    env: {},
    flags: {
      socket: [`vm-1=${qmp.path}`],
      'socket-dir': dir,
      'spool-dir': join(dir, 'spool'),
      'http-host': '127.0.0.1',
      'http-port': String(port),
      brokers: ['127.0.0.1:9'],
    },
  });
  await tick();
  const before = activeResources();
  await assert.rejects(
    startCollector(
      config,
      createLogger({
        level: 'info',
        write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>),
      }),
      kafka.port,
    ),
    (error) => isTelemetryError(error, 'HTTP_LISTEN_FAILED') && /EADDRINUSE/.test(error.message),
  );
  assert.equal(kafkaClosed, 1, 'the Kafka port closed once');
  await waitFor(() => !qmp.negotiated, { description: 'the QMP connection closed' });
  await waitFor(() => leftRunning(before).length === 0, {
    description: `no handle left running (left: ${leftRunning(before).join(',')})`,
  });
  assert.ok(
    lines.some((l) => l['msg'] === 'The collector did not start; closing what had started.'),
  );
  assert.ok(
    !lines.some((l) => l['msg'] === 'A part failed to close.'),
    'every part closed cleanly',
  );

  // The spool was closed cleanly: a new collector on the same directory starts.
  const again = parseCollectorConfig('test-host', {
    env: {},
    flags: {
      'socket-dir': dir,
      'spool-dir': join(dir, 'spool'),
      'http-port': '0',
      brokers: ['127.0.0.1:9'],
    },
  });
  const collector = await startCollector(
    again,
    createLogger({ level: 'error', write: () => {} }),
    kafka.port,
  );
  await collector.stop();
});

test('exporter: the consumer fails to start → HTTP server and quantile timer closed; port taken → consumer never started', async (t) => {
  const config = parseExporterConfig({
    env: { KAFKA_BROKERS: 'unused:9092' },
    flags: { 'http-port': '0', 'http-host': '127.0.0.1' },
  });
  await tick();
  const before = activeResources();
  let url: string | undefined;
  const logger = createLogger({ level: 'error', write: () => {} });
  await assert.rejects(
    startExporter(config, logger, {
      startConsumer: () => {
        url = 'started';
        return Promise.reject(new Error('group authorization failed'));
      },
    }),
    /group authorization failed/,
  );
  assert.equal(url, 'started');
  await waitFor(() => leftRunning(before).length === 0, {
    description: `no handle left running (left: ${leftRunning(before).join(',')})`,
  });

  const port = await takenPort(t);
  let consumerStarted = false;
  await assert.rejects(
    startExporter(
      parseExporterConfig({
        env: { KAFKA_BROKERS: 'unused:9092' },
        flags: { 'http-port': String(port), 'http-host': '127.0.0.1' },
      }),
      logger,
      {
        startConsumer: () => {
          consumerStarted = true;
          return Promise.resolve({
            readiness: () => ({ ready: true, reasons: [] }),
            stop: () => Promise.resolve(),
          });
        },
      },
    ),
    (error) => isTelemetryError(error, 'HTTP_LISTEN_FAILED'),
  );
  assert.equal(consumerStarted, false);
});

test('collector process: the HTTP port is taken → exit status 1 on its own, one clear line', async (t) => {
  const dir = tempDir(t, 'start-failure-cli-');
  const port = await takenPort(t);
  const child = spawn(
    process.execPath,
    [
      CLI,
      'collect',
      '--socket-dir',
      dir,
      '--spool-dir',
      join(dir, 'spool'),
      '--brokers',
      '127.0.0.1:9',
      '--http-port',
      String(port),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const status = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
  assert.equal(status, 1, `exited by itself with 1 (stderr: ${stderr})`);
  assert.equal(stdout, '', 'no URL printed');
  assert.match(
    stderr,
    new RegExp(
      `vfio-telemetry collect: cannot listen on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\) \\[HTTP_LISTEN_FAILED\\]`,
    ),
  );
  assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
});
