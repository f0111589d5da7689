/**
 * What ships is what is tested: every stage run from the single executable
 * (dist/vfio-telemetry, built once per test run by test/helpers/artifacts.ts) against the real
 * broker. `simulate` plays a seeded fleet, `collect` publishes it, `process` computes the
 * transitions, `export` serves them, `audit` finds the transitions topic equal to a recomputation
 * from the events topic, and `replay` of the simulator's transcripts prints what the source tree's
 * replay prints.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { BROKER_TIME_CONFIGS } from '../../../services/shared/core/topics.ts';
import { builtArtifacts, type Artifacts } from '../../helpers/artifacts.ts';
import { brokersFromEnv, uniqueTopic } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { tempDir } from '../collector/collector-harness.ts';
import { fetchMetricsText, metricValue } from '../../helpers/metrics-text.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const run = promisify(execFile);

interface Stage {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** The HTTP server's URL, once printed. */
  url: () => Promise<string>;
}

function startStage(t: TestContext, executable: string, args: string[]): Stage {
  const child = spawn(executable, args, {
    env: { ...process.env, KAFKA_BROKERS: brokersFromEnv().join(',') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  t.after(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  });
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    url: () =>
      waitFor(() => /^(http:\/\/\S+)\n/m.exec(stdout)?.[1], {
        timeoutMs: 30_000,
        description: `the URL of ${args[0]} on stdout (stderr: ${stderr.slice(-500)})`,
      }),
  };
}

async function metric(url: string, name: string): Promise<number> {
  return metricValue(await fetchMetricsText(url), name);
}

describe('the single executable runs every stage against the real broker', () => {
  let artifacts: Artifacts;
  before(async () => {
    artifacts = await builtArtifacts();
  });

  test(
    'simulate → collect → process → export, then audit and replay',
    { timeout: 300_000 },
    async (t) => {
      const exe = artifacts.executable;
      const [events, transitions, state, deadLetter] = await Promise.all([
        uniqueTopic(t, 'exe-events', { numPartitions: 3, configs: { ...BROKER_TIME_CONFIGS } }),
        uniqueTopic(t, 'exe-transitions', { numPartitions: 3 }),
        uniqueTopic(t, 'exe-state', { numPartitions: 3, configs: { 'cleanup.policy': 'compact' } }),
        uniqueTopic(t, 'exe-dlq'),
      ]);
      const sockets = tempDir(t, 'exe-vms-');
      const transcripts = tempDir(t, 'exe-transcripts-');
      const spool = tempDir(t, 'exe-spool-');

      const simulate = startStage(t, exe, [
        'simulate',
        '--dir',
        sockets,
        '--vms',
        '4',
        '--rate',
        '60',
        '--speed',
        'max',
        '--migrations',
        '12',
        '--seed',
        '7',
        '--transcripts',
        transcripts,
        '--wait-for-clients',
      ]);
      const collect = startStage(t, exe, [
        'collect',
        '--socket-dir',
        sockets,
        '--spool-dir',
        spool,
        '--topic',
        events,
        '--http-port',
        '0',
      ]);
      const collectUrl = await collect.url();
      await waitFor(() => simulate.child.exitCode !== null, {
        timeoutMs: 120_000,
        description: 'simulate finishing its 12 migrations',
      });
      assert.equal(simulate.child.exitCode, 0, `simulate: ${simulate.stderr().slice(-2000)}`);
      const received = await waitFor(
        async () => {
          const n = await metric(collectUrl, 'vfio_collector_events_received_total');
          const published = await metric(collectUrl, 'vfio_collector_events_published_total');
          return n > 0 && published === n && n;
        },
        { timeoutMs: 60_000, description: 'the collector publishing every event it received' },
      );

      const group = `${events}-g`;
      const processStage = startStage(t, exe, [
        'process',
        '--events-topic',
        events,
        '--transitions-topic',
        transitions,
        '--state-topic',
        state,
        '--dead-letter-topic',
        deadLetter,
        '--group-id',
        group,
        '--http-port',
        '0',
      ]);
      const exportStage = startStage(t, exe, [
        'export',
        '--topic',
        transitions,
        '--group-id',
        `${transitions}-g`,
        '--from-beginning',
        '--http-port',
        '0',
      ]);
      const processUrl = await processStage.url();
      const exportUrl = await exportStage.url();
      const published = await waitFor(
        async () => {
          const consumed = await metric(processUrl, 'vfio_processor_records_consumed_total');
          const out = await metric(processUrl, 'vfio_processor_transitions_published_total');
          return consumed >= received && out > 0 && out;
        },
        { timeoutMs: 90_000, description: `the processor consuming ${received} events` },
      );
      await waitFor(
        async () => (await metric(exportUrl, 'vfio_exporter_records_consumed_total')) === published,
        { timeoutMs: 60_000, description: `the exporter consuming ${published} transitions` },
      );
      const page = await fetch(`${exportUrl}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<html/i, 'the live page, embedded in the executable');

      const audit = await run(
        exe,
        ['audit', '--events-topic', events, '--transitions-topic', transitions, '--format', 'json'],
        { env: { ...process.env, KAFKA_BROKERS: brokersFromEnv().join(',') } },
      );
      const report = JSON.parse(audit.stdout) as { clean: boolean };
      assert.equal(report.clean, true, audit.stdout);

      const files = readdirSync(transcripts).map((f) => join(transcripts, f));
      assert.ok(files.length > 0);
      const fromExe = await run(exe, ['replay', ...files]);
      const fromSource = await run(process.execPath, [
        join(ROOT, 'bin/vfio-telemetry.js'),
        'replay',
        ...files,
      ]);
      assert.equal(fromExe.stdout, fromSource.stdout);
    },
  );
});
