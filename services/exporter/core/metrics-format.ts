/**
 * Which exposition format a `/metrics` request gets, from its `Accept` header (RFC 9110 §12.5.1):
 * OpenMetrics (with exemplars) when the client lists `application/openmetrics-text` with a
 * quality at least as high as any other type it accepts, else the classic text format. Prometheus
 * 2.42 sends
 *
 *   application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,
 *   text/plain;version=0.0.4;q=0.5,* /*;q=0.1
 *
 * and gets OpenMetrics; curl (`* /*`), a browser, or a scraper that asks for `text/plain` gets the
 * classic format. A malformed header is read as far as it parses, never thrown on; an unreadable `q` is 0.
 */
export type MetricsFormat = 'openmetrics' | 'classic';

const OPENMETRICS = 'application/openmetrics-text';

export function negotiateMetricsFormat(accept: string | undefined): MetricsFormat {
  if (accept === undefined) return 'classic';
  let openMetrics = 0;
  let other = 0;
  for (const range of accept.split(',')) {
    const [type = '', ...params] = range.split(';').map((p) => p.trim().toLowerCase());
    if (type === '') continue;
    let q = 1;
    for (const param of params) {
      const match = /^q\s*=(.*)$/.exec(param);
      // An unreadable weight counts as 0: the range is not acceptable.
      if (match !== null) q = Math.min(1, Math.max(0, Number((match[1] as string).trim()) || 0));
    }
    if (type === OPENMETRICS) openMetrics = Math.max(openMetrics, q);
    else other = Math.max(other, q);
  }
  return openMetrics > 0 && openMetrics >= other ? 'openmetrics' : 'classic';
}
