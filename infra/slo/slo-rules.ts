/**
 * SLO specs (infra/slo/*.yaml) → Prometheus recording and alerting rules, the multiwindow,
 * multi-burn-rate way of the Google SRE workbook (ch. 5, "Alerting on SLOs"). Pure: the caller
 * reads the specs and writes the file (infra/slo/generate.ts); docs/decisions.md says why this is
 * our own generator and not Sloth.
 *
 * Per SLO and per window w of 5m, 30m, 1h, 2h, 6h, 1d, 3d:
 *   vfio:slo_sli_error:ratio_rate<w>{slo}      share of bad events (or stale intervals) over w
 * per long window of an event SLO (1h, 6h, 1d, 3d):
 *   vfio:slo_errors:increase<w>{slo}           how many bad events that is (the low-traffic guard)
 * over the SLO window (30d), in a group of its own:
 *   vfio:slo_sli_error:ratio_rate30d{slo}, vfio:slo_error_budget_remaining:ratio{slo},
 *   vfio:slo_objective:ratio{slo}
 * and one alert rule per burn-rate tier, all named by the spec's `alert`:
 *   page   14.4 on 1h and 5m   (2 % of the budget in 1 hour)
 *   page   6    on 6h and 30m  (5 % in 6 hours)
 *   ticket 3    on 1d and 2h   (10 % in 1 day)
 *   ticket 1    on 3d and 6h   (10 % in 3 days)
 */

/** The four tiers of the workbook's table 5-8 for a 30-day window. */
export const BURN_TIERS = Object.freeze([
  { severity: 'page', burn: 14.4, long: '1h', short: '5m' },
  { severity: 'page', burn: 6, long: '6h', short: '30m' },
  { severity: 'ticket', burn: 3, long: '1d', short: '2h' },
  { severity: 'ticket', burn: 1, long: '3d', short: '6h' },
] as const);

export const SLI_WINDOWS = Object.freeze(['5m', '30m', '1h', '2h', '6h', '1d', '3d'] as const);

/** How a spec may name a threshold instead of repeating a number defined elsewhere. */
export interface NamedThresholds {
  /** `rdma_budget`: RDMA_BUDGET_SECONDS of services/shared/core/bucket-policy.ts. */
  readonly rdma_budget: number;
}

export type Sli =
  | {
      /** Share of a histogram's events above a bucket bound. */
      readonly kind: 'latency';
      readonly histogram: string;
      /** Label matchers (PromQL, without braces) for the events that count. */
      readonly matchers: string;
      readonly thresholdSeconds: number;
      /** The histogram's bucket bounds: the threshold must be one (no interpolation). */
      readonly buckets: readonly number[];
    }
  | {
      /** errors / total, two counter selectors. */
      readonly kind: 'ratio';
      readonly errors: string;
      readonly total: string;
    }
  | {
      /** Share of rule evaluations in which the pipeline was stale; see freshnessStaleExpr. */
      readonly kind: 'freshness';
      readonly thresholdSeconds: number;
      readonly buckets: readonly number[];
    };

export interface SloSpec {
  /** kebab-case id, the `slo` label value. */
  readonly slo: string;
  readonly alert: string;
  /** One sentence: what a good event is. */
  readonly description: string;
  readonly objective: number;
  /** The SLO window; only 30d is supported (the tiers' burn rates are for 30 days). */
  readonly window: '30d';
  /** Labels the SLI keeps (each value its own SLO), e.g. ['target']. */
  readonly by: readonly string[];
  readonly sli: Sli;
  /** Event SLIs: an alert also needs this many bad events in its long window (low traffic). */
  readonly minBadEvents: number;
}

export interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
export interface RuleGroup {
  name: string;
  rules: Rule[];
}

