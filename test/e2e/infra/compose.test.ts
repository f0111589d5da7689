/**
 * docker-compose.yml: `docker compose config` (the suite's setup, infra/setup-system.sh, builds
 * the compose plugin from the Go module proxy when the machine lacks it; without a Docker client
 * the plugin binary runs standalone); and always the structure that compose does not check: healthchecks, volumes, depends_on
 * conditions, the stages' environment variable names (taken from their config specs), and that
 * Prometheus and Grafana find what the stack mounts and serves.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { collectorConfigSpec } from '../../../services/collector/config.ts';
import { exporterConfigSpec } from '../../../services/exporter/config.ts';
import { processorConfigSpec } from '../../../services/processor/config.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string | number>;
  volumes?: string[];
  ports?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  restart?: string;
}
interface Compose {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
}

const STAGES = {
  collector: { command: 'collect', job: 'vfio-collector', spec: collectorConfigSpec('host') },
  processor: { command: 'process', job: 'vfio-processor', spec: processorConfigSpec() },
  exporter: { command: 'export', job: 'vfio-exporter', spec: exporterConfigSpec() },
} as const;

async function loadCompose(): Promise<Compose> {
  // merge: the file uses YAML merge keys (<<) for the settings the stages share.
  return parse(await readFile(join(ROOT, 'docker-compose.yml'), 'utf8'), {
    merge: true,
  }) as Compose;
}

function run(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number; output: string; stdout: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: ROOT, env }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, output: `${stdout}${stderr}`, stdout });
    });
  });
}

/** `docker compose` when Docker has the plugin, else the plugin binary standalone. */
async function composeCommand(): Promise<[string, string[]]> {
  const plugin = join(homedir(), '.docker/cli-plugins/docker-compose');
  const viaDocker = (await run('docker', ['compose', 'version'])).code === 0;
  return viaDocker ? ['docker', ['compose']] : [plugin, []];
}

/**
 * The environment of a `docker compose config` run: the caller's, less the variables the file
 * reads (so a developer's shell cannot change the outcome), plus `vars`.
 */
function composeEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env['GRAFANA_ADMIN_PASSWORD'];
  delete env['VFIO_BIND_ADDRESS'];
  return { ...env, ...vars };
}

interface ResolvedService {
  command?: string[];
  environment?: Record<string, string | null>;
  ports?: { host_ip?: string; target: number; published: string }[];
}

/** `docker compose config --format json`: the file as compose runs it, variables resolved. */
async function resolvedCompose(
  vars: Record<string, string>,
): Promise<Record<string, ResolvedService>> {
  const [cmd, prefix] = await composeCommand();
  const { code, output, stdout } = await run(
    cmd,
    [...prefix, '-f', 'docker-compose.yml', 'config', '--format', 'json'],
    composeEnv(vars),
  );
  assert.equal(code, 0, `${cmd} config: ${output}`);
  return (JSON.parse(stdout) as { services: Record<string, ResolvedService> }).services;
}

const PASSWORD = 'a-test-password';

const isOneShot = (compose: Compose, name: string): boolean =>
  compose.services[name]?.restart === 'no' &&
  Object.values(compose.services).some(
    (s) => s.depends_on?.[name]?.condition === 'service_completed_successfully',
  );

/** `SOURCE:TARGET[:MODE]` → source and target; a source starting with . or / is a bind mount. */
function mounts(service: Service): { source: string; target: string; bind: boolean }[] {
  return (service.volumes ?? []).map((v) => {
    const [source = '', target = ''] = v.split(':');
    return { source, target, bind: source.startsWith('.') || source.startsWith('/') };
  });
}

