/**
 * Every PromQL expression in infra/prometheus/rules and infra/grafana/dashboards, evaluated by a
 * real Prometheus (Debian's 2.42 and Prometheus 3) that scrapes metrics with the documented names (docs/metrics.md): each must
 * parse and return series, and every alert must go active. The targets are deliberately troubled
 * in-test stand-ins (./troubled-fleet.ts), because a healthy pipeline fires no alerts;
 * promql-pipeline.test.ts runs the same expressions against the real, running pipeline. The job
 * names come from infra/prometheus/prometheus.yml, so dashboards and alerts select on what the
 * shipped config scrapes.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { documentedMetricNames } from '../../helpers/metrics-doc.ts';
import {
  pollUntil,
  repoExpressions,
  repoRuleFiles,
  PROMETHEUS_VERSIONS,
  ruleExpressions,
  startPrometheus,
  type PromqlSource,
  type RunningPrometheus,
} from '../../helpers/prometheus.ts';
import { startTroubledFleet, type TroubledFleet } from './troubled-fleet.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DATA_TIMEOUT_MS = 60_000;

interface VectorResult {
  resultType: string;
  result: unknown[];
}

for (const version of PROMETHEUS_VERSIONS)
  describe(`PromQL of rules and dashboards against ${version.name}`, () => {
    let fleet: TroubledFleet | undefined;
    let prometheus: RunningPrometheus | undefined;
    let ruleFiles: string[];
    const expressions: PromqlSource[] = [];

    // Registered here, not inside `before`: an `after` called from a hook belongs to that hook and
    // would run as soon as the hook returns.
    after(async () => {
      await prometheus?.stop();
      await fleet?.close();
    });

    before(async () => {
      ruleFiles = await repoRuleFiles();
      fleet = await startTroubledFleet();
      const config = parse(
        await readFile(join(ROOT, 'infra/prometheus/prometheus.yml'), 'utf8'),
      ) as {
        scrape_configs: { job_name: string }[];
      };
      const jobs = config.scrape_configs.map((c) => c.job_name);
      for (const job of ['vfio-collector', 'vfio-processor', 'vfio-exporter']) {
        assert.ok(jobs.includes(job), `prometheus.yml scrapes ${job}`);
      }
      // A closed port among the exporters: VfioTargetDown needs a target that is down.
      const f = fleet;
      prometheus = await startPrometheus({
        binary: version.prometheus,
        targets: {
          'vfio-collector': f.collectors.map((e) => e.address),
          'vfio-processor': f.processors.map((e) => e.address),
          'vfio-exporter': [...f.exporters.map((e) => e.address), '127.0.0.1:1'],
        },
        ruleFiles,
      });

      expressions.push(...(await repoExpressions({ withAlerts: true })));
    });

    test('the stand-in targets expose exactly the documented metric names', async () => {
      const documented = await documentedMetricNames({ scrapedOnly: true });
      const served = new Set<string>();
      assert.ok(fleet);
      for (const e of [...fleet.collectors, ...fleet.processors, ...fleet.exporters]) {
        for (const m of await e.registry.getMetricsAsJSON()) served.add(m.name);
      }
      assert.deepEqual([...served].sort(), [...documented].sort());
    });

    test('found the expressions of every rule and dashboard panel', () => {
      assert.ok(expressions.length >= 60, `only ${expressions.length} expressions found`);
      for (const { where, expr } of expressions) {
        assert.doesNotMatch(expr, /\$|\[\[/, `${where}: unsubstituted Grafana variable in ${expr}`);
      }
    });

    test('every expression parses and returns series once scrapes have happened', async (t) => {
      const p = prometheus;
      assert.ok(p);
      for (const { where, expr } of expressions) {
        await t.test(where, async () => {
          const data = await pollUntil(
            `${where} to return series: ${expr}`,
            async () => {
              const response = await p.query(expr);
              // A parse error will not go away: fail now, with Prometheus's message.
              assert.equal(response.status, 'success', `${response.error ?? ''}\n${expr}`);
              const result = response.data as VectorResult;
              return result.result.length > 0 ? result : undefined;
            },
            DATA_TIMEOUT_MS,
            250,
          );
          assert.ok(['vector', 'scalar'].includes(data.resultType), data.resultType);
        });
      }
    });

    test('every rule group loads and evaluates without error', async () => {
      const p = prometheus;
      assert.ok(p);
      const groups = await pollUntil(
        'rules to have been evaluated',
        async () => {
          const response = await p.get('/api/v1/rules');
          const data = response.data as {
            groups: {
              name: string;
              rules: { name: string; health: string; lastError?: string }[];
            }[];
          };
          const rules = data.groups.flatMap((g) => g.rules);
          return rules.length > 0 && rules.every((r) => r.health !== 'unknown')
            ? data.groups
            : undefined;
        },
        DATA_TIMEOUT_MS,
      );
      const expected = (await ruleExpressions(ruleFiles)).length;
      assert.equal(groups.flatMap((g) => g.rules).length, expected);
      for (const rule of groups.flatMap((g) => g.rules)) {
        assert.equal(rule.health, 'ok', `${rule.name}: ${rule.lastError ?? ''}`);
      }
    });

    test('every alert goes active on the troubled fleet', async () => {
      const p = prometheus;
      assert.ok(p);
      const alertNames = (await ruleExpressions(ruleFiles))
        .map((s) => /^\S+ \S+ (Vfio\w+)$/.exec(s.where)?.[1])
        .filter((n): n is string => n !== undefined);
      assert.ok(alertNames.length >= 10);
      const active = await pollUntil(
        'every alert to be pending or firing',
        async () => {
          const response = await p.get('/api/v1/alerts');
          const data = response.data as {
            alerts: { labels: { alertname: string }; state: string }[];
          };
          const names = new Set(data.alerts.map((a) => a.labels.alertname));
          return alertNames.every((n) => names.has(n)) ? names : undefined;
        },
        DATA_TIMEOUT_MS,
        250,
      ).catch(() => undefined);
      // Listed by name rather than timing out on the first: which alerts cannot fire is the news.
      const missing = alertNames.filter((n) => !active?.has(n));
      assert.deepEqual(missing, [], `alerts that never went active: ${missing.join(', ')}`);
    });
  });
