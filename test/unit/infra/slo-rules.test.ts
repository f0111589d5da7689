/**
 * The SLO rule generator (infra/slo/slo-rules.ts) and its output: the checked-in
 * infra/prometheus/rules/vfio-slo.rules.yml must be exactly what the specs in infra/slo generate,
 * so an edit to either alone fails here. What the rules compute is promtool's to test
 * (infra/prometheus/tests/slo.test.yml, run by test/e2e/infra/promtool.test.ts).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { generateSloRulesText, SLO_RULES_FILE } from '../../../infra/slo/generate.ts';
import {
  BURN_TIERS,
  leMatcher,
  leSpellings,
  parseSloSpec,
  sloRuleFile,
  SloSpecError,
  type Rule,
} from '../../../infra/slo/slo-rules.ts';
import {
  DURATION_BUCKETS_SECONDS,
  LAG_BUCKETS_SECONDS,
  RDMA_BUDGET_SECONDS,
} from '../../../services/shared/core/bucket-policy.ts';

const named = { rdma_budget: RDMA_BUDGET_SECONDS };
const buckets = { duration: DURATION_BUCKETS_SECONDS, lag: LAG_BUCKETS_SECONDS };
const latencyDoc = {
  slo: 'prepare-latency',
  alert: 'VfioPrepareLatencySLOBurn',
  description: 'Fast.',
  objective: 0.99,
  window: '30d',
  by: ['target'],
  sli: {
    kind: 'latency',
    histogram: 'vfio_prepare_duration_seconds',
    matchers: 'outcome="completed"',
    threshold: 'rdma_budget',
  },
  min_bad_events: 3,
};

const alerts = (rules: Rule[]) => rules.filter((r) => r.alert !== undefined);

describe('SLO rules', () => {
  test('the checked-in rule file is what the specs generate', async () => {
    const checkedIn = await readFile(SLO_RULES_FILE, 'utf8');
    assert.equal(
      checkedIn,
      await generateSloRulesText(),
      'run node --import tsx infra/slo/generate.ts',
    );
  });

  test('the three SLOs, each with ratios over 7 windows and 4 burn-rate alerts', async () => {
    const file = parse(await generateSloRulesText()) as { groups: { rules: Rule[] }[] };
    const rules = file.groups.flatMap((g) => g.rules);
    const names = [...new Set(alerts(rules).map((r) => r.alert))].sort();
    assert.deepEqual(names, [
      'VfioPipelineFreshnessSLOBurn',
      'VfioPrepareLatencySLOBurn',
      'VfioPrepareSuccessSLOBurn',
    ]);
    for (const slo of ['prepare-latency', 'prepare-success', 'pipeline-freshness']) {
      const windows = rules
        .filter((r) => r.labels?.slo === slo && r.record?.startsWith('vfio:slo_sli_error:'))
        .map((r) => r.record?.replace('vfio:slo_sli_error:ratio_rate', ''));
      assert.deepEqual(windows, ['5m', '30m', '1h', '2h', '6h', '1d', '3d', '30d'], slo);
      const tiers = alerts(rules)
        .filter((r) => r.labels?.slo === slo)
        .map((r) => r.labels);
      assert.deepEqual(
        tiers.map((l) => [l?.severity, l?.burn_rate, l?.long_window, l?.short_window]),
        [
          ['page', '14.4', '1h', '5m'],
          ['page', '6', '6h', '30m'],
          ['ticket', '3', '1d', '2h'],
          ['ticket', '1', '3d', '6h'],
        ],
      );
    }
  });

  test('an alert needs both windows over burn × budget and, for events, 3 bad ones', () => {
    const spec = parseSloSpec(latencyDoc, 'latency', named, buckets);
    const rules = sloRuleFile([spec]).groups.flatMap((g) => g.rules);
    const exprs = alerts(rules).map((r) => r.expr);
    assert.equal(exprs.length, BURN_TIERS.length);
    assert.equal(
      exprs[0],
      [
        'vfio:slo_sli_error:ratio_rate1h{slo="prepare-latency"} > 0.144',
        'vfio:slo_sli_error:ratio_rate5m{slo="prepare-latency"} > 0.144',
        'vfio:slo_errors:increase1h{slo="prepare-latency"} >= 3',
      ].join('\n  and\n'),
    );
    assert.match(exprs[1] ?? '', /ratio_rate6h\{slo="prepare-latency"\} > 0\.06\n/);
    assert.match(exprs[2] ?? '', /ratio_rate1d\{slo="prepare-latency"\} > 0\.03\n/);
    assert.match(exprs[3] ?? '', /ratio_rate3d\{slo="prepare-latency"\} > 0\.01\n/);
    const ratio = rules.find((r) => r.record === 'vfio:slo_sli_error:ratio_rate1h');
    assert.match(ratio?.expr ?? '', /sum by \(target\)/);
    assert.match(ratio?.expr ?? '', /le=~"0\\\\\.05"/);
  });

  test('freshness counts stale evaluations and needs no minimum count', () => {
    const spec = parseSloSpec(
      {
        ...latencyDoc,
        slo: 'pipeline-freshness',
        alert: 'VfioPipelineFreshnessSLOBurn',
        by: [],
        sli: { kind: 'freshness', threshold: 30 },
      },
      'freshness',
      named,
      buckets,
    );
    const rules = sloRuleFile([spec]).groups.flatMap((g) => g.rules);
    assert.equal(rules[0]?.record, 'vfio:pipeline_stale:bool');
    assert.match(rules[0]?.expr ?? '', /le=~"30\|30\\\\\.0"/);
    for (const alert of alerts(rules)) assert.doesNotMatch(alert.expr, /slo_errors/);
  });

  test('le matches the bound as prom-client writes it and as Prometheus 3 stores it', () => {
    assert.deepEqual(leSpellings(0.05), ['0.05']);
    assert.deepEqual(leSpellings(1), ['1', '1.0']);
    assert.deepEqual(leSpellings(30), ['30', '30.0']);
    assert.deepEqual(leSpellings(0.00001), ['0.00001', '1e-05']);
    assert.deepEqual(leSpellings(1e21), ['1e+21']);
    assert.equal(leMatcher(1), 'le=~"1|1\\\\.0"');
    // The PromQL string "1|1\\.0" is the regex 1|1\.0: both spellings, nothing else.
    const regex = new RegExp(`^(?:${'1|1\\.0'})$`);
    assert.ok(regex.test('1') && regex.test('1.0') && !regex.test('10') && !regex.test('1x0'));
  });

  test('bad specs are refused with the file and the reason', () => {
    const bad = (change: Record<string, unknown>, reason: RegExp) =>
      assert.throws(
        () => parseSloSpec({ ...latencyDoc, ...change }, 'x.yaml', named, buckets),
        (e: unknown) => e instanceof SloSpecError && reason.test(e.message),
      );
    bad({ objective: 1 }, /x\.yaml: objective/);
    bad({ window: '28d' }, /window must be 30d/);
    bad({ alert: 'PrepareSlow' }, /alert must be/);
    bad({ min_bad_events: 0 }, /min_bad_events/);
    bad({ sli: { kind: 'quantile' } }, /sli\.kind/);
    const notABound = parseSloSpec(
      { ...latencyDoc, sli: { ...latencyDoc.sli, threshold: 0.045 } },
      'x.yaml',
      named,
      buckets,
    );
    assert.throws(() => sloRuleFile([notABound]), /0\.045 s is not a bucket bound/);
    const spec = parseSloSpec(latencyDoc, 'x.yaml', named, buckets);
    assert.throws(() => sloRuleFile([spec, spec]), /defined twice/);
  });
});
