/**
 * The Prometheus config and rules as promtool sees them: `check config`, `check rules` and the
 * unit tests in infra/prometheus/tests (every alert firing and quiet, every recording rule's
 * value). Also what promtool does not check: each alert has a test both ways, a severity, the
 * annotations and an existing runbook, and the RDMA budget is defined once and agrees with the
 * bucket policy.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { leSpellings } from '../../../infra/slo/slo-rules.ts';
import {
  dashboardExpressions,
  PROMETHEUS_VERSIONS,
  ruleExpressions,
  type Json,
} from '../../helpers/prometheus.ts';
import {
  DURATION_BUCKETS_SECONDS,
  RDMA_BUDGET_SECONDS,
} from '../../../services/shared/core/bucket-policy.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PROMETHEUS_DIR = join(ROOT, 'infra/prometheus');
const RULES_DIR = join(PROMETHEUS_DIR, 'rules');
const TESTS_DIR = join(PROMETHEUS_DIR, 'tests');

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleTest {
  name: string;
  alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[];
  promql_expr_test?: { expr: string }[];
}

async function run(
  promtoolBinary: string,
  args: string[],
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(promtoolBinary, args, { cwd: ROOT }, (error, stdout, stderr) => {
      // Not installed is a failure with a pointer, never a pass: the Debian prometheus package
      // provides promtool, and infra/setup-system.sh builds Prometheus 3's.
      if (error?.code === 'ENOENT') {
        resolve({ code: -1, output: `${promtoolBinary} not found: run infra/setup-system.sh` });
        return;
      }
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

async function yamlFiles(dir: string, suffix: string): Promise<string[]> {
  return (await readdir(dir))
    .filter((f) => f.endsWith(suffix))
    .sort()
    .map((f) => join(dir, f));
}

async function allRules(except: readonly string[] = []): Promise<Rule[]> {
  const rules: Rule[] = [];
  for (const file of await yamlFiles(RULES_DIR, '.rules.yml')) {
    if (except.some((name) => file.endsWith(`/${name}`))) continue;
    const parsed = parse(await readFile(file, 'utf8')) as { groups: { rules: Rule[] }[] };
    rules.push(...parsed.groups.flatMap((g) => g.rules));
  }
  return rules;
}

async function allRuleTests(): Promise<RuleTest[]> {
  const tests: RuleTest[] = [];
  for (const file of await yamlFiles(TESTS_DIR, '.test.yml')) {
    tests.push(...(parse(await readFile(file, 'utf8')) as { tests: RuleTest[] }).tests);
  }
  return tests;
}

for (const version of PROMETHEUS_VERSIONS) {
  const promtool = (args: string[]) => run(version.promtool, args);
  describe(`promtool of ${version.name}`, () => {
    test('check config: prometheus.yml and the rule files it loads are valid', async () => {
      const { code, output } = await promtool([
        'check',
        'config',
        'infra/prometheus/prometheus.yml',
      ]);
      assert.equal(code, 0, output);
      assert.match(output, /SUCCESS: 3 rule files found/);
      assert.match(output, /is valid prometheus config file syntax/);
    });

    test('check rules: every rule file passes, with every rule counted', async () => {
      const files = await yamlFiles(RULES_DIR, '.rules.yml');
      const { code, output } = await promtool(['check', 'rules', ...files]);
      assert.equal(code, 0, output);
      const counted = [...output.matchAll(/SUCCESS: (\d+) rules found/g)].reduce(
        (sum, m) => sum + Number(m[1]),
        0,
      );
      assert.equal(counted, (await allRules()).length);
    });

    test('test rules: every unit test file passes', async () => {
      const files = await yamlFiles(TESTS_DIR, '.test.yml');
      assert.ok(files.length >= 2);
      const { code, output } = await promtool(['test', 'rules', ...files]);
      assert.equal(code, 0, output);
      assert.equal(output.match(/^\s+SUCCESS$/gm)?.length, files.length, output);
      assert.doesNotMatch(output, /FAILED/);
    });

    test('a broken rule file fails check rules, and a wrong expectation fails test rules', async (t) => {
      const dir = await mkdtemp(join(tmpdir(), 'vfio-promtool-'));
      t.after(() => rm(dir, { recursive: true, force: true }));
      const broken = join(dir, 'broken.rules.yml');
      await writeFile(
        broken,
        'groups:\n  - name: broken\n    rules:\n      - alert: Broken\n        expr: sum(rate(vfio_collector_reconnects_total[5m])\n',
      );
      const checked = await promtool(['check', 'rules', broken]);
      assert.notEqual(checked.code, 0);
      assert.match(checked.output, /FAILED|parse error|unclosed/i);

      const wrong = join(dir, 'wrong.test.yml');
      await writeFile(
        wrong,
        [
          'rule_files:',
          `  - ${join(RULES_DIR, 'vfio-alerts.rules.yml')}`,
          '  - ' + join(RULES_DIR, 'vfio-recording.rules.yml'),
          'evaluation_interval: 1m',
          'tests:',
          '  - interval: 1m',
          '    input_series:',
          '      - series: up{job="vfio-exporter",instance="e1:9466"}',
          '        values: 1x20',
          '    alert_rule_test:',
          '      - eval_time: 10m',
          '        alertname: VfioTargetDown',
          '        exp_alerts:',
          '          - exp_labels: { severity: warning, job: vfio-exporter, instance: e1:9466 }',
          '',
        ].join('\n'),
      );
      const tested = await promtool(['test', 'rules', wrong]);
      assert.notEqual(tested.code, 0);
      assert.match(tested.output, /FAILED/);
    });
  });
}

describe('rules beyond promtool', () => {
  test('every alert has a test where it fires and one where it stays quiet', async () => {
    const alerts = (await allRules()).flatMap((r) => (r.alert === undefined ? [] : [r.alert]));
    assert.ok(alerts.length >= 10);
    const cases = (await allRuleTests()).flatMap((t) => t.alert_rule_test ?? []);
    for (const alert of alerts) {
      const mine = cases.filter((c) => c.alertname === alert);
      assert.ok(
        mine.some((c) => c.exp_alerts.length > 0),
        `${alert} has no firing test`,
      );
      assert.ok(
        mine.some((c) => c.exp_alerts.length === 0),
        `${alert} has no quiet test`,
      );
    }
  });

  test('every recording rule has an expected value in a test', async () => {
    const recorded = new Set((await allRules()).flatMap((r) => (r.record ? [r.record] : [])));
    const tested = (await allRuleTests())
      .flatMap((t) => t.promql_expr_test ?? [])
      .map((c) => c.expr);
    for (const name of recorded) {
      assert.ok(
        tested.some((expr) => expr.includes(name)),
        `recording rule ${name} is not tested`,
      );
    }
  });

  test('every alert has a severity, summary, description and an existing runbook', async () => {
    for (const rule of await allRules()) {
      if (rule.alert === undefined) continue;
      const name = rule.alert;
      // SLO burn-rate alerts page or open a ticket (the SRE workbook's two kinds); the others
      // keep the three levels.
      const levels = name.endsWith('SLOBurn') ? /^(page|ticket)$/ : /^(critical|warning|info)$/;
      assert.match(rule.labels?.severity ?? '', levels, name);
      assert.ok(rule.annotations?.summary, `${name}: summary`);
      assert.ok(rule.annotations?.description, `${name}: description`);
      assert.equal(rule.annotations?.runbook_url, `docs/runbooks/${name}.md`);
      await access(join(ROOT, 'docs/runbooks', `${name}.md`));
      const runbook = await readFile(join(ROOT, 'docs/runbooks', `${name}.md`), 'utf8');
      for (const section of ['Meaning', 'Impact', 'Diagnosis', 'Mitigation']) {
        assert.match(runbook, new RegExp(`^## ${section}`, 'm'), `${name}.md: ${section}`);
      }
    }
  });

  test('the RDMA budget is defined once, equals the bucket policy and is a bucket bound', async () => {
    const rules = await allRules();
    const budget = rules.filter((r) => r.record === 'vfio:rdma_budget_seconds');
    assert.equal(budget.length, 1);
    const value = Number(/^vector\(([\d.]+)\)$/.exec(budget[0]?.expr.trim() ?? '')?.[1]);
    assert.equal(value, RDMA_BUDGET_SECONDS);
    assert.ok(DURATION_BUCKETS_SECONDS.includes(value));
    // Nowhere else: no rule or dashboard repeats the number. The generated SLO rules do (their
    // `le` matcher), from the same constant: slo-rules.test.ts keeps them in step.
    const literal = new RegExp(`(?<![\\d.])${String(value).replace('.', '\\.')}(?![\\d])`);
    const handWritten = await allRules(['vfio-slo.rules.yml']);
    for (const rule of handWritten.filter((r) => r.record !== 'vfio:rdma_budget_seconds')) {
      assert.doesNotMatch(rule.expr, literal, `${rule.record ?? rule.alert} repeats the budget`);
    }
    const dashboards = join(ROOT, 'infra/grafana/dashboards');
    for (const file of await yamlFiles(dashboards, '.json')) {
      assert.doesNotMatch(await readFile(file, 'utf8'), literal, `${file} repeats the budget`);
    }
  });

  test('every le matcher takes a bucket bound as Prometheus 2 and 3 spell it', async () => {
    // Prometheus 3 stores le="1" as le="1.0" (and le="30" as "30.0"); Prometheus 2 keeps what the
    // exporter wrote ("1"). le="1" passes promtool and never matches on Prometheus 3; le="1.0"
    // never matches on Prometheus 2. A bound must be matched in every spelling it has.
    const sources = await ruleExpressions(await yamlFiles(RULES_DIR, '.rules.yml'));
    const dashboards = join(ROOT, 'infra/grafana/dashboards');
    for (const file of await yamlFiles(dashboards, '.json')) {
      const dashboard = JSON.parse(await readFile(file, 'utf8')) as Json;
      sources.push(...dashboardExpressions(dashboard, file));
    }
    let checked = 0;
    for (const { where, expr } of sources) {
      for (const m of expr.matchAll(/\ble\s*(=~|!~|=|!=)\s*"((?:[^"\\]|\\.)*)"/g)) {
        const [, op = '', text = ''] = m;
        const pattern = text.replace(/\\\\/g, '\\');
        const bounds = [...pattern.matchAll(/\d+(?:\\?\.\d+)?(?:e[-+]?\d+)?/g)].map((n) =>
          Number(n[0].replace('\\', '')),
        );
        for (const bound of bounds.filter((b) => b !== Infinity)) {
          checked++;
          for (const spelling of leSpellings(bound)) {
            const matches = op.endsWith('~')
              ? new RegExp(`^(?:${pattern})$`).test(spelling)
              : pattern === spelling;
            assert.ok(matches, `${where}: le${op}"${text}" misses le="${spelling}"`);
          }
        }
      }
      // count_values("le", …) writes Go's %f text ("1" for 1): right on Prometheus 3 only for
      // bounds whose two spellings agree.
      if (expr.includes('count_values("le", vfio:rdma_budget_seconds)')) {
        checked++;
        assert.equal(leSpellings(RDMA_BUDGET_SECONDS).length, 1, `${where}: count_values le`);
      }
    }
    assert.ok(checked >= 5, `only ${checked} le matchers found`);
    // And the check itself catches the classic mistake.
    assert.deepEqual(leSpellings(1), ['1', '1.0']);
  });
});
