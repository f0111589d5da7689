/**
 * Bounds the distinct values one label can take (Prometheus instrumentation guide: "keep the
 * cardinality of your metrics below 10 … over 100, investigate"). Every new label value is a new
 * time series for the life of the process — prom-client has no expiry — and the perf probe
 * measured scrape cost growing linearly with series. So the first `max` distinct values seen are
 * admitted; later new values fold into `other`, and the caller counts each fold.
 *
 * Values in `known` (the QEMU states, the prepare outcomes) are always admitted and do not use up
 * the budget, so a burst of junk values cannot push a real state into `other`.
 */
export const FOLDED_LABEL_VALUE = 'other';

export interface LabelGuard {
  /** The label value to use: `value` itself, or `other` once the budget is spent. */
  admit(value: string): string;
  /** Values admitted beyond `known`, at most `max`. */
  readonly admitted: number;
  /** How many times `admit` folded a value so far. */
  readonly folded: number;
}

export function createLabelGuard(max: number, known: readonly string[] = []): LabelGuard {
  const always = new Set(known);
  const seen = new Set<string>();
  let folded = 0;
  return {
    admit(value) {
      if (always.has(value) || seen.has(value)) return value;
      if (seen.size < max) {
        seen.add(value);
        return value;
      }
      folded++;
      return FOLDED_LABEL_VALUE;
    },
    get admitted() {
      return seen.size;
    },
    get folded() {
      return folded;
    },
  };
}
