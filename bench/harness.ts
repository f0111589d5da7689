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

/** Two workloads timed in turn (A B A B ...), with the CPU time each run cost the process. */
export interface PairedResult {
  a: RunResult;
  b: RunResult;
  /** Median over rounds of (A's CPU time / B's CPU time) for the same items. */
  cpuRatio: number;
  /** Each round's CPU ratio, in round order. */
  cpuRatios: number[];
}

/**
 * Times `a` and `b` alternately, so a machine whose speed drifts (a shared VM) slows both alike,
 * and takes their ratio per round from process CPU time (`process.cpuUsage`), which the other
 * processes on the machine do not add to. The wall-clock rates are kept as well.
 */
export function measurePaired(
  names: [string, string],
  items: number,
  a: () => void,
  b: () => void,
  options: { warmup?: number; runs?: number } = {},
): PairedResult {
  for (let i = 0; i < (options.warmup ?? 2); i++) {
    a();
    b();
  }
  const rates: [number[], number[]] = [[], []];
  const cpuRatios: number[] = [];
  const timed = (run: () => void, into: number[]): number => {
    const cpu = process.cpuUsage();
    const start = process.hrtime.bigint();
    run();
    into.push(items / (Number(process.hrtime.bigint() - start) / 1e9));
    const used = process.cpuUsage(cpu);
    return used.user + used.system;
  };
  for (let i = 0; i < (options.runs ?? 7); i++) {
    const cpuA = timed(a, rates[0]);
    const cpuB = timed(b, rates[1]);
    cpuRatios.push(cpuA / cpuB);
  }
  const result = (name: string, runs: number[]): RunResult => ({
    name,
    items,
    perSecond: median(runs),
    runs,
  });
  return {
    a: result(names[0], rates[0]),
    b: result(names[1], rates[1]),
    cpuRatio: median(cpuRatios),
    cpuRatios,
  };
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
