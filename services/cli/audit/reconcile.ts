/**
 * The audit's pure core: transitions recomputed from the events topic against the transitions
 * topic, partition by partition, into a report of every difference. No Kafka, no clock.
 *
 * A transition's identity is the processor's (`transitionIdentity`): host, VM, device qom-path,
 * kind and start timestamp. With that identity a transition is
 * - missing: recomputed, not in the topic;
 * - duplicated: in the topic more than once (each copy's offset is listed);
 * - mismatched: in both, but another outcome, next state, duration or end (the topic's first
 *   copy is compared);
 * - unexpected: in the topic, not recomputed.
 *
 * A time range limits what is reported, never what is recomputed: an engine started in the middle
 * of a VM's history would see a prepare without its start. A transition is in the range when the
 * event that closed it is (its Kafka timestamp, `closedAtMs`); one that was not recomputed has no
 * closing event, so the Kafka timestamp of its first copy in the topic stands in (it was written
 * after the event that closed it).
 */
import type { EventRecord } from '../../shared/core/event-record.ts';
import type { TransitionRecord } from '../../shared/core/transition-record.ts';
import { transitionIdentity } from '../../processor/core/transition-identity.ts';

/** A recomputed transition and the Kafka timestamp of the event that closed it. */
export interface ExpectedTransition {
  readonly partition: number;
  readonly record: TransitionRecord;
  /** `null` when no event closed it (still open at the end of the topic). */
  readonly closedAtMs: number | null;
}

/** A transition read from the transitions topic. */
export interface ActualTransition {
  readonly partition: number;
  readonly offset: bigint;
  readonly timestampMs: number;
  readonly record: TransitionRecord;
}

/** Kafka timestamps, ms; `since` inclusive, `until` exclusive; `null` is unbounded. */
export interface TimeRange {
  readonly sinceMs: number | null;
  readonly untilMs: number | null;
}

export interface TransitionKey {
  readonly partition: number;
  readonly type: TransitionRecord['type'];
  readonly host: string;
  readonly vm: string;
  readonly qomPath: string;
  readonly startMicros: number;
}

export interface FieldDifference {
  readonly field: string;
  readonly expected: string | number | null;
  readonly actual: string | number | null;
}

export interface MissingTransition extends TransitionKey {
  readonly expected: TransitionRecord;
}

export interface DuplicatedTransition extends TransitionKey {
  /** Offsets of every copy, in order. */
  readonly offsets: readonly bigint[];
}

export interface MismatchedTransition extends TransitionKey {
  /** Offset of the copy compared (the first). */
  readonly offset: bigint;
  readonly differences: readonly FieldDifference[];
}

export interface UnexpectedTransition extends TransitionKey {
  readonly offsets: readonly bigint[];
  readonly actual: TransitionRecord;
}

export interface TransitionDiff {
  /** Recomputed transitions in the range. */
  readonly recomputed: number;
  /** Records of the transitions topic in the range (copies counted). */
  readonly inTopic: number;
  /** Identities found in both with the same fields. */
  readonly matched: number;
  readonly missing: readonly MissingTransition[];
  readonly duplicated: readonly DuplicatedTransition[];
  readonly mismatched: readonly MismatchedTransition[];
  readonly unexpected: readonly UnexpectedTransition[];
}

/** The fields compared once the identity matches (the identity's own fields aside). */
const COMPARED_FIELDS = [
  'deviceId',
  'target',
  'prepareState',
  'state',
  'outcome',
  'next',
  'seconds',
  'endMicros',
] as const;

function keyOf(partition: number, record: TransitionRecord): TransitionKey {
  return {
    partition,
    type: record.type,
    host: record.host,
    vm: record.vm,
    qomPath: record.qomPath,
    startMicros: record.startMicros,
  };
}

function fieldOf(record: TransitionRecord, field: (typeof COMPARED_FIELDS)[number]): unknown {
  return (record as unknown as Record<string, unknown>)[field];
}

/** The compared fields that differ; a field one kind of record lacks counts as null. */
export function differencesOf(
  expected: TransitionRecord,
  actual: TransitionRecord,
): FieldDifference[] {
  const out: FieldDifference[] = [];
  for (const field of COMPARED_FIELDS) {
    const e = (fieldOf(expected, field) ?? null) as string | number | null;
    const a = (fieldOf(actual, field) ?? null) as string | number | null;
    if (!Object.is(e, a)) out.push({ field, expected: e, actual: a });
  }
  return out;
}

