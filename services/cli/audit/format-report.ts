import type { TransitionRecord } from '../../shared/core/transition-record.ts';
import { formatSeconds } from '../replay/format-table.ts';
import type { AuditReport } from './audit-topics.ts';
import type { TimeRange, TransitionKey } from './reconcile.ts';

/** The report as one JSON object (offsets as decimal strings: they are 64-bit). */
export function formatReportJson(report: AuditReport): string {
  return (
    JSON.stringify(report, (_key, value: unknown) =>
      typeof value === 'bigint' ? value.toString() : value,
    ) + '\n'
  );
}

/** The operator's view: counts, then one table per kind of difference, then the verdict. */
export function formatReportTable(report: AuditReport): string {
  const { events, transitions: t } = report;
  const lines = [
    `Audit of ${report.eventsTopic} against ${report.transitionsTopic}, ` +
      `partitions ${report.partitions.join(',')}, ${describeRange(report.range)}`,
    '',
    `Events       ${events.records} records: ${events.distinct} distinct (session, sequence), ` +
      `${events.duplicates} duplicates, ${events.undecodable} undecodable`,
    `Transitions  ${t.recomputed} recomputed, ${t.inTopic} in the topic, ${t.matched} matched`,
  ];
  const section = (title: string, rows: string[][]): void => {
    if (rows.length === 0) return;
    lines.push('', `${title}: ${rows.length}`, ...table(KEY_HEADER.concat('detail'), rows));
  };
  section(
    'Missing (recomputed, not in the topic)',
    t.missing.map((m) => [...keyCells(m), describe(m.expected)]),
  );
  section(
    'Duplicated (in the topic more than once)',
    t.duplicated.map((d) => [...keyCells(d), `offsets ${d.offsets.join(', ')}`]),
  );
  section(
    'Mismatched (same transition, other fields; expected → in the topic)',
    t.mismatched.map((m) => [
      ...keyCells(m),
      `offset ${m.offset}: ` +
        m.differences.map((d) => `${d.field} ${show(d.expected)} → ${show(d.actual)}`).join(', '),
    ]),
  );
  section(
    'Unexpected (in the topic, not recomputed)',
    t.unexpected.map((u) => [
      ...keyCells(u),
      `offsets ${u.offsets.join(', ')}: ${describe(u.actual)}`,
    ]),
  );
  if (t.undecodable.length > 0) {
    lines.push(
      '',
      `Undecodable records in the transitions topic: ${t.undecodable.length}`,
      ...table(
        ['partition', 'offset', 'reason'],
        t.undecodable.map((u) => [String(u.partition), String(u.offset), u.reason]),
      ),
    );
  }
  const differences =
    t.missing.length +
    t.duplicated.length +
    t.mismatched.length +
    t.unexpected.length +
    t.undecodable.length;
  lines.push('', report.clean ? 'Clean: no differences.' : `Differences: ${differences}.`);
  return lines.join('\n') + '\n';
}

const KEY_HEADER = ['partition', 'kind', 'host', 'vm', 'device', 'start'];

function keyCells(key: TransitionKey): string[] {
  return [
    String(key.partition),
    key.type,
    key.host,
    key.vm,
    key.qomPath,
    isoMicros(key.startMicros),
  ];
}

function describe(record: TransitionRecord): string {
  if (record.type === 'dwell') {
    return `${record.state} → ${record.next} after ${formatSeconds(record.seconds)}`;
  }
  const next = record.next === null ? '' : ` → ${record.next}`;
  const seconds = record.seconds === null ? '' : ` after ${formatSeconds(record.seconds)}`;
  return `${record.prepareState} ${record.outcome}${next}${seconds}`;
}

function show(value: string | number | null): string {
  return value === null ? 'null' : typeof value === 'string' ? `"${value}"` : String(value);
}

/** µs since the epoch as ISO 8601 with six fractional digits. */
export function isoMicros(micros: number): string {
  const ms = Math.floor(micros / 1000);
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, -1)}${String(micros - ms * 1000).padStart(3, '0')}Z`;
}

function describeRange(range: TimeRange): string {
  if (range.sinceMs === null && range.untilMs === null) return 'all time';
  const parts = [];
  if (range.sinceMs !== null) parts.push(`since ${new Date(range.sinceMs).toISOString()}`);
  if (range.untilMs !== null) parts.push(`until ${new Date(range.untilMs).toISOString()}`);
  return `transitions closed ${parts.join(' ')}`;
}

function table(header: readonly string[], rows: readonly string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const render = (cells: readonly string[]): string =>
    '  ' +
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [render(header), ...rows.map(render)];
}
