/**
 * The Grafana dashboards and provisioning: fixed uids, a recent schema, every query on the
 * provisioned Prometheus datasource by uid (no numeric ids, no import-time inputs), and every
 * metric they or the rules use is one docs/metrics.md documents or a recording rule defines.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { BURN_TIERS, SLI_WINDOWS } from '../../../infra/slo/slo-rules.ts';
import { documentedMetricNames } from '../../helpers/metrics-doc.ts';
import { dashboardExpressions, ruleExpressions, type Json } from '../../helpers/prometheus.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DASHBOARDS = join(ROOT, 'infra/grafana/dashboards');
const RULES = join(ROOT, 'infra/prometheus/rules');
const EXPECTED = new Map([
  [
    'vfio-migration-latency.json',
    { uid: 'vfio-migration-latency', title: 'VFIO migration latency' },
  ],
  [
    'vfio-pipeline-health.json',
    { uid: 'vfio-pipeline-health', title: 'vfio-telemetry pipeline health' },
  ],
  ['vfio-slo.json', { uid: 'vfio-slo', title: 'vfio-telemetry SLOs' }],
]);

async function datasourceUid(): Promise<string> {
  const file = join(ROOT, 'infra/grafana/provisioning/datasources/prometheus.yml');
  const parsed = parse(await readFile(file, 'utf8')) as {
    datasources: { name: string; uid: string; type: string }[];
  };
  assert.equal(parsed.datasources.length, 1);
  const [ds] = parsed.datasources;
  assert.equal(ds?.name, 'Prometheus');
  assert.equal(ds?.type, 'prometheus');
  return ds.uid;
}

async function dashboards(): Promise<[string, Record<string, Json>][]> {
  const files = (await readdir(DASHBOARDS)).filter((f) => f.endsWith('.json')).sort();
  return Promise.all(
    files.map(
      async (f) =>
        [f, JSON.parse(await readFile(join(DASHBOARDS, f), 'utf8'))] as [
          string,
          Record<string, Json>,
        ],
    ),
  );
}

/** Every value under a `datasource` key, anywhere in the JSON. */
function datasourceRefs(node: Json, found: Json[] = []): Json[] {
  if (Array.isArray(node)) node.forEach((n) => datasourceRefs(n, found));
  else if (node !== null && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === 'datasource') found.push(value);
      else datasourceRefs(value, found);
    }
  }
  return found;
}