export function inRange(timestampMs: number | null, range: TimeRange): boolean {
  if (range.sinceMs === null && range.untilMs === null) return true;
  if (timestampMs === null) return range.untilMs === null;
  return (
    (range.sinceMs === null || timestampMs >= range.sinceMs) &&
    (range.untilMs === null || timestampMs < range.untilMs)
  );
}

const ALL_TIME: TimeRange = { sinceMs: null, untilMs: null };

/** Compares recomputed and published transitions; see the file comment for the categories. */
export function reconcileTransitions(
  expected: readonly ExpectedTransition[],
  actual: readonly ActualTransition[],
  range: TimeRange = ALL_TIME,
): TransitionDiff {
  const recomputed = new Map<string, ExpectedTransition>();
  for (const e of expected) {
    const id = `${e.partition}\u0000${transitionIdentity(e.record)}`;
    if (!recomputed.has(id)) recomputed.set(id, e);
  }
  const published = new Map<string, ActualTransition[]>();
  for (const a of actual) {
    const id = `${a.partition}\u0000${transitionIdentity(a.record)}`;
    const copies = published.get(id);
    if (copies === undefined) published.set(id, [a]);
    else copies.push(a);
  }

  const missing: MissingTransition[] = [];
  const duplicated: DuplicatedTransition[] = [];
  const mismatched: MismatchedTransition[] = [];
  const unexpected: UnexpectedTransition[] = [];
  let recomputedInRange = 0;
  let inTopic = 0;
  let matched = 0;

  for (const [id, e] of recomputed) {
    if (!inRange(e.closedAtMs, range)) continue;
    recomputedInRange++;
    const copies = published.get(id);
    const key = keyOf(e.partition, e.record);
    if (copies === undefined) {
      missing.push({ ...key, expected: e.record });
      continue;
    }
    inTopic += copies.length;
    const first = copies[0] as ActualTransition;
    if (copies.length > 1) duplicated.push({ ...key, offsets: copies.map((c) => c.offset) });
    const differences = differencesOf(e.record, first.record);
    if (differences.length > 0) mismatched.push({ ...key, offset: first.offset, differences });
    else matched++;
  }
  for (const [id, copies] of published) {
    if (recomputed.has(id)) continue;
    const first = copies[0] as ActualTransition;
    if (!inRange(first.timestampMs, range)) continue;
    inTopic += copies.length;
    const key = keyOf(first.partition, first.record);
    const offsets = copies.map((c) => c.offset);
    unexpected.push({ ...key, offsets, actual: first.record });
    if (copies.length > 1) duplicated.push({ ...key, offsets });
  }

  const order = (a: TransitionKey, b: TransitionKey): number =>
    a.partition - b.partition ||
    a.startMicros - b.startMicros ||
    compareText(a.host, b.host) ||
    compareText(a.vm, b.vm) ||
    compareText(a.qomPath, b.qomPath) ||
    compareText(a.type, b.type);
  return {
    recomputed: recomputedInRange,
    inTopic,
    matched,
    missing: missing.sort(order),
    duplicated: duplicated.sort(order),
    mismatched: mismatched.sort(order),
    unexpected: unexpected.sort(order),
  };
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** An events-topic record as the audit counts it: decoded, or not. */
export interface AuditedEvent {
  readonly timestampMs: number;
  readonly record: EventRecord | null;
}

export interface EventCounts {
  /** Records read (in the range, when there is one). */
  readonly records: number;
  /** Distinct (session, sequence) pairs among them. */
  readonly distinct: number;
  /** Records whose (session, sequence) an earlier record already had: collector re-sends. */
  readonly duplicates: number;
  /** Records that are not event records (empty, not Avro, unknown schema). */
  readonly undecodable: number;
}

/** Counts the events topic's records; a (session, sequence) seen before the range still counts. */
export function countEvents(
  events: readonly AuditedEvent[],
  range: TimeRange = ALL_TIME,
): EventCounts {
  const seen = new Set<string>();
  let records = 0;
  let distinct = 0;
  let duplicates = 0;
  let undecodable = 0;
  for (const event of events) {
    const counted = inRange(event.timestampMs, range);
    if (counted) records++;
    if (event.record === null) {
      if (counted) undecodable++;
      continue;
    }
    const id = `${event.record.sessionId}\u0000${event.record.sequence}`;
    const first = !seen.has(id);
    if (first) seen.add(id);
    if (!counted) continue;
    if (first) distinct++;
    else duplicates++;
  }
  return { records, distinct, duplicates, undecodable };
}

/** Whether the diff found anything. */
export function hasDifferences(diff: TransitionDiff): boolean {
  return (
    diff.missing.length > 0 ||
    diff.duplicated.length > 0 ||
    diff.mismatched.length > 0 ||
    diff.unexpected.length > 0
  );
}
