/**
 * infra/helm/vfio-telemetry: `helm lint` and `helm template` (Helm 4, built from the Go module
 * proxy by infra/setup-system.sh), with the default values and with every option on
 * (test/fixtures/helm/everything.values.yaml); every rendered object validated offline by
 * kubeconform against strict JSON schemas made from the Kubernetes 1.34 OpenAPI spec and the
 * prometheus-operator CRDs (infra/helm/kube-schemas.ts), and shown to fail on a misspelled field
 * or a wrong type; then what the schemas cannot know: each stage's environment is a
 * configuration its own config parser accepts, every secret file it names is mounted, the
 * PrometheusRules are the rule files and the dashboard ConfigMaps the dashboard files, byte for
 * byte, and the jobs are the ones the rules and dashboards query.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, test } from 'node:test';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { parseCollectorConfig } from '../../../services/collector/config.ts';
import { parseExporterConfig } from '../../../services/exporter/config.ts';
import { parseProcessorConfig } from '../../../services/processor/config.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CHART = join(ROOT, 'infra/helm/vfio-telemetry');
const EVERYTHING = join(ROOT, 'test/fixtures/helm/everything.values.yaml');
// The versions infra/setup-system.sh builds and generates; kept in step with it by a test below.
const TOOLS =
  process.env['VFIO_KUBE_TOOLS_DIR'] ?? join(homedir(), '.cache/vfio-telemetry/kube-tools');
const SCHEMAS = join(TOOLS, 'schemas-v1.34.2-v0.85.0');
const HELM = join(TOOLS, 'helm');
const KUBECONFORM = join(TOOLS, 'kubeconform');

type Obj = Record<string, unknown>;
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> } & Obj;
  spec?: Obj;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
interface Mount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}
interface Container {
  [key: string]: unknown;
  name: string;
  args?: string[];
  env?: EnvVar[];
  volumeMounts?: Mount[];
  securityContext?: Obj;
  ports?: { name: string; containerPort: number }[];
}
interface PodSpec {
  [key: string]: unknown;
  containers: Container[];
  initContainers?: Container[];
  volumes?: ({ name: string } & Obj)[];
  securityContext?: Obj;
  tolerations?: Obj[];
  automountServiceAccountToken?: boolean;
}

function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(cmd, args, { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      done({ code, stdout, stderr });
    });
  });
}

async function helmTemplate(...args: string[]): Promise<{ text: string; manifests: Manifest[] }> {
  const r = await run(HELM, ['template', 'vt', CHART, '--namespace', 'telemetry', ...args]);
  assert.equal(r.code, 0, r.stderr);
  const manifests = parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
  return { text: r.stdout, manifests };
}

interface KubeconformResult {
  code: number;
  summary: { valid: number; invalid: number; errors: number; skipped: number };
  messages: string[];
}

/** kubeconform, strict, on the offline schemas only: a kind without a schema is an error. */
async function kubeconform(file: string): Promise<KubeconformResult> {
  const r = await run(KUBECONFORM, [
    '-strict',
    '-summary',
    '-output',
    'json',
    '-schema-location',
    `${SCHEMAS}/{{ .ResourceKind }}{{ .KindSuffix }}.json`,
    file,
  ]);
  const out = JSON.parse(r.stdout) as {
    resources?: { status: string; msg: string }[];
    summary: KubeconformResult['summary'];
  };
  return {
    code: r.code,
    summary: out.summary,
    messages: (out.resources ?? []).filter((x) => x.status !== 'statusValid').map((x) => x.msg),
  };
}

function find(manifests: Manifest[], kind: string, suffix: string): Manifest {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name.endsWith(suffix));
  assert.ok(found, `no ${kind} *${suffix}`);
  return found;
}

function podSpec(m: Manifest): PodSpec {
  const template = m.spec?.['template'] as { spec: PodSpec };
  return template.spec;
}