describe('Grafana', () => {
  test('dashboards have fixed uids, titles and a recent schema', async () => {
    const all = await dashboards();
    assert.deepEqual(
      all.map(([f]) => f),
      [...EXPECTED.keys()].sort(),
    );
    for (const [file, d] of all) {
      assert.equal(d.uid, EXPECTED.get(file)?.uid, file);
      assert.equal(d.title, EXPECTED.get(file)?.title, file);
      assert.ok(typeof d.schemaVersion === 'number' && d.schemaVersion >= 39, `${file} schema`);
      assert.equal(d.id, undefined, `${file} carries an instance id`);
    }
  });

  test('every query uses the provisioned datasource by uid', async () => {
    const uid = await datasourceUid();
    for (const [file, d] of await dashboards()) {
      const text = JSON.stringify(d);
      assert.doesNotMatch(text, /datasourceId|\$\{DS_|__inputs/, file);
      for (const ref of datasourceRefs(d)) {
        const builtIn =
          JSON.stringify(ref) === JSON.stringify({ type: 'grafana', uid: '-- Grafana --' });
        assert.ok(
          builtIn || JSON.stringify(ref) === JSON.stringify({ type: 'prometheus', uid }),
          `${file}: ${JSON.stringify(ref)}`,
        );
      }
    }
  });

  test('the latency heatmap reads the classic histogram as buckets', async () => {
    const [, latency] =
      (await dashboards()).find(([f]) => f === 'vfio-migration-latency.json') ?? [];
    const heatmap = (latency?.panels as Json[]).find(
      (p) => p !== null && typeof p === 'object' && !Array.isArray(p) && p.type === 'heatmap',
    ) as Record<string, Json> | undefined;
    assert.ok(heatmap);
    const [target] = heatmap.targets as Record<string, Json>[];
    assert.equal(target?.format, 'heatmap');
    assert.match(
      typeof target?.expr === 'string' ? target.expr : '',
      /^sum\(increase\(vfio_prepare_duration_seconds_bucket\{.*\}\[\$__rate_interval\]\)\) by \(le\)$/,
    );
    assert.equal((heatmap.options as Record<string, Json>).calculate, false);
  });

  test('dashboards and rules use only documented metrics and recording rules', async () => {
    const documented = await documentedMetricNames({ scrapedOnly: false });
    const ruleFiles = (await readdir(RULES))
      .filter((f) => f.endsWith('.rules.yml'))
      .map((f) => join(RULES, f));
    const rules = await ruleExpressions(ruleFiles);
    const recorded = new Set(rules.map((r) => r.where.split(' ').at(-1)));
    const sources = [...rules];
    for (const [file, d] of await dashboards()) sources.push(...dashboardExpressions(d, file));
    for (const { where, expr } of sources) {
      for (const [name] of expr.matchAll(/\bvfio[_:][a-z0-9_:]*/g)) {
        const base = name.replace(/_(bucket|count|sum)$/, '');
        assert.ok(
          documented.has(base) || recorded.has(name),
          `${where}: ${name} is not documented`,
        );
      }
    }
  });

  test('latency panels ask for exemplars, and exemplars link to the VM', async () => {
    const [, latency] =
      (await dashboards()).find(([f]) => f === 'vfio-migration-latency.json') ?? [];
    const panels = (latency?.panels ?? []) as Record<string, Json>[];
    const exemplarTargets = panels.flatMap((p) =>
      ((p.targets ?? []) as Record<string, Json>[])
        .filter((t) => t.exemplar === true)
        .map(() => p.title),
    );
    assert.deepEqual(exemplarTargets.sort(), [
      'Prepare latency distribution (completed)',
      'Prepare latency quantiles (completed)',
      'Slowest devices (exemplars)',
      'p99 by host (completed)',
    ]);
    const table = panels.find((p) => p.type === 'table');
    assert.equal(table?.title, 'Slowest devices (exemplars)');
    assert.equal(table?.id, 21);
    const transforms = (table?.transformations as Record<string, Json>[]).map((x) => x.id);
    assert.deepEqual(transforms, [
      'configFromData',
      'merge',
      'filterByValue',
      'filterByValue',
      'organize',
      'sortBy',
      'limit',
    ]);
    // The budget is marked from the vfio:rdma_budget_seconds rule, never copied as a number.
    const [, budgetQuery] = table?.targets as Record<string, Json>[];
    assert.equal(budgetQuery?.expr, 'vfio:rdma_budget_seconds');
    assert.match(
      JSON.stringify(table?.transformations),
      new RegExp(`"configRefId":${JSON.stringify(budgetQuery?.refId)}.*"handlerKey":"threshold1"`),
    );
    const variables = (
      (latency?.templating as Record<string, Json>).list as Record<string, Json>[]
    ).map((v) => `${JSON.stringify(v.name)}:${JSON.stringify(v.type)}`);
    assert.ok(variables.includes('"vm":"textbox"'), variables.join());

    const file = join(ROOT, 'infra/grafana/provisioning/datasources/prometheus.yml');
    const parsed = parse(await readFile(file, 'utf8')) as {
      datasources: {
        jsonData: { exemplarTraceIdDestinations?: { name: string; url: string }[] };
      }[];
    };
    const links = parsed.datasources[0]?.jsonData.exemplarTraceIdDestinations ?? [];
    const vm = links.find((l) => l.name === 'vm');
    // $$ is Grafana provisioning's escape for a literal $.
    assert.equal(
      vm?.url,
      '/d/vfio-migration-latency/vfio-migration-latency?var-vm=$${__value.raw}&viewPanel=21',
    );
    assert.ok(links.some((l) => l.name === 'host'));
  });

  test('the SLO dashboard: budget remaining, burn rates over every window, worst, exemplars', async () => {
    const [, slo] = (await dashboards()).find(([f]) => f === 'vfio-slo.json') ?? [];
    const panels = (slo?.panels ?? []) as Record<string, Json>[];
    const byTitle = (title: string) => {
      const panel = panels.find((p) => p.title === title);
      assert.ok(panel, title);
      return { panel, targets: panel.targets as { expr: string; exemplar?: boolean }[] };
    };
    const exprs = (title: string) => byTitle(title).targets.map((t) => t.expr);

    assert.match(exprs('Error budget remaining')[0] ?? '', /vfio:slo_error_budget_remaining:ratio/);
    // One column per window the SLO rules record, each the error ratio over (1 - objective).
    const perWindow = byTitle('Burn rate per window').targets;
    assert.deepEqual(
      perWindow.map((t) => /ratio_rate(\w+)\{/.exec(t.expr)?.[1]),
      [...SLI_WINDOWS],
    );
    for (const t of perWindow) {
      assert.match(t.expr, /\/ on \(slo\) group_left \(\)\n\(1 - vfio:slo_objective:ratio\)$/);
    }
    // The graphs draw the alerts' own thresholds on their long windows.
    for (const [title, severity] of [
      ['Burn rate, paging windows', 'page'],
      ['Burn rate, ticket windows', 'ticket'],
    ] as const) {
      const { panel } = byTitle(title);
      const tiers = BURN_TIERS.filter((tier) => tier.severity === severity);
      assert.deepEqual(
        exprs(title).map((e) => /ratio_rate(\w+)\{/.exec(e)?.[1]),
        tiers.map((tier) => tier.long),
      );
      const steps = (
        ((panel.fieldConfig as Record<string, Json>).defaults as Record<string, Json>)
          .thresholds as { steps: { value: number | null }[] }
      ).steps;
      assert.deepEqual(
        steps.map((step) => step.value).filter((v) => v !== null),
        tiers.map((tier) => tier.burn).sort((a, b) => a - b),
      );
    }
    assert.match(exprs('Worst target states (1d burn rate)')[0] ?? '', /^topk\(10,/);
    const hosts = exprs('Worst hosts (1d burn rate)');
    assert.equal(hosts.length, 2);
    for (const e of hosts) assert.match(e, /^topk\(10,[^]*sum by \(host\)/);
    // Exemplars name the devices; the table takes the budget from the rule, not a copy.
    const exemplarPanels = panels
      .filter((p) => (p.targets as Record<string, Json>[] | undefined)?.some((t) => t.exemplar))
      .map((p) => p.title);
    assert.deepEqual(exemplarPanels, [
      'p99 by target state, with exemplars',
      'Devices that spent the latency budget (exemplars)',
    ]);
    const table = byTitle('Devices that spent the latency budget (exemplars)');
    assert.equal(table.targets[1]?.expr, 'vfio:rdma_budget_seconds');
    assert.match(JSON.stringify(table.panel.transformations), /"configRefId":"B".*"threshold1"/);
  });
});
