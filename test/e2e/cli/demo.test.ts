import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../helpers/wait-for.ts';
import { tempDir } from '../collector/collector-harness.ts';
import { metricValue } from '../../helpers/metrics-text.ts';

const BIN = fileURLToPath(new URL('../../../bin/vfio-telemetry.js', import.meta.url));

// README's first command, as a new user runs it: no KAFKA_BROKERS, so the demo starts its own
// broker from the repo's scripts, and stops it again.
test('`npm run demo` starts Kafka and the whole pipeline, serves the page with data, and stops cleanly', async (t) => {
  const kafkaDir = tempDir(t, 'demo-kafka-');
  const env = { ...process.env };
  delete env['KAFKA_BROKERS'];
  const child = spawn(
    process.execPath,
    [BIN, 'demo', '--speed', '20', '--http-port', '0', '--kafka-dir', kafkaDir, '--duration', '40'],
    {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  t.after(async () => {
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));

  const page = await waitFor(() => /Live page: +(http:\/\/\S+)\//.exec(stdout)?.[1], {
    timeoutMs: 120_000,
    intervalMs: 200,
    description: 'the live page URL',
  });
  const pid = Number(readFileSync(join(kafkaDir, 'kafka.pid'), 'utf8').trim());
  assert.ok(pid > 0);
  const html = await (await fetch(`${page}/`)).text();
  assert.match(html, /<html/i);
  await waitFor(
    async () =>
      metricValue(await (await fetch(`${page}/metrics`)).text(), 'vfio_prepare_outcomes_total') > 0,
    { timeoutMs: 60_000, intervalMs: 500, description: 'prepares counted by the exporter' },
  );
  child.kill('SIGINT');
  assert.equal(await exited, 0, stderr.slice(-2000));
  assert.match(stderr, /demo: stopped cleanly/);
  // The broker the demo started is gone (stopped by its PID; a zombie waits only to be reaped).
  await waitFor(
    () =>
      !existsSync(`/proc/${pid}`) || /State:\s+Z/.test(readFileSync(`/proc/${pid}/status`, 'utf8')),
    {
      timeoutMs: 10_000,
      description: `broker ${pid} gone`,
    },
  );
});
