/**
 * The one reader of Prometheus text exposition (format 0.0.4, and OpenMetrics' sample lines) in
 * the tests: every test that looks at a /metrics page parses it here instead of matching lines.
 *
 *   metric_name [ "{" label_name "=" `"` label_value `"` { "," ... } [ "," ] "}" ] value [ timestamp ]
 *
 * Label values escape `\\`, `\"` and `\n`; values are Go floats (`NaN`, `+Inf`, `-Inf`, in any case). `#` lines
 * (HELP, TYPE, EOF) are comments; an OpenMetrics exemplar (` # {...} value`) after a sample is
 * dropped. A line that is none of these throws: a page the tests cannot read is a failure, not 0.
 */

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/** A Go float, as Prometheus reads it: `NaN` and `Inf` in any case (prom-client writes `Nan`). */
function parseValue(text: string, line: string): number {
  const lower = text.toLowerCase();
  if (lower === 'nan') return NaN;
  if (/^\+?inf(inity)?$/.test(lower)) return Infinity;
  if (/^-inf(inity)?$/.test(lower)) return -Infinity;
  const value = Number(text);
  if (text === '' || Number.isNaN(value)) throw new Error(`unparsable metrics value in: ${line}`);
  return value;
}

/** One sample line (not a comment, not blank). */
function parseSample(line: string): Sample {
  const name = NAME.exec(line)?.[0];
  if (name === undefined) throw new Error(`unparsable metrics line: ${line}`);
  let rest = line.slice(name.length);
  const labels: Record<string, string> = {};
  if (rest.startsWith('{')) {
    rest = rest.slice(1);
    for (;;) {
      rest = rest.trimStart();
      if (rest.startsWith('}')) break;
      const labelName = LABEL_NAME.exec(rest)?.[0];
      if (
        labelName === undefined ||
        rest[labelName.length] !== '=' ||
        rest[labelName.length + 1] !== '"'
      )
        throw new Error(`unparsable labels in metrics line: ${line}`);
      rest = rest.slice(labelName.length + 2);
      let value = '';
      for (;;) {
        const c = rest[0];
        if (c === undefined) throw new Error(`unterminated label value in metrics line: ${line}`);
        rest = rest.slice(1);
        if (c === '"') break;
        if (c === '\\') {
          const escaped = rest[0];
          rest = rest.slice(1);
          value += escaped === 'n' ? '\n' : (escaped ?? '');
        } else value += c;
      }
      labels[labelName] = value;
      rest = rest.trimStart();
      if (rest.startsWith(',')) rest = rest.slice(1);
      else if (!rest.startsWith('}')) throw new Error(`unparsable labels in metrics line: ${line}`);
    }
    rest = rest.slice(1);
  }
  if (!rest.startsWith(' ')) throw new Error(`unparsable metrics line: ${line}`);
  const exemplar = rest.indexOf(' # ');
  const fields = (exemplar < 0 ? rest : rest.slice(0, exemplar)).trim().split(/\s+/);
  if (fields.length > 2) throw new Error(`unparsable metrics line: ${line}`);
  return { name, labels, value: parseValue(fields[0] ?? '', line) };
}

/** Every sample of a /metrics page, in page order. Throws on a line it cannot read. */
export function parseMetricsText(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line.trim() === '' || line.startsWith('#')) continue;
    samples.push(parseSample(line));
  }
  return samples;
}

/** The samples named `name` whose labels include every one of `labels`. */
export function metricSamples(
  text: string,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): Sample[] {
  return parseMetricsText(text).filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
}

/**
 * The sum of the samples named `name` whose labels include `labels` (every label set when none
 * are given): a counter's total across its labels, or one labelled series. `whenAbsent` (0
 * unless given; NaN makes a missing metric fail any equality) when there are none.
 */
export function metricValue(
  text: string,
  name: string,
  labels: Readonly<Record<string, string>> = {},
  whenAbsent = 0,
): number {
  const samples = metricSamples(text, name, labels);
  return samples.length === 0 ? whenAbsent : samples.reduce((sum, s) => sum + s.value, 0);
}

/** A series' canonical key: the name and its labels sorted by name, `name{a="1",b="2"}`. */
export function seriesKey(
  name: string,
  labels: Readonly<Record<string, string | undefined>> = {},
): string {
  const parts = Object.entries(labels)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v}"`);
  return `${name}{${parts.join(',')}}`;
}

/** The page as a map from series key (`seriesKey`) to value. */
export function metricsBySeries(text: string): Map<string, number> {
  return new Map(parseMetricsText(text).map((s) => [seriesKey(s.name, s.labels), s.value]));
}

/** GETs `url` + `/metrics` (a stage's base URL) and returns the page's text. */
export async function fetchMetricsText(url: string, timeoutMs = 10_000): Promise<string> {
  const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) throw new Error(`GET ${url}/metrics answered ${response.status}`);
  return response.text();
}
