/**
 * The metric names docs/metrics.md documents, read from its tables: the one list the stage
 * registries, the stand-in targets, the rules and the dashboards are checked against.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '../..');

/**
 * Every name in a table row of the document. With `scrapedOnly`, the "OTLP output" section is
 * left out: its series are pushed to Prometheus 3's OTLP receiver, never served on /metrics.
 */
export function metricNamesIn(markdown: string, options: { scrapedOnly: boolean }): Set<string> {
  const text = options.scrapedOnly
    ? markdown.replace(/^### OTLP output[^]*?(?=^#)/m, '')
    : markdown;
  return new Set([...text.matchAll(/^\| `([a-z_:]+)` +\|/gm)].map((m) => m[1] as string));
}

/** The names docs/metrics.md documents (see `metricNamesIn`). */
export async function documentedMetricNames(options: {
  scrapedOnly: boolean;
}): Promise<Set<string>> {
  return metricNamesIn(await readFile(join(ROOT, 'docs/metrics.md'), 'utf8'), options);
}
