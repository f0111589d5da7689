/**
 * A small benchmark harness: warm up, then time several runs of a whole workload and keep the
 * median, so one noisy period of this shared VM does not decide a figure. Results are JSON on
 * stdout so `bench/main.ts` can gather them from child processes (one process per benchmark,
 * pinned to one core by the orchestrator).
 */
/** What one benchmark reports: a table for BENCHMARKS.md. */
export interface BenchSection {
  title: string;
  columns: string[];
  rows: string[][];
  notes: string[];
}

export interface RunResult {
  name: string;
  /** Work items (events) per run. */
  items: number;
  /** Median items per second over the timed runs. */
  perSecond: number;
  /** Every timed run's items per second, in run order. */
  runs: number[];
}

export function measure(
  name: string,
  items: number,
  run: () => void,
  options: { warmup?: number; runs?: number } = {},
): RunResult {
  for (let i = 0; i < (options.warmup ?? 2); i++) run();
  const rates: number[] = [];
  for (let i = 0; i < (options.runs ?? 7); i++) {
    const start = process.hrtime.bigint();
    run();
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    rates.push(items / seconds);
  }
  return { name, items, perSecond: median(rates), runs: rates };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function quantile(sortedAscending: readonly number[], q: number): number {
  if (sortedAscending.length === 0) return Number.NaN;
  return sortedAscending[
    Math.min(sortedAscending.length - 1, Math.max(0, Math.ceil(q * sortedAscending.length) - 1))
  ] as number;
}
