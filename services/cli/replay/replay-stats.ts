import { nearestRankQuantile } from '../../shared/core/quantile.ts';
import type { TransitionRecord } from '../../shared/core/transition-record.ts';

/** Per-group durations for the replay table: prepares by (target, outcome), dwells by state. */
export interface DurationSummary {
  count: number;
  /** Seconds; null when the group has no durations (timed_out, aborted, unfinished). */
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
}

export interface PrepareRow extends DurationSummary {
  target: string;
  outcome: string;
}

export interface DwellRow extends DurationSummary {
  state: string;
}

export class ReplayStats {
  private readonly prepares = new Map<
    string,
    { target: string; outcome: string; values: number[]; count: number }
  >();
  private readonly dwells = new Map<string, number[]>();

  add(record: TransitionRecord): void {
    if (record.type === 'prepare') {
      const key = `${record.target}\u0000${record.outcome}`;
      let group = this.prepares.get(key);
      if (group === undefined) {
        group = { target: record.target, outcome: record.outcome, values: [], count: 0 };
        this.prepares.set(key, group);
      }
      group.count++;
      if (record.seconds !== null) group.values.push(record.seconds);
    } else {
      let values = this.dwells.get(record.state);
      if (values === undefined) {
        values = [];
        this.dwells.set(record.state, values);
      }
      values.push(record.seconds);
    }
  }

  prepareRows(): PrepareRow[] {
    return [...this.prepares.values()]
      .map((g) => ({ target: g.target, outcome: g.outcome, ...summarize(g.values, g.count) }))
      .sort((a, b) => a.target.localeCompare(b.target) || a.outcome.localeCompare(b.outcome));
  }

  dwellRows(): DwellRow[] {
    return [...this.dwells.entries()]
      .map(([state, values]) => ({ state, ...summarize(values, values.length) }))
      .sort((a, b) => a.state.localeCompare(b.state));
  }
}

function summarize(values: number[], count: number): DurationSummary {
  if (values.length === 0) return { count, p50: null, p90: null, p99: null, max: null };
  const sorted = Float64Array.from(values).sort();
  const asArray = Array.from(sorted);
  return {
    count,
    p50: nearestRankQuantile(asArray, 0.5),
    p90: nearestRankQuantile(asArray, 0.9),
    p99: nearestRankQuantile(asArray, 0.99),
    max: asArray[asArray.length - 1] as number,
  };
}
