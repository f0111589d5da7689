/**
 * infra/systemd: the units pass `systemd-analyze verify`, score at most 2.0 ("OK") in
 * `systemd-analyze security --offline=yes` (systemd ≥ 252; infra/setup-system.sh installs
 * Debian's systemd), and set what issue 9 asks of a hardened collector. The collector's
 * environment (unit and env file example) names only options the collector declares.
 *
 * `verify` checks that ExecStart's program exists: the units run /usr/bin/vfio-telemetry, which
 * the .deb installs (test/e2e/infra/packages.test.ts verifies the units installed with it), so
 * this test verifies a copy that starts this checkout's bin/vfio-telemetry.js instead. Nothing
 * else changes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { collectorConfigSpec } from '../../../services/collector/config.ts';
import { exporterConfigSpec } from '../../../services/exporter/config.ts';
import { processorConfigSpec } from '../../../services/processor/config.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const UNITS = join(ROOT, 'infra/systemd');
const EXECUTABLE = '/usr/bin/vfio-telemetry';
const MAX_EXPOSURE = 2.0;

const STAGES = {
  collector: { command: 'collect', spec: collectorConfigSpec('host') },
  processor: { command: 'process', spec: processorConfigSpec() },
  exporter: { command: 'export', spec: exporterConfigSpec() },
} as const;

function run(cmd: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

/** A unit file's settings: section → key → every value, in order (keys may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1] ?? '', current);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(current && eq > 0, `not a setting: ${line}`);
    const key = line.slice(0, eq);
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)]);
  }
  return sections;
}

async function unitText(stage: string): Promise<string> {
  return readFile(join(UNITS, `vfio-telemetry-${stage}.service`), 'utf8');
}

/** The unit's copy starting this checkout's CLI, in a temp dir. */
async function localCopy(t: { after: (fn: () => Promise<void>) => void }, stage: string) {
  const dir = await mkdtemp(join(tmpdir(), 'vfio-systemd-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, `vfio-telemetry-${stage}.service`);
  await writeFile(
    path,
    (await unitText(stage)).replaceAll(EXECUTABLE, join(ROOT, 'bin/vfio-telemetry.js')),
  );
  return path;
}

/** `systemd-analyze security --offline=yes`: the overall exposure and its verdict word. */
async function exposure(path: string): Promise<{ score: number; verdict: string; output: string }> {
  const { code, output } = await run('systemd-analyze', ['security', '--offline=yes', path]);
  assert.equal(code, 0, output);
  const m = /Overall exposure level for \S+: (\d+\.\d+) (\w+)/.exec(output);
  assert.ok(m, `no overall exposure in: ${output}`);
  return { score: Number(m[1]), verdict: m[2] ?? '', output };
}

describe('systemd units (infra/systemd)', () => {
  test('systemd-analyze supports --offline (systemd ≥ 252)', async () => {
    const { output } = await run('systemd-analyze', ['--version']);
    const version = Number(/systemd (\d+)/.exec(output)?.[1]);
    assert.ok(version >= 252, output);
  });

  test('there is a unit per stage', async () => {
    const units = (await readdir(UNITS)).filter((f) => f.endsWith('.service')).sort();
    assert.deepEqual(
      units,
      Object.keys(STAGES)
        .map((s) => `vfio-telemetry-${s}.service`)
        .sort(),
    );
  });

  for (const [stage, { command }] of Object.entries(STAGES)) {
    test(`${stage}: systemd-analyze verify passes with no warning`, async (t) => {
      const unit = parseUnit(await unitText(stage));
      const exec = unit.get('Service')?.get('ExecStart') ?? [];
      assert.deepEqual(exec, [`${EXECUTABLE} ${command}`]);
      const path = await localCopy(t, stage);
      const { code, output } = await run('systemd-analyze', ['verify', path]);
      assert.equal(code, 0, output);
      assert.equal(output.trim(), '', 'verify printed warnings');
    });

    test(`${stage}: systemd-analyze security --offline=yes scores it ≤ ${MAX_EXPOSURE} ("OK")`, async () => {
      const { score, verdict, output } = await exposure(
        join(UNITS, `vfio-telemetry-${stage}.service`),
      );
      assert.ok(score <= MAX_EXPOSURE, `exposure ${score} ${verdict}:\n${output}`);
      assert.equal(verdict, 'OK');
    });
  }

  test('the exposure check can fail: the same unit without its hardening scores high', async (t) => {
    const bare = (await unitText('collector'))
      .split('\n')
      .filter((l) => /^(\[|Description|ExecStart|User|Group|Type)/.test(l))
      .join('\n');
    const dir = await mkdtemp(join(tmpdir(), 'vfio-systemd-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'bare.service');
    await writeFile(path, bare);
    const { score, verdict } = await exposure(path);
    assert.ok(score > MAX_EXPOSURE, `bare unit scored ${score}`);
    assert.notEqual(verdict, 'OK');
  });

  test('verify can fail: a misspelt setting is reported', async (t) => {
    const path = await localCopy(t, 'collector');
    await writeFile(
      path,
      (await readFile(path, 'utf8')).replace('ProtectHome=yes', 'ProtectHom=yes'),
    );
    const { output } = await run('systemd-analyze', ['verify', path]);
    assert.match(output, /Unknown key 'ProtectHom'/);
  });

  test('collector: the hardening issue 9 asks for', async () => {
    const unit = parseUnit(await unitText('collector'));
    const service = unit.get('Service') ?? new Map<string, string[]>();
    const one = (key: string): string | undefined => service.get(key)?.at(-1);
    assert.equal(one('User'), 'vfio-telemetry');
    assert.equal(one('DynamicUser'), undefined, 'needs a fixed user in the socket group');
    assert.ok(one('SupplementaryGroups'), 'the group that owns the QMP socket directory');
    assert.equal(one('NoNewPrivileges'), 'yes');
    assert.equal(one('ProtectSystem'), 'strict');
    assert.equal(one('PrivateTmp'), 'yes');
    assert.equal(one('ProtectHome'), 'yes');
    assert.equal(one('RestrictAddressFamilies'), 'AF_UNIX AF_INET AF_INET6');
    assert.equal(service.get('SystemCallFilter')?.[0], '@system-service');
    assert.equal(one('CapabilityBoundingSet'), '');
    assert.match(one('MemoryMax') ?? '', /^\d+[KMG]$/);
    assert.match(one('CPUQuota') ?? '', /^\d+%$/);
    assert.equal(one('Restart'), 'on-failure');
    assert.ok(Number(unit.get('Unit')?.get('StartLimitBurst')?.[0]) > 0, 'a restart limit');
    // Node's JIT cannot run under MemoryDenyWriteExecute=yes (V8 aborts at start).
    assert.notEqual(one('MemoryDenyWriteExecute'), 'yes');
    // The only writable path is the spool: StateDirectory= under ProtectSystem=strict, nothing
    // in ReadWritePaths=, and the spool option points into it.
    assert.equal(service.get('ReadWritePaths'), undefined);
    const env = Object.fromEntries(
      (service.get('Environment') ?? []).map((e) => e.split('=') as [string, string]),
    );
    assert.equal(env['VFIO_COLLECTOR_SPOOL_DIR'], `/var/lib/${one('StateDirectory')}`);
    assert.equal(one('EnvironmentFile'), '/etc/vfio-telemetry/collector.env');
  });

  for (const [stage, { spec }] of Object.entries(STAGES)) {
    test(`${stage}: the unit and its env file example name only the ${stage}'s options`, async () => {
      const known = new Set(Object.values(spec).map((o: { env?: string }) => o.env));
      known.add('NODE_ENV');
      const service = parseUnit(await unitText(stage)).get('Service');
      const fromUnit = (service?.get('Environment') ?? []).map((e) => e.split('=')[0] ?? '');
      assert.deepEqual(service?.get('EnvironmentFile'), [`/etc/vfio-telemetry/${stage}.env`]);
      const example = await readFile(join(UNITS, `${stage}.env.example`), 'utf8');
      const fromExample = [...example.matchAll(/^#?([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1] ?? '');
      assert.ok(fromExample.includes('KAFKA_BROKERS'));
      for (const name of [...fromUnit, ...fromExample]) {
        assert.ok(known.has(name), `${name} is not an option of the ${stage} (config.ts)`);
      }
    });
  }

  test('what the local copies start exists in this checkout', async () => {
    await access(join(ROOT, 'bin/vfio-telemetry.js'));
  });
});
