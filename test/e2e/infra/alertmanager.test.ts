/**
 * infra/alertmanager/alertmanager.yml as Alertmanager reads it: `amtool check-config`, the route
 * of each severity (`amtool config routes test`), and, on a real Alertmanager (Debian's
 * prometheus-alertmanager, infra/setup-system.sh), that a paging SLO alert inhibits the ticket of
 * the same SLO and target state and nothing else.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test, type TestContext } from 'node:test';
import { pollUntil } from '../../helpers/prometheus.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CONFIG = join(ROOT, 'infra/alertmanager/alertmanager.yml');

function run(cmd: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return address.port;
}

async function startAlertmanager(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'vfio-alertmanager-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const child = spawn(
    'prometheus-alertmanager',
    [
      `--config.file=${CONFIG}`,
      `--storage.path=${dir}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr
    .setEncoding('utf8')
    .on('data', (chunk: string) => (log = (log + chunk).slice(-4096)));
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (e) =>
      reject(new Error('cannot run prometheus-alertmanager', { cause: e })),
    );
  });
  t.after(async () => {
    if (child.exitCode !== null || child.pid === undefined) return;
    const exited = once(child, 'exit');
    process.kill(child.pid, 'SIGTERM');
    await exited;
  });
  const url = `http://127.0.0.1:${port}`;
  await pollUntil(
    'alertmanager to be ready',
    async () => {
      if (child.exitCode !== null) throw new Error(`alertmanager exited:\n${log}`);
      return (await fetch(`${url}/-/ready`)).ok ? true : undefined;
    },
    30_000,
  );
  return url;
}

const slo = (severity: string, target: string, long: string) => ({
  labels: {
    alertname: 'VfioPrepareLatencySLOBurn',
    severity,
    slo: 'prepare-latency',
    target,
    long_window: long,
  },
  annotations: { summary: 'test' },
});

describe('Alertmanager', () => {
  test('amtool check-config passes, with the inhibit rule and three receivers', async () => {
    const { code, output } = await run('amtool', ['check-config', CONFIG]);
    assert.equal(code, 0, output);
    assert.match(output, /1 inhibit rules/);
    assert.match(output, /3 receivers/);
  });

  test('each severity goes to its receiver', async () => {
    for (const [labels, receiver] of [
      [['severity=page', 'slo=prepare-latency'], 'page'],
      [['severity=critical', 'alertname=VfioPipelineStalled'], 'page'],
      [['severity=ticket', 'slo=prepare-latency'], 'ticket'],
      [['severity=warning', 'alertname=VfioTargetDown'], 'default'],
    ] as const) {
      const { code, output } = await run('amtool', [
        'config',
        'routes',
        'test',
        `--config.file=${CONFIG}`,
        ...labels,
      ]);
      assert.equal(code, 0, output);
      assert.equal(
        output
          .split('\n')
          .find((l) => !l.startsWith('Warning'))
          ?.trim(),
        receiver,
      );
    }
  });

  test('a paging SLO alert inhibits the ticket of the same SLO and target, nothing else', async (t) => {
    const url = await startAlertmanager(t);
    const alerts = [
      slo('page', 'pre-copy-p2p', '1h'),
      slo('ticket', 'pre-copy-p2p', '3d'),
      slo('ticket', 'pre-copy', '3d'),
      {
        labels: { alertname: 'VfioTargetDown', severity: 'warning', job: 'vfio-exporter' },
        annotations: {},
      },
    ];
    const posted = await fetch(`${url}/api/v2/alerts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(alerts),
    });
    assert.equal(posted.status, 200);
    interface Got {
      labels: Record<string, string>;
      status: { state: string; inhibitedBy: string[] };
    }
    const got = await pollUntil(
      'the inhibition to show',
      async () => {
        const list = (await (await fetch(`${url}/api/v2/alerts`)).json()) as Got[];
        return list.length === 4 && list.some((a) => a.status.state === 'suppressed')
          ? list
          : undefined;
      },
      30_000,
      200,
    );
    const states = got
      .map(
        (a) =>
          `${a.labels.alertname} ${a.labels.severity} ${a.labels.target ?? '-'}: ${a.status.state}`,
      )
      .sort();
    assert.deepEqual(states, [
      'VfioPrepareLatencySLOBurn page pre-copy-p2p: active',
      'VfioPrepareLatencySLOBurn ticket pre-copy-p2p: suppressed',
      'VfioPrepareLatencySLOBurn ticket pre-copy: active',
      'VfioTargetDown warning -: active',
    ]);
  });
});