export class SloSpecError extends Error {
  override readonly name = 'SloSpecError';
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The matcher for one classic-histogram bucket bound that works on Prometheus 2 and 3.
 * Prometheus 3 normalizes `le` on ingestion to Go's float text with a ".0" on integers
 * (`le="1"` is stored as `le="1.0"`, 1e-05 stays 1e-05); Prometheus 2 stores what the client
 * wrote, and prom-client writes JavaScript's String(n) ("1", "0.00001"). So match both spellings.
 */
export function leMatcher(bound: number): string {
  const escape = (s: string) => s.replace(/[.+]/g, '\\\\$&');
  return `le=~"${leSpellings(bound).map(escape).join('|')}"`;
}

/** How a bucket bound is spelled in `le`: as prom-client writes it, as Prometheus 3 stores it. */
export function leSpellings(bound: number): string[] {
  if (!Number.isFinite(bound)) throw new SloSpecError(`bucket bound ${bound} is not finite`);
  return [...new Set([String(bound), goFloatText(bound)])];
}

/** Go's strconv.FormatFloat(f, 'g', -1, 64), plus ".0" when it has neither "." nor "e". */
function goFloatText(f: number): string {
  const exponent = Math.floor(Math.log10(Math.abs(f)));
  let text: string;
  if (f !== 0 && (exponent < -4 || exponent >= 21)) {
    const [mantissa = '', exp = ''] = f.toExponential().split('e');
    const sign = exp.startsWith('-') ? '-' : '+';
    const digits = exp.replace(/^[-+]/, '').padStart(2, '0');
    text = `${mantissa}e${sign}${digits}`;
  } else {
    text = String(f);
  }
  return /[.e]/.test(text) ? text : `${text}.0`;
}

/** 1 - objective, without the binary noise of the subtraction (0.99 → 0.01). */
const budgetOf = (objective: number): number => Number((1 - objective).toPrecision(12));
const round = (n: number): number => Number(n.toPrecision(12));

function byClause(by: readonly string[]): string {
  return by.length === 0 ? 'sum' : `sum by (${by.join(', ')})`;
}

function withMatchers(selector: string, extra: string): string {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$/.exec(selector.trim());
  if (m === null) throw new SloSpecError(`"${selector}" is not a metric selector`);
  const inner = [m[2] ?? '', extra].filter((s) => s.trim() !== '').join(', ');
  return `${m[1]}{${inner}}`;
}

/**
 * The stale-interval indicator of pipeline freshness, recorded at every evaluation: 1 when, in
 * the last two minutes, the exporter observed a transition more than the threshold after its closing
 * QEMU event (vfio_transition_delivery_lag_seconds), or a stage's upstream published while the
 * stage consumed nothing (processors for the collectors' events, exporters for the processors'
 * transitions); otherwise 0. An idle fleet is fresh: no traffic, no stale intervals.
 */
function freshnessStaleExpr(thresholdSeconds: number): string {
  const lag = 'vfio_transition_delivery_lag_seconds';
  // Two minutes: Prometheus 3's left-open ranges hold two samples even at a 1-minute scrape.
  const inc = (selector: string) => `(sum(increase(${selector}[2m])) or vector(0))`;
  return [
    'clamp_max(',
    `    (${inc(`${lag}_count`)} - ${inc(`${lag}_bucket{${leMatcher(thresholdSeconds)}}`)} > bool 0)`,
    `  + (${inc('vfio_collector_events_published_total')} > bool 0)`,
    `    * (${inc('vfio_processor_records_consumed_total')} == bool 0)`,
    `  + (${inc('vfio_processor_transitions_published_total')} > bool 0)`,
    `    * (${inc('vfio_exporter_records_consumed_total')} == bool 0),`,
    '  1',
    ')',
  ].join('\n');
}

export const FRESHNESS_STALE_RECORD = 'vfio:pipeline_stale:bool';

interface Sums {
  /** Bad events over a range, summed by the SLO's labels. */
  errors(range: string, fn: 'rate' | 'increase'): string;
  total(range: string, fn: 'rate' | 'increase'): string;
}

function eventSums(spec: SloSpec): Sums | null {
  const sum = byClause(spec.by);
  const { sli } = spec;
  if (sli.kind === 'latency') {
    const count = withMatchers(`${sli.histogram}_count`, sli.matchers);
    const good = withMatchers(
      `${sli.histogram}_bucket`,
      `${sli.matchers}, ${leMatcher(sli.thresholdSeconds)}`,
    );
    return {
      total: (r, fn) => `${sum} (${fn}(${count}[${r}]))`,
      errors: (r, fn) =>
        `(\n  ${sum} (${fn}(${count}[${r}]))\n    -\n  ${sum} (${fn}(${good}[${r}]))\n)`,
    };
  }
  if (sli.kind === 'ratio') {
    const total = (r: string, fn: string) => `${sum} (${fn}(${sli.total}[${r}]))`;
    return {
      total,
      // No error series before the first error (client libraries create a label set on its first
      // increment): then the errors are 0, not missing.
      errors: (r, fn) =>
        `(\n  ${sum} (${fn}(${sli.errors}[${r}]))\n    or\n  0 * ${total(r, fn)}\n)`,
    };
  }
  return null;
}

function errorRatioExpr(spec: SloSpec, range: string): string {
  const sums = eventSums(spec);
  if (sums === null) return `avg_over_time(${FRESHNESS_STALE_RECORD}[${range}])`;
  return `${sums.errors(range, 'rate')}\n  /\n${sums.total(range, 'rate')}`;
}

function checkThreshold(what: string, threshold: number, buckets: readonly number[]): void {
  if (!buckets.includes(threshold)) {
    throw new SloSpecError(
      `${what}: threshold ${threshold} s is not a bucket bound (${buckets.join(', ')}); ` +
        'the SLI would need interpolation',
    );
  }
}

/** The rule groups of one SLO. */
export function sloRuleGroups(spec: SloSpec): RuleGroup[] {
  const sli = spec.sli;
  if (sli.kind !== 'ratio') checkThreshold(spec.slo, sli.thresholdSeconds, sli.buckets);
  const slo = { slo: spec.slo };
  const budget = budgetOf(spec.objective);
  const sel = (name: string) => `${name}{slo="${spec.slo}"}`;
  const rules: Rule[] = [];
  if (sli.kind === 'freshness') {
    rules.push({ record: FRESHNESS_STALE_RECORD, expr: freshnessStaleExpr(sli.thresholdSeconds) });
  }
  for (const w of SLI_WINDOWS) {
    rules.push({
      record: `vfio:slo_sli_error:ratio_rate${w}`,
      expr: errorRatioExpr(spec, w),
      labels: slo,
    });
  }
  const sums = eventSums(spec);
  if (sums !== null) {
    for (const w of new Set(BURN_TIERS.map((t) => t.long))) {
      rules.push({
        record: `vfio:slo_errors:increase${w}`,
        expr: sums.errors(w, 'increase'),
        labels: slo,
      });
    }
  }
  const scope = spec.by.map((l) => `{{ $labels.${l} }}`).join(' ');
  for (const tier of BURN_TIERS) {
    const threshold = round(tier.burn * budget);
    const clauses = [
      `${sel(`vfio:slo_sli_error:ratio_rate${tier.long}`)} > ${threshold}`,
      `${sel(`vfio:slo_sli_error:ratio_rate${tier.short}`)} > ${threshold}`,
    ];
    if (sums !== null)
      clauses.push(`${sel(`vfio:slo_errors:increase${tier.long}`)} >= ${spec.minBadEvents}`);
    const spent = round(
      ((tier.burn * Number(tier.long.replace(/\D/g, '')) * (tier.long.endsWith('d') ? 24 : 1)) /
        (30 * 24)) *
        100,
    );
    rules.push({
      alert: spec.alert,
      expr: clauses.join('\n  and\n'),
      labels: {
        severity: tier.severity,
        ...slo,
        long_window: tier.long,
        short_window: tier.short,
        burn_rate: String(tier.burn),
      },
      annotations: {
        summary: `SLO ${spec.slo}${scope === '' ? '' : ` (${scope})`} is burning its error budget ${tier.burn}x too fast.`,
        description:
          `${spec.description} Objective ${round(spec.objective * 100)} % over ${spec.window}, so ` +
          `${round(budget * 100)} % may be bad. Over the last ${tier.long} more than ` +
          `${round(tier.burn * budget * 100)} % were bad, and over the last ${tier.short} too: a burn ` +
          `rate above ${tier.burn}, which ` +
          `spends ${spent} % of the ${spec.window} budget in ${tier.long}.`,
        runbook_url: `docs/runbooks/${spec.alert}.md`,
      },
    });
  }
  const budgetRules: Rule[] = [
    { record: 'vfio:slo_objective:ratio', expr: `vector(${spec.objective})`, labels: slo },
    {
      record: `vfio:slo_sli_error:ratio_rate${spec.window}`,
      expr: errorRatioExpr(spec, spec.window),
      labels: slo,
    },
    {
      record: 'vfio:slo_error_budget_remaining:ratio',
      expr: `1 - ${sel(`vfio:slo_sli_error:ratio_rate${spec.window}`)} / ${budget}`,
      labels: slo,
    },
  ];
  return [
    { name: `vfio-slo-${spec.slo}`, rules },
    // Its own group: 30 days of samples per evaluation is the costly part, and a deployment that
    // wants to evaluate it less often can set an interval here.
    { name: `vfio-slo-${spec.slo}-budget`, rules: budgetRules },
  ];
}

const str = (doc: Record<string, unknown>, key: string, where: string): string => {
  const v = doc[key];
  if (typeof v !== 'string' || v.trim() === '')
    throw new SloSpecError(`${where}: ${key} must be a non-empty string`);
  return v.trim();
};

function thresholdOf(sli: Record<string, unknown>, named: NamedThresholds, where: string): number {
  const t = sli.threshold;
  if (typeof t === 'number' && t > 0) return t;
  if (t === 'rdma_budget') return named.rdma_budget;
  throw new SloSpecError(`${where}: sli.threshold must be seconds (> 0) or rdma_budget`);
}

/** Validates one parsed YAML spec; `buckets` are the bounds of the histograms the SLIs read. */
export function parseSloSpec(
  doc: unknown,
  where: string,
  named: NamedThresholds,
  buckets: { duration: readonly number[]; lag: readonly number[] },
): SloSpec {
  if (!isRecord(doc)) throw new SloSpecError(`${where}: not a mapping`);
  const slo = str(doc, 'slo', where);
  if (!/^[a-z][a-z0-9-]*$/.test(slo)) throw new SloSpecError(`${where}: slo must be kebab-case`);
  const alert = str(doc, 'alert', where);
  if (!/^Vfio[A-Za-z]+SLOBurn$/.test(alert)) {
    throw new SloSpecError(`${where}: alert must be VfioXxxSLOBurn`);
  }
  const objective = doc.objective;
  if (typeof objective !== 'number' || !(objective > 0.5 && objective < 1)) {
    throw new SloSpecError(`${where}: objective must be a number between 0.5 and 1`);
  }
  if (doc.window !== '30d') throw new SloSpecError(`${where}: window must be 30d`);
  const by = doc.by ?? [];
  if (!Array.isArray(by) || !by.every((l) => typeof l === 'string' && /^[a-z_]+$/.test(l))) {
    throw new SloSpecError(`${where}: by must be a list of label names`);
  }
  const minBadEvents = doc.min_bad_events ?? 1;
  if (typeof minBadEvents !== 'number' || !Number.isInteger(minBadEvents) || minBadEvents < 1) {
    throw new SloSpecError(`${where}: min_bad_events must be a positive integer`);
  }
  const sliDoc = doc.sli;
  if (!isRecord(sliDoc)) throw new SloSpecError(`${where}: sli must be a mapping`);
  let sli: Sli;
  switch (sliDoc.kind) {
    case 'latency':
      sli = {
        kind: 'latency',
        histogram: str(sliDoc, 'histogram', where),
        matchers: typeof sliDoc.matchers === 'string' ? sliDoc.matchers : '',
        thresholdSeconds: thresholdOf(sliDoc, named, where),
        buckets: buckets.duration,
      };
      break;
    case 'ratio':
      sli = {
        kind: 'ratio',
        errors: str(sliDoc, 'errors', where),
        total: str(sliDoc, 'total', where),
      };
      break;
    case 'freshness':
      sli = {
        kind: 'freshness',
        thresholdSeconds: thresholdOf(sliDoc, named, where),
        buckets: buckets.lag,
      };
      break;
    default:
      throw new SloSpecError(`${where}: sli.kind must be latency, ratio or freshness`);
  }
  return {
    slo,
    alert,
    description: str(doc, 'description', where),
    objective,
    window: '30d',
    by: by as string[],
    sli,
    minBadEvents,
  };
}

/** All rule groups of several SLOs, in the given order; SLO ids must be distinct. */
export function sloRuleFile(specs: readonly SloSpec[]): { groups: RuleGroup[] } {
  const ids = specs.map((s) => s.slo);
  const duplicate = ids.find((id, i) => ids.indexOf(id) !== i);
  if (duplicate !== undefined) throw new SloSpecError(`slo ${duplicate} is defined twice`);
  return { groups: specs.flatMap(sloRuleGroups) };
}