/** A container's environment as its process would see it (downward API values filled in). */
function envOf(c: Container): Record<string, string> {
  const fields: Record<string, string> = { 'spec.nodeName': 'node-1', 'metadata.name': 'vt-0' };
  return Object.fromEntries(
    (c.env ?? []).map((e) => {
      const path = e.valueFrom?.fieldRef?.fieldPath;
      const value = path !== undefined ? fields[path] : e.value;
      assert.ok(value !== undefined, `${c.name}: ${e.name} has no value`);
      return [e.name, value];
    }),
  );
}

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'vfio-helm-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('the Helm chart', () => {
  before(async () => {
    for (const path of [HELM, KUBECONFORM, join(SCHEMAS, '.complete')]) {
      await access(path).catch(() => {
        throw new Error(`${path} is missing: run bash infra/setup-system.sh (npm test does)`);
      });
    }
  });

  test('infra/setup-system.sh builds the versions this test looks for', async () => {
    const setup = await readFile(join(ROOT, 'infra/setup-system.sh'), 'utf8');
    assert.match(setup, /^KUBE_OPENAPI_VERSION=v1\.34\.2$/m);
    assert.match(setup, /^PROMETHEUS_OPERATOR_VERSION=v0\.85\.0$/m);
    assert.match(setup, /^HELM_VERSION=v4\.3\.2$/m);
    // `go install` stamps no patch version into Helm (it says v4.3): the setup records it.
    assert.equal(
      (await readFile(join(TOOLS, 'VERSION'), 'utf8')).trim(),
      'helm v4.3.2 kubeconform v0.7.0',
    );
    const version = await run(HELM, ['version', '--short']);
    assert.match(version.stdout, /^v4\.3/);
  });

  test('helm lint passes with the default values and with everything on', async () => {
    for (const values of [[], ['--values', EVERYTHING]]) {
      const r = await run(HELM, ['lint', '--strict', CHART, ...values]);
      assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  test('every rendered object is valid against the Kubernetes and prometheus-operator schemas', async (t) => {
    const dir = await tempDir(t);
    for (const [name, args] of [
      ['default', []],
      ['everything', ['--values', EVERYTHING]],
      [
        'libvirt only',
        ['--set', 'collector.qmp.enabled=false', '--set', 'collector.libvirt.enabled=true'],
      ],
      [
        'KubeVirt only',
        ['--set', 'collector.qmp.enabled=false', '--set', 'collector.kubevirt.enabled=true'],
      ],
    ] as const) {
      const { text, manifests } = await helmTemplate(...args);
      const file = join(dir, `${name}.yaml`);
      await writeFile(file, text);
      const r = await kubeconform(file);
      assert.deepEqual(r.messages, [], name);
      assert.equal(r.code, 0, name);
      assert.deepEqual(
        r.summary,
        { valid: manifests.length, invalid: 0, errors: 0, skipped: 0 },
        `${name}: every object checked against a schema`,
      );
    }
  });

  test('the validation fails on a misspelled field, a wrong type, and an unknown CRD field', async (t) => {
    const dir = await tempDir(t);
    const { manifests } = await helmTemplate('--values', EVERYTHING);
    const cases: [string, (ms: Manifest[]) => void, RegExp][] = [
      [
        'misspelled container field',
        (ms) => {
          const c = podSpec(find(ms, 'DaemonSet', '-collector')).containers[0] as Obj;
          c['imagePullPolicyy'] = c['imagePullPolicy'];
        },
        /additional properties 'imagePullPolicyy' not allowed/,
      ],
      [
        'port as a string',
        (ms) => {
          const c = podSpec(find(ms, 'StatefulSet', '-processor')).containers[0] as Container;
          (c.ports?.[0] as Obj)['containerPort'] = '9465';
        },
        /containerPort': got string, want integer/,
      ],
      [
        'misspelled security context field',
        (ms) => {
          const c = podSpec(find(ms, 'Deployment', '-exporter')).containers[0] as Container;
          (c.securityContext as Obj)['readOnlyRootFileSystem'] = true;
        },
        /additional properties 'readOnlyRootFileSystem' not allowed/,
      ],
      [
        'unknown ServiceMonitor endpoint field',
        (ms) => {
          const sm = find(ms, 'ServiceMonitor', 'vt-vfio-telemetry');
          ((sm.spec?.['endpoints'] as Obj[])[0] as Obj)['scrapeInterval'] = '30s';
        },
        /additional properties 'scrapeInterval' not allowed/,
      ],
      [
        'PrometheusRule alert without expr',
        (ms) => {
          const rule = find(ms, 'PrometheusRule', '-vfio-alerts');
          const groups = rule.spec?.['groups'] as { rules: Obj[] }[];
          delete (groups[0]?.rules[0] as Obj)['expr'];
        },
        /missing propert(y|ies) 'expr'/,
      ],
    ];
    for (const [name, mutate, expected] of cases) {
      const copy = structuredClone(manifests);
      mutate(copy);
      const file = join(dir, 'broken.yaml');
      await writeFile(file, copy.map((m) => stringify(m)).join('---\n'));
      const r = await kubeconform(file);
      assert.notEqual(r.code, 0, name);
      assert.equal(r.summary.invalid, 1, name);
      assert.match(r.messages.join('\n'), expected, name);
    }
  });

  test('default values: the three stages, hardened, with the identity and the spool they need', async () => {
    const { manifests } = await helmTemplate();
    assert.deepEqual(manifests.map((m) => `${m.kind}/${m.metadata.name}`).sort(), [
      'DaemonSet/vt-vfio-telemetry-collector',
      'Deployment/vt-vfio-telemetry-exporter',
      'PodDisruptionBudget/vt-vfio-telemetry-processor',
      'Service/vt-vfio-telemetry-collector',
      'Service/vt-vfio-telemetry-exporter',
      'Service/vt-vfio-telemetry-processor',
      'ServiceAccount/vt-vfio-telemetry',
      'StatefulSet/vt-vfio-telemetry-processor',
    ]);
    for (const m of manifests) assert.equal(m.metadata.namespace, 'telemetry', m.metadata.name);

    for (const [kind, suffix] of [
      ['DaemonSet', '-collector'],
      ['StatefulSet', '-processor'],
      ['Deployment', '-exporter'],
    ] as const) {
      const pod = podSpec(find(manifests, kind, suffix));
      assert.equal(pod.automountServiceAccountToken, false, kind);
      assert.deepEqual(pod.securityContext?.['seccompProfile'], { type: 'RuntimeDefault' }, kind);
      assert.equal(pod.securityContext?.['runAsNonRoot'], true, kind);
      const [container] = pod.containers;
      assert.ok(container);
      assert.deepEqual(
        container.securityContext,
        {
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          privileged: false,
          capabilities: { drop: ['ALL'] },
        },
        kind,
      );
    }

    const collector = find(manifests, 'DaemonSet', '-collector');
    const pod = podSpec(collector);
    assert.deepEqual(collector.spec?.['updateStrategy'], {
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: 1, maxSurge: 0 },
    });
    assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
    const spool = pod.volumes?.find((v) => v.name === 'spool');
    assert.deepEqual(spool?.['hostPath'], {
      path: '/var/lib/vfio-telemetry/spool',
      type: 'DirectoryOrCreate',
    });
    const chown = pod.initContainers?.[0];
    assert.deepEqual(chown?.securityContext?.['capabilities'], { drop: ['ALL'], add: ['CHOWN'] });
    assert.deepEqual(chown?.args ?? (chown as Obj)['command'], [
      'chown',
      '65532:65532',
      '/var/lib/vfio-telemetry/spool',
    ]);
    const sockets = pod.containers[0]?.volumeMounts?.find((v) => v.name === 'qmp-sockets');
    assert.deepEqual(sockets, {
      name: 'qmp-sockets',
      mountPath: '/run/vfio-telemetry',
      readOnly: true,
    });

    const processor = find(manifests, 'StatefulSet', '-processor');
    const headless = find(manifests, 'Service', '-processor');
    assert.equal(processor.spec?.['serviceName'], headless.metadata.name);
    assert.equal(headless.spec?.['clusterIP'], 'None');
    const id = podSpec(processor).containers[0]?.env?.find(
      (e) => e.name === 'VFIO_PROCESSOR_INSTANCE_ID',
    );
    assert.deepEqual(id?.valueFrom, { fieldRef: { fieldPath: 'metadata.name' } });
  });

  test("each stage's environment is a configuration the stage accepts", async () => {
    const parsers = {
      collect: (env: Record<string, string>, flags: Obj) =>
        parseCollectorConfig('unused', { env, flags: flags as never }),
      process: (env: Record<string, string>) => parseProcessorConfig({ env }),
      export: (env: Record<string, string>, flags: Obj) =>
        parseExporterConfig({ env, flags: flags as never }),
    };
    for (const values of [[], ['--values', EVERYTHING]]) {
      const { manifests } = await helmTemplate(...values);
      for (const m of manifests.filter((x) =>
        ['DaemonSet', 'StatefulSet', 'Deployment'].includes(x.kind),
      )) {
        const [container] = podSpec(m).containers;
        assert.ok(container);
        const [command, ...rest] = container.args ?? [];
        const flags: Obj = {};
        for (let i = 0; i < rest.length; i++) {
          const flag = (rest[i] ?? '').replace(/^--/, '');
          if (flag === 'libvirt')
            flags['libvirt'] = [...((flags['libvirt'] as string[]) ?? []), rest[++i]];
          else if (flag.startsWith('no-')) flags[flag.slice(3)] = false;
          else assert.fail(`${m.kind}: flag ${flag} not understood by this test`);
        }
        const parseStage = parsers[command as keyof typeof parsers];
        assert.ok(parseStage, `${m.kind}: command ${command}`);
        // Throws CONFIG_INVALID listing every problem, unknown VFIO_* variables included.
        const config = parseStage(envOf(container), flags) as unknown as Obj;
        assert.equal(config['httpHost'], '0.0.0.0');
      }
    }
  });

  test("KubeVirt: the launchers' sockets are listed by pattern under the kubelet's pod directory, mounted so new pods show up", async () => {
    const { manifests } = await helmTemplate('--values', EVERYTHING);
    const pod = podSpec(find(manifests, 'DaemonSet', '-collector'));
    const [container] = pod.containers;
    assert.ok(container);
    const env = envOf(container);
    assert.equal(
      env['VFIO_COLLECTOR_LIBVIRT_GLOBS'],
      'qemu+unix:///session?socket=/var/lib/kubelet/pods/*/volumes/kubernetes.io~empty-dir/libvirt-runtime/virtqemud-sock',
    );
    const config = parseCollectorConfig('unused', { env });
    assert.deepEqual(config.libvirtGlobs, [env['VFIO_COLLECTOR_LIBVIRT_GLOBS']]);
    const mount = container.volumeMounts?.find((m) => m.name === 'kubelet-pods');
    assert.deepEqual(mount, {
      name: 'kubelet-pods',
      mountPath: '/var/lib/kubelet/pods',
      readOnly: true,
      mountPropagation: 'HostToContainer',
    });
    const volume = pod.volumes?.find((v) => v.name === 'kubelet-pods');
    assert.deepEqual(volume?.['hostPath'], { path: '/var/lib/kubelet/pods', type: 'Directory' });
  });

  test('every secret file a stage is told about is mounted, read-only', async () => {
    const { manifests } = await helmTemplate('--values', EVERYTHING);
    let files = 0;
    for (const m of manifests.filter((x) =>
      ['DaemonSet', 'StatefulSet', 'Deployment'].includes(x.kind),
    )) {
      const pod = podSpec(m);
      const [container] = pod.containers;
      assert.ok(container);
      for (const [name, path] of Object.entries(envOf(container))) {
        if (!name.endsWith('_FILE')) continue;
        const mount: Mount | undefined = container.volumeMounts?.find((v) =>
          path.startsWith(`${v.mountPath}/`),
        );
        assert.ok(mount, `${m.kind}: ${name}=${path} is on no mount`);
        assert.equal(mount.readOnly, true);
        const volume = pod.volumes?.find((v) => v.name === mount.name) as Obj;
        const file = path.slice(mount.mountPath.length + 1);
        const projected = volume['projected'] as
          { sources: { secret: { items: { path: string }[] } }[] } | undefined;
        const items = projected?.sources.flatMap((s) => s.secret.items.map((i) => i.path)) ?? [];
        const secret = volume['secret'] as { secretName: string } | undefined;
        if (secret !== undefined) {
          // The chart's own web config Secret: its one key is the file.
          const rendered = find(manifests, 'Secret', '-web-config');
          assert.equal(secret.secretName, rendered.metadata.name);
          assert.deepEqual(Object.keys(rendered.stringData ?? {}), [file]);
        } else {
          assert.ok(
            items.includes(file),
            `${m.kind}: ${name}: ${file} not among ${items.join(', ')}`,
          );
        }
        files++;
      }
    }
    // 3 stages × (password, CA, certificate, key, web config)
    assert.equal(files, 15);
  });

  test('the PrometheusRules are infra/prometheus/rules, the dashboards infra/grafana/dashboards', async () => {
    assert.equal(
      resolve(CHART, 'files', await readlink(join(CHART, 'files/rules'))),
      join(ROOT, 'infra/prometheus/rules'),
    );
    assert.equal(
      resolve(CHART, 'files', await readlink(join(CHART, 'files/dashboards'))),
      join(ROOT, 'infra/grafana/dashboards'),
    );
    const { manifests } = await helmTemplate('--values', EVERYTHING);

    const ruleFiles = (await readdir(join(ROOT, 'infra/prometheus/rules'))).filter((f) =>
      f.endsWith('.yml'),
    );
    const rules = manifests.filter((m) => m.kind === 'PrometheusRule');
    assert.equal(rules.length, ruleFiles.length);
    for (const file of ruleFiles) {
      const source = parse(
        await readFile(join(ROOT, 'infra/prometheus/rules', file), 'utf8'),
      ) as Obj;
      const rule = find(manifests, 'PrometheusRule', `-${file.replace(/\.rules\.yml$/, '')}`);
      assert.deepEqual(rule.spec, source, file);
      assert.equal(rule.metadata.labels?.['release'], 'kube-prometheus-stack');
    }

    const dashboardFiles = (await readdir(join(ROOT, 'infra/grafana/dashboards'))).filter((f) =>
      f.endsWith('.json'),
    );
    const maps = manifests.filter((m) => m.kind === 'ConfigMap');
    assert.equal(maps.length, dashboardFiles.length);
    for (const file of dashboardFiles) {
      const map = find(maps, 'ConfigMap', `-${file.replace(/\.json$/, '')}`);
      assert.equal(map.metadata.labels?.['grafana_dashboard'], '1');
      assert.equal(map.metadata.namespace, 'monitoring');
      const text = await readFile(join(ROOT, 'infra/grafana/dashboards', file), 'utf8');
      assert.equal(map.data?.[file], text.replace(/\n$/, ''), file);
    }
  });

  test('helm package carries the linked rules and dashboards in the chart archive', async (t) => {
    const dir = await tempDir(t);
    const packed = await run(HELM, ['package', CHART, '--destination', dir]);
    assert.equal(packed.code, 0, packed.stderr);
    const archive = join(dir, 'vfio-telemetry-0.1.0.tgz');
    const r = await run(HELM, ['template', 'vt', archive, '--values', EVERYTHING]);
    assert.equal(r.code, 0, r.stderr);
    const kinds = parseAllDocuments(r.stdout).map((d) => (d.toJS() as Manifest | null)?.kind);
    const rules = await readdir(join(ROOT, 'infra/prometheus/rules'));
    const dashboards = await readdir(join(ROOT, 'infra/grafana/dashboards'));
    assert.equal(kinds.filter((k) => k === 'PrometheusRule').length, rules.length);
    assert.equal(kinds.filter((k) => k === 'ConfigMap').length, dashboards.length);
  });

  test('the ServiceMonitor scrapes each stage under the job the rules and dashboards name', async () => {
    const { manifests } = await helmTemplate('--values', EVERYTHING);
    const alerts = await readFile(
      join(ROOT, 'infra/prometheus/rules/vfio-alerts.rules.yml'),
      'utf8',
    );
    const jobs = /up\{job=~"([^"]+)"\}/.exec(alerts)?.[1]?.split('|');
    assert.deepEqual(jobs, ['vfio-collector', 'vfio-processor', 'vfio-exporter']);
    const monitor = find(manifests, 'ServiceMonitor', 'vt-vfio-telemetry');
    const jobLabel = monitor.spec?.['jobLabel'] as string;
    const selector = monitor.spec?.['selector'] as { matchLabels: Record<string, string> };
    const services = manifests.filter(
      (m) =>
        m.kind === 'Service' &&
        Object.entries(selector.matchLabels).every(([k, v]) => m.metadata.labels?.[k] === v),
    );
    assert.deepEqual(services.map((s) => s.metadata.labels?.[jobLabel]).sort(), [...jobs].sort());
    for (const s of services) {
      const ports = s.spec?.['ports'] as { name: string }[];
      assert.ok(
        ports.some((p) => p.name === 'http'),
        s.metadata.name,
      );
    }
    const endpoint = (monitor.spec?.['endpoints'] as Obj[])[0];
    assert.equal(endpoint?.['scheme'], 'https');
    // Basic auth is on: kubelet's readiness probe asks the open /healthz, not /readyz.
    const probe = podSpec(find(manifests, 'Deployment', '-exporter')).containers[0] as Obj;
    assert.deepEqual(probe['readinessProbe'], {
      httpGet: { path: '/healthz', port: 'http', scheme: 'HTTPS' },
      periodSeconds: 10,
      timeoutSeconds: 5,
      failureThreshold: 3,
    });
  });

  test('values.schema.json refuses a misspelled value key and a broker without a port', async () => {
    const typo = await run(HELM, ['template', 'vt', CHART, '--set', 'collector.spool.hostpath=/x']);
    assert.notEqual(typo.code, 0);
    assert.match(
      typo.stderr,
      /at '\/collector\/spool': additional properties 'hostpath' not allowed/,
    );
    const broker = await run(HELM, ['template', 'vt', CHART, '--set', 'kafka.brokers[0]=kafka']);
    assert.notEqual(broker.code, 0);
    assert.match(broker.stderr, /at '\/kafka\/brokers\/0': 'kafka' does not match pattern/);
  });

  test('a collector with no source, or no brokers, is refused at render time', async () => {
    const none = await run(HELM, ['template', 'vt', CHART, '--set', 'collector.qmp.enabled=false']);
    assert.notEqual(none.code, 0);
    assert.match(
      none.stderr,
      /collector: turn on collector.qmp, collector.libvirt or collector.kubevirt/,
    );
    const noBrokers = await run(HELM, ['template', 'vt', CHART, '--set', 'kafka.brokers=null']);
    assert.notEqual(noBrokers.code, 0);
    assert.match(noBrokers.stderr, /kafka.brokers: needs at least one HOST:PORT/);
  });
});