describe('docker-compose.yml', () => {
  test('docker compose config accepts it', async () => {
    const [cmd, prefix] = await composeCommand();
    const { code, output } = await run(
      cmd,
      [...prefix, '-f', 'docker-compose.yml', 'config', '--quiet'],
      composeEnv({ GRAFANA_ADMIN_PASSWORD: PASSWORD }),
    );
    assert.equal(
      code,
      0,
      `${cmd} ${prefix.join(' ')} config: ${output} (run infra/setup-system.sh)`,
    );
  });

  test('docker compose config rejects a broken file (so the check above can fail)', async () => {
    const [cmd, prefix] = await composeCommand();
    const broken = join(ROOT, 'test/fixtures/compose/broken-compose.yml');
    const { code } = await run(cmd, [...prefix, '-f', broken, 'config', '--quiet']);
    assert.notEqual(code, 0);
  });

  test('runs the whole stack', async () => {
    const compose = await loadCompose();
    for (const name of [
      'kafka',
      'topic-init',
      'simulator',
      'prometheus',
      'alertmanager',
      'grafana',
    ]) {
      assert.ok(compose.services[name], `service ${name}`);
    }
    for (const [name, stage] of Object.entries(STAGES)) {
      const service = compose.services[name];
      assert.ok(service, `service ${name}`);
      assert.deepEqual(service.command, ['node', 'bin/vfio-telemetry.js', stage.command]);
    }
    assert.match(compose.services.kafka?.image ?? '', /^apache\/kafka:/);
    // The Prometheus 3 the stack runs is the one the rules and dashboards are tested on: Go
    // module v0.3MM.P is Prometheus 3.MM.P (infra/setup-system.sh builds it for the tests).
    const setup = await readFile(join(ROOT, 'infra/setup-system.sh'), 'utf8');
    const [, minor = '', patch = ''] =
      /^PROMETHEUS3_VERSION=v0\.3(\d\d)\.(\d+)$/m.exec(setup) ?? [];
    assert.equal(
      compose.services.prometheus?.image,
      `prom/prometheus:v3.${Number(minor)}.${patch}`,
      'compose runs the Prometheus 3 that infra/setup-system.sh builds for the tests',
    );
    assert.equal(compose.services.kafka?.environment?.KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR, 1);
  });

  test('every service has a healthcheck or is a one-shot', async () => {
    const compose = await loadCompose();
    for (const [name, service] of Object.entries(compose.services)) {
      assert.ok(
        service.healthcheck?.test !== undefined || isOneShot(compose, name),
        `${name} has neither a healthcheck nor is a one-shot others wait for`,
      );
    }
  });

  test('depends_on names existing services with conditions they can meet', async () => {
    const compose = await loadCompose();
    for (const [name, service] of Object.entries(compose.services)) {
      for (const [dep, { condition }] of Object.entries(service.depends_on ?? {})) {
        const target = compose.services[dep];
        assert.ok(target, `${name} depends on unknown ${dep}`);
        if (condition === 'service_healthy')
          assert.ok(target.healthcheck, `${dep} has no healthcheck`);
        else assert.equal(condition, 'service_completed_successfully', `${name} → ${dep}`);
        if (condition === 'service_completed_successfully') assert.ok(isOneShot(compose, dep));
      }
    }
  });

  test('every named volume is declared and every bind mount and build file exists', async () => {
    const compose = await loadCompose();
    const declared = new Set(Object.keys(compose.volumes));
    const used = new Set<string>();
    for (const [name, service] of Object.entries(compose.services)) {
      for (const m of mounts(service)) {
        if (m.bind) await access(join(ROOT, m.source));
        else {
          assert.ok(declared.has(m.source), `${name} uses undeclared volume ${m.source}`);
          used.add(m.source);
        }
      }
      if (service.build) await access(join(ROOT, service.build.context, service.build.dockerfile));
    }
    assert.deepEqual([...declared].sort(), [...used].sort(), 'declared volumes nobody uses');
  });

  test('stage environment variables are ones the stages declare', async () => {
    const compose = await loadCompose();
    for (const [name, stage] of Object.entries(STAGES)) {
      const spec: Record<string, { env?: string }> = stage.spec;
      const known = new Set(Object.values(spec).map((o) => o.env));
      for (const key of Object.keys(compose.services[name]?.environment ?? {})) {
        assert.ok(known.has(key), `${name}: ${key} is not an option of ${name} (config.ts)`);
      }
    }
  });

  test('Prometheus scrapes each stage on the port the stage listens on, and finds Alertmanager', async () => {
    const compose = await loadCompose();
    const prometheus = parse(
      await readFile(join(ROOT, 'infra/prometheus/prometheus.yml'), 'utf8'),
    ) as {
      scrape_configs: { job_name: string; dns_sd_configs?: { names: string[]; port: number }[] }[];
      alerting: { alertmanagers: { static_configs: { targets: string[] }[] }[] };
    };
    for (const [name, stage] of Object.entries(STAGES)) {
      const job = prometheus.scrape_configs.find((j) => j.job_name === stage.job);
      const sd = job?.dns_sd_configs?.[0];
      assert.deepEqual(sd?.names, [name], `${stage.job} scrapes service ${name}`);
      const env = compose.services[name]?.environment ?? {};
      const portKey = Object.keys(env).find((k) => k.endsWith('_HTTP_PORT'));
      assert.ok(portKey, `${name} sets its HTTP port`);
      assert.equal(Number(env[portKey]), sd?.port, `${name} listens where Prometheus scrapes`);
      assert.equal(
        env[portKey.replace('_PORT', '_HOST')],
        '0.0.0.0',
        `${name} listens beyond loopback`,
      );
    }
    const am = prometheus.alerting.alertmanagers[0]?.static_configs[0]?.targets[0] ?? '';
    assert.ok(compose.services[am.split(':')[0] ?? ''], `alertmanager target ${am} is a service`);
    const promMount = mounts(compose.services.prometheus ?? {}).find((m) => m.bind);
    assert.deepEqual(promMount && [promMount.source, promMount.target], [
      './infra/prometheus',
      '/etc/prometheus',
    ]);
  });

  test('Grafana mounts the provisioning and the dashboards where the provider looks', async () => {
    const compose = await loadCompose();
    const provider = parse(
      await readFile(
        join(ROOT, 'infra/grafana/provisioning/dashboards/vfio-telemetry.yml'),
        'utf8',
      ),
    ) as { providers: { options: { path: string } }[] };
    const grafanaMounts = mounts(compose.services.grafana ?? {});
    const dashboards = grafanaMounts.find((m) => m.source === './infra/grafana/dashboards');
    assert.equal(dashboards?.target, provider.providers[0]?.options.path);
    const provisioning = grafanaMounts.find((m) => m.source === './infra/grafana/provisioning');
    assert.equal(provisioning?.target, '/etc/grafana/provisioning');
  });
});

