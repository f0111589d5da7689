/**
 * The packages a fleet installs (infra/package/package.ts), installed for real:
 *
 * - the .deb is lintian clean (its overrides each carry a reason), installs with dpkg (as root,
 *   as CI runs), runs `vfio-telemetry --version` and `replay` exactly like the source tree, its
 *   units pass `systemd-analyze verify` and `security` as installed, nothing is enabled, the
 *   installed `collect` publishes to the test broker, and a purge leaves none of its files;
 * - the npm tarball installs with `npm install -g` and runs the same replay.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { builtArtifacts, type Artifacts } from '../../helpers/artifacts.ts';
import { brokersFromEnv, uniqueTopic } from '../../helpers/kafka.ts';
import { startFakeQmpServer } from '../../helpers/qmp-server.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { tempDir } from '../collector/collector-harness.ts';
import { fetchMetricsText, metricValue } from '../../helpers/metrics-text.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const FIXTURES = join(ROOT, 'test/fixtures/qmp/vfio');
const STAGES = ['collector', 'processor', 'exporter'] as const;

function run(
  cmd: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

async function replayFromSource(): Promise<string> {
  const files = readdirSync(FIXTURES).map((f) => join(FIXTURES, f));
  const { code, stdout, stderr } = await run(process.execPath, [
    join(ROOT, 'bin/vfio-telemetry.js'),
    'replay',
    ...files,
  ]);
  assert.equal(code, 0, stderr);
  return stdout;
}

const fixtureFiles = (): string[] => readdirSync(FIXTURES).map((f) => join(FIXTURES, f));

describe('packages', () => {
  let artifacts: Artifacts;
  before(async () => {
    artifacts = await builtArtifacts();
  });

  test('the .deb is lintian clean', { timeout: 600_000 }, async () => {
    const { code, stdout, stderr } = await run('lintian', [
      '--tag-display-limit',
      '0',
      '--fail-on',
      'error,warning',
      artifacts.deb,
    ]);
    const tags = `${stdout}${stderr}`
      .split('\n')
      .filter((l) => /^[EWIXP]: /.test(l))
      .join('\n');
    assert.equal(tags, '', 'lintian tags');
    assert.equal(code, 0, `${stdout}${stderr}`);
  });

  test(
    'the .deb installs, runs, passes the unit checks, collects, and purges leaving nothing',
    { timeout: 300_000 },
    async (t) => {
      assert.equal(process.getuid?.(), 0, 'installing the .deb needs root (CI runs as root)');
      if ((await run('dpkg-query', ['-W', 'vfio-telemetry'])).code === 0) {
        await run('dpkg', ['--purge', 'vfio-telemetry']); // left by an interrupted run
      }
      const install = await run('dpkg', ['-i', artifacts.deb]);
      t.after(() => run('dpkg', ['--purge', 'vfio-telemetry']));
      assert.equal(install.code, 0, `${install.stdout}${install.stderr}`);
      const installed = (await run('dpkg-query', ['-L', 'vfio-telemetry'])).stdout
        .split('\n')
        .filter((p) => p !== '' && !p.startsWith('/.'));

      const version = await run('/usr/bin/vfio-telemetry', ['--version']);
      assert.equal(version.code, 0, version.stderr);
      assert.match(
        version.stdout,
        new RegExp(
          `^vfio-telemetry ${artifacts.version} \\(commit [0-9a-f]{40}(-dirty)?, bundle\\) on Node\\.js v24\\.`,
        ),
      );
      const replay = await run('/usr/bin/vfio-telemetry', ['replay', ...fixtureFiles()]);
      assert.equal(replay.code, 0, replay.stderr);
      assert.equal(replay.stdout, await replayFromSource());

      // Installed, configured, and nothing enabled or started by surprise.
      const conffiles = (await run('dpkg-query', ['-W', '-f=${Conffiles}', 'vfio-telemetry']))
        .stdout;
      for (const stage of STAGES) {
        for (const conffile of [
          `/etc/vfio-telemetry/${stage}.env`,
          `/etc/vfio-telemetry/${stage}-web-config.yml`,
        ]) {
          assert.match(conffiles, new RegExp(`^ ${conffile} [0-9a-f]{32}$`, 'm'));
          assert.equal(statSync(conffile).mode & 0o777, 0o600, conffile);
        }
        assert.ok(
          !existsSync(
            `/etc/systemd/system/multi-user.target.wants/vfio-telemetry-${stage}.service`,
          ),
          `${stage} enabled by the install`,
        );
      }
      assert.equal((await run('getent', ['passwd', 'vfio-telemetry'])).code, 0, 'sysusers.d');

      for (const stage of STAGES) {
        const unit = `/usr/lib/systemd/system/vfio-telemetry-${stage}.service`;
        const verify = await run('systemd-analyze', ['verify', unit]);
        assert.equal(verify.code, 0, verify.stderr);
        assert.equal(`${verify.stdout}${verify.stderr}`.trim(), '', `verify ${unit}`);
        const security = await run('systemd-analyze', ['security', '--offline=yes', unit]);
        const m = /Overall exposure level for \S+: (\d+\.\d+) (\w+)/.exec(security.stdout);
        assert.ok(m, security.stdout + security.stderr);
        assert.ok(Number(m[1]) <= 2.0, `${stage} exposure ${m[1]}`);
      }

      // The installed executable collects: one VM's event reaches the test broker.
      const topic = await uniqueTopic(t, 'deb-collect');
      const sockets = tempDir(t, 'deb-vms-');
      const spool = tempDir(t, 'deb-spool-');
      const vm = await startFakeQmpServer(join(sockets, 'vm-1.qmp'));
      t.after(() => vm.close());
      const collector = spawn(
        '/usr/bin/vfio-telemetry',
        ['collect', '--topic', topic, '--http-port', '0'],
        {
          env: {
            ...process.env,
            KAFKA_BROKERS: brokersFromEnv().join(','),
            VFIO_COLLECTOR_SOCKET_DIR: sockets,
            VFIO_COLLECTOR_SPOOL_DIR: spool,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let out = '';
      let err = '';
      collector.stdout.on('data', (d: Buffer) => (out += d.toString()));
      collector.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise((resolve) => collector.once('exit', resolve));
      t.after(async () => {
        if (collector.exitCode === null && collector.signalCode === null) {
          collector.kill('SIGKILL');
          await exited;
        }
      });
      const url = await waitFor(() => /^(http:\/\/\S+)\n/m.exec(out)?.[1], {
        timeoutMs: 30_000,
        description: `the collector's URL (stderr: ${err.slice(-500)})`,
      });
      await waitFor(() => vm.emit('STOP') >= 0, { timeoutMs: 30_000, description: 'QMP client' });
      await waitFor(
        async () =>
          metricValue(await fetchMetricsText(url), 'vfio_collector_events_published_total') >= 1,
        { timeoutMs: 60_000, description: 'the event published to Kafka' },
      );
      // Its young generation: the 1 MiB re-exec of `collect` holds in the executable too.
      const environ = readFileSync(`/proc/${collector.pid}/environ`, 'utf8');
      assert.match(environ, /(^|\0)NODE_OPTIONS=--max-semi-space-size=1(\0|$)/);
      collector.kill('SIGTERM');
      await exited;
      assert.equal(collector.exitCode, 0, err.slice(-2000));

      const purge = await run('dpkg', ['--purge', 'vfio-telemetry']);
      assert.equal(purge.code, 0, `${purge.stdout}${purge.stderr}`);
      assert.notEqual((await run('dpkg-query', ['-W', 'vfio-telemetry'])).code, 0);
      const ours = installed.filter((p) => p.includes('vfio-telemetry'));
      assert.ok(ours.length > 10, ours.join('\n'));
      const left = [...ours, '/etc/vfio-telemetry', '/var/lib/vfio-telemetry'].filter((p) =>
        existsSync(p),
      );
      assert.deepEqual(left, [], 'files left after purge');
    },
  );

  test('the npm tarball installs with npm install -g and runs', { timeout: 300_000 }, async (t) => {
    const prefix = tempDir(t, 'npm-global-');
    const install = await run('npm', [
      'install',
      '-g',
      '--prefix',
      prefix,
      '--no-audit',
      '--no-fund',
      artifacts.tgz,
    ]);
    assert.equal(install.code, 0, `${install.stdout}${install.stderr}`);
    const bin = join(prefix, 'bin/vfio-telemetry');
    const version = await run(bin, ['--version']);
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, new RegExp(`^vfio-telemetry ${artifacts.version} .*, bundle\\)`));
    const replay = await run(bin, ['replay', ...fixtureFiles()]);
    assert.equal(replay.code, 0, replay.stderr);
    assert.equal(replay.stdout, await replayFromSource());
  });
});
