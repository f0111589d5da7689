import { REJECT_REASONS } from '../../shared/core/qmp-message.ts';
import type { PrepareRecord } from '../../shared/core/transition-record.ts';
import type { ReplaySummary } from './replay-session.ts';
import type { DwellRow, PrepareRow } from './replay-stats.ts';

/** The operator's at-a-glance view of a replay: latency by target and outcome, dwell by state. */
export function formatReplayTable(
  prepares: readonly PrepareRow[],
  dwells: readonly DwellRow[],
  summary: ReplaySummary,
  top?: { n: number; prepares: readonly PrepareRecord[] },
): string {
  const lines: string[] = [];
  lines.push('Prepare to completion');
  if (prepares.length === 0) lines.push('  (no prepare states seen)');
  else {
    lines.push(
      ...table(
        ['target', 'outcome', 'count', 'p50', 'p90', 'p99', 'max'],
        prepares.map((r) => [r.target, r.outcome, String(r.count), ...durations(r)]),
      ),
    );
  }
  lines.push('', 'Time in state (dwell)');
  if (dwells.length === 0) lines.push('  (no state changes seen)');
  else {
    lines.push(
      ...table(
        ['state', 'count', 'p50', 'p90', 'p99', 'max'],
        dwells.map((r) => [r.state, String(r.count), ...durations(r)]),
      ),
    );
  }
  if (top !== undefined) {
    lines.push('', `Slowest prepares (top ${top.n})`);
    if (top.prepares.length === 0) lines.push('  (no completed or failed prepares)');
    else {
      lines.push(
        ...table(
          ['vm', 'device', 'target', 'outcome', 'seconds', 'closed (QEMU time, UTC)'],
          top.prepares.map((p) => [
            p.vm,
            p.deviceId === '' ? p.qomPath : p.deviceId,
            p.target,
            p.outcome,
            formatSeconds(p.seconds),
            qemuTime(p.endMicros ?? p.startMicros),
          ]),
          4,
        ),
      );
    }
  }
  const reasons = REJECT_REASONS.filter((r) => summary.rejectedByReason[r] > 0)
    .map((r) => `${r} ${summary.rejectedByReason[r]}`)
    .join(', ');
  lines.push(
    '',
    `VMs ${summary.vms}, devices ${summary.devices}, events ${summary.events}, ` +
      `rejected ${summary.rejected}${reasons === '' ? '' : ` (${reasons})`}, ` +
      `duplicates ${summary.duplicates}`,
  );
  return lines.join('\n') + '\n';
}

function durations(row: {
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
}): string[] {
  return [row.p50, row.p90, row.p99, row.max].map(formatSeconds);
}

/** Durations in the unit an operator reads fastest: µs below 1 ms, ms below 1 s, else s. */
export function formatSeconds(seconds: number | null): string {
  if (seconds === null) return '-';
  if (seconds === 0) return '0';
  if (seconds < 0.001) return `${trim(seconds * 1e6)}µs`;
  if (seconds < 1) return `${trim(seconds * 1e3)}ms`;
  return `${trim(seconds)}s`;
}

function trim(value: number): string {
  return String(Number(value.toPrecision(4)));
}

/** A QEMU timestamp (µs) as ISO 8601 UTC with microseconds. */
function qemuTime(micros: number): string {
  const ms = Math.floor(micros / 1000);
  const iso = new Date(ms).toISOString();
  return Number.isNaN(ms) || iso === 'Invalid Date'
    ? String(micros)
    : `${iso.slice(0, -1)}${String(Math.round(micros - ms * 1000)).padStart(3, '0')}Z`;
}

/** Columns before `left` are left-aligned (text), the rest right-aligned (numbers). */
function table(header: string[], rows: string[][], left = 2): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const render = (cells: string[]): string =>
    '  ' +
    cells
      .map((c, i) =>
        i < left && header[i] !== 'count' ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0),
      )
      .join('  ')
      .trimEnd();
  return [render(header), ...rows.map(render)];
}
