/**
 * `vfio-telemetry export` as a process: it prints its URL, becomes ready against the real broker,
 * and a SIGTERM leaves the group and exits 0.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { brokersFromEnv, uniqueTopic } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const BIN = fileURLToPath(new URL('../../../bin/vfio-telemetry.js', import.meta.url));

test(
  'export: ready against Kafka, SIGTERM exits 0 after leaving the group',
  { timeout: 90_000 },
  async (t) => {
    const topic = await uniqueTopic(t, 'exporter-sigterm');
    const child = spawn(
      process.execPath,
      [BIN, 'export', '--topic', topic, '--group-id', `${topic}-g`, '--http-port', '0'],
      {
        env: { ...process.env, KAFKA_BROKERS: brokersFromEnv().join(',') },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));

    const url = await waitFor(() => /^(http:\/\/\S+)\n/.exec(stdout)?.[1], {
      timeoutMs: 30_000,
      description: 'the URL on stdout',
    });
    await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, {
      timeoutMs: 60_000,
      description: 'ready',
    });
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0, stderr);
    const logs = stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string });
    const messages = logs.map((l) => l.msg);
    for (const msg of [
      'Exporter started.',
      'Joined the consumer group.',
      'Shutting down.',
      'Exporter stopped.',
    ]) {
      assert.ok(messages.includes(msg), `missing log "${msg}" in ${messages.join(' | ')}`);
    }
  },
);