describe('docker-compose.yml is safe by default (docker compose config)', () => {
  test('refuses to start without a Grafana admin password, naming the variable', async () => {
    const [cmd, prefix] = await composeCommand();
    for (const vars of [{}, { GRAFANA_ADMIN_PASSWORD: '' }]) {
      const { code, output } = await run(
        cmd,
        [...prefix, '-f', 'docker-compose.yml', 'config', '--quiet'],
        composeEnv(vars),
      );
      assert.notEqual(code, 0, `accepted without a password (${JSON.stringify(vars)})`);
      assert.match(output, /GRAFANA_ADMIN_PASSWORD/);
    }
  });

  test('Grafana takes the admin password from the environment; anonymous visitors are Viewers', async () => {
    const grafana = (await resolvedCompose({ GRAFANA_ADMIN_PASSWORD: PASSWORD }))['grafana'];
    const env = grafana?.environment ?? {};
    assert.equal(env['GF_SECURITY_ADMIN_PASSWORD'], PASSWORD);
    assert.equal(env['GF_AUTH_ANONYMOUS_ENABLED'], 'true');
    assert.equal(env['GF_AUTH_ANONYMOUS_ORG_ROLE'], 'Viewer');
    assert.notEqual(env['GF_USERS_ALLOW_SIGN_UP'], 'true');
  });

  test('every published port listens on 127.0.0.1 unless VFIO_BIND_ADDRESS opts in', async () => {
    const byDefault = await resolvedCompose({ GRAFANA_ADMIN_PASSWORD: PASSWORD });
    const published = Object.entries(byDefault).flatMap(([name, s]) =>
      (s.ports ?? []).map((p) => ({ name, ...p })),
    );
    assert.deepEqual(
      published.map((p) => `${p.name} ${p.host_ip ?? 'all interfaces'}:${p.published}`).sort(),
      [
        'alertmanager 127.0.0.1:9093',
        'exporter 127.0.0.1:9466',
        'grafana 127.0.0.1:3000',
        'prometheus 127.0.0.1:9090',
      ],
    );
    const optedIn = await resolvedCompose({
      GRAFANA_ADMIN_PASSWORD: PASSWORD,
      VFIO_BIND_ADDRESS: '0.0.0.0',
    });
    for (const [name, s] of Object.entries(optedIn)) {
      for (const p of s.ports ?? []) assert.equal(p.host_ip, '0.0.0.0', `${name} opts in`);
    }
  });

  test('Prometheus stores exemplars and has no lifecycle or admin API; Alertmanager opens no cluster port', async () => {
    const services = await resolvedCompose({ GRAFANA_ADMIN_PASSWORD: PASSWORD });
    const prometheus = services['prometheus']?.command ?? [];
    assert.ok(prometheus.includes('--config.file=/etc/prometheus/prometheus.yml'), 'the command');
    for (const flag of ['--web.enable-lifecycle', '--web.enable-admin-api']) {
      assert.ok(!prometheus.some((a) => a.startsWith(flag)), `prometheus runs with ${flag}`);
    }
    assert.ok(
      prometheus.includes('--enable-feature=exemplar-storage'),
      'prometheus keeps exemplars (Grafana exemplar markers need them)',
    );
    const alertmanager = services['alertmanager']?.command ?? [];
    assert.ok(alertmanager.includes('--cluster.listen-address='), alertmanager.join(' '));
  });
});
