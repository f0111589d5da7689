/**
 * What one transition record adds to the exporter's metrics (docs/metrics.md, "Exporter"):
 *
 *   prepare, completed|failed  → vfio_prepare_duration_seconds{target,outcome[,host]} += seconds
 *   prepare, any outcome       → vfio_prepare_outcomes_total{target,outcome[,host]} += 1
 *   dwell                      → vfio_state_dwell_seconds{state,next} += seconds
 *   either                     → vfio_transition_delivery_lag_seconds += now − closing event
 *
 * The closing event is `endMicros`, or `startMicros` when no event of the device closed the
 * prepare (timed_out, aborted, unfinished): that is the newest QEMU timestamp the record carries.
 *
 * Pure: the time the exporter observed the record arrives as `nowMicros`, and the label guards
 * are passed in (their state is the only thing a call changes). Durations and lag are clamped at
 * 0 because QEMU timestamps come from the host's wall clock, which can step back (KubeVirt
 * makes 0 the floor for the same reason). Records that break the schema's "type tells which
 * fields are set" rule are reported as invalid, never thrown.
 */
import { PREPARE_OUTCOMES } from '../../shared/core/transition-record.ts';
import { KNOWN_PREPARE_TARGETS, VFIO_MIGRATION_STATES } from '../../shared/core/vm-event.ts';
import { exemplarLabelsOf, type ExemplarLabels } from './exemplar-labels.ts';
import { createLabelGuard, type LabelGuard } from './label-guard.ts';

/**
 * A transition record as the Avro schema allows it on the wire (`schemas/vfio-transition.avsc`
 * is flat, with nullable fields); `TransitionRecord` values are assignable to it.
 */
export interface TransitionFields {
  type: string;
  host: string;
  target?: string | null;
  outcome?: string | null;
  state?: string | null;
  next?: string | null;
  seconds?: number | null;
  startMicros: number;
  endMicros?: number | null;
  /** Name the exemplar; a record without them is observed without one. */
  vm?: string | null;
  qomPath?: string | null;
  deviceId?: string | null;
}

export type PrepareLabels = { target: string; outcome: string; host?: string };
export type DwellLabels = { state: string; next: string };

export type Observation =
  | { metric: 'prepareDuration'; labels: PrepareLabels; value: number; exemplar?: ExemplarLabels }
  | { metric: 'prepareOutcome'; labels: PrepareLabels }
  | { metric: 'stateDwell'; labels: DwellLabels; value: number; exemplar?: ExemplarLabels }
  | { metric: 'deliveryLag'; value: number };

/** Label dimensions the guards bound; `host` only when the host label is on. */
export type GuardedLabel = 'target' | 'outcome' | 'state' | 'host';

export interface LabelFold {
  label: GuardedLabel;
  value: string;
}

export type RecordInvalidReason = 'unknown_type' | 'missing_field' | 'bad_value';

export type MappedRecord =
  | { kind: 'observations'; observations: Observation[]; folds: LabelFold[] }
  | { kind: 'invalid'; reason: RecordInvalidReason; detail: string };

export interface LabelGuards {
  target: LabelGuard;
  outcome: LabelGuard;
  /** Used for both `state` and `next`: they draw from the same set of values. */
  state: LabelGuard;
  /** Absent when the host label is switched off. */
  host?: LabelGuard;
}

export function observationsOf(
  record: TransitionFields,
  nowMicros: number,
  guards: LabelGuards,
): MappedRecord {
  if (!isFiniteNumber(record.startMicros)) return invalid('bad_value', 'startMicros');
  if (record.endMicros != null && !isFiniteNumber(record.endMicros)) {
    return invalid('bad_value', 'endMicros');
  }
  const lag = Math.max(0, (nowMicros - (record.endMicros ?? record.startMicros)) / 1e6);
  const folds: LabelFold[] = [];
  const guard = (label: GuardedLabel, g: LabelGuard, value: string): string => {
    const admitted = g.admit(value);
    if (admitted !== value) folds.push({ label, value });
    return admitted;
  };

  if (record.type === 'prepare') {
    const { target, outcome, seconds } = record;
    if (target == null) return invalid('missing_field', 'target');
    if (outcome == null) return invalid('missing_field', 'outcome');
    if (seconds != null && !isFiniteNumber(seconds)) return invalid('bad_value', 'seconds');
    const labels: PrepareLabels = {
      target: guard('target', guards.target, target),
      outcome: guard('outcome', guards.outcome, outcome),
    };
    if (guards.host !== undefined) labels.host = guard('host', guards.host, record.host);
    const observations: Observation[] = [{ metric: 'prepareOutcome', labels }];
    if (seconds != null) {
      observations.push({
        metric: 'prepareDuration',
        labels,
        value: Math.max(0, seconds),
        ...exemplarOf(record),
      });
    }
    observations.push({ metric: 'deliveryLag', value: lag });
    return { kind: 'observations', observations, folds };
  }

  if (record.type === 'dwell') {
    const { state, next, seconds } = record;
    if (state == null) return invalid('missing_field', 'state');
    if (next == null) return invalid('missing_field', 'next');
    if (seconds == null) return invalid('missing_field', 'seconds');
    if (!isFiniteNumber(seconds)) return invalid('bad_value', 'seconds');
    const labels: DwellLabels = {
      state: guard('state', guards.state, state),
      next: guard('state', guards.state, next),
    };
    return {
      kind: 'observations',
      observations: [
        { metric: 'stateDwell', labels, value: Math.max(0, seconds), ...exemplarOf(record) },
        { metric: 'deliveryLag', value: lag },
      ],
      folds,
    };
  }

  return invalid('unknown_type', record.type);
}

/**
 * The exemplar of a latency observation: the device it was and the QEMU timestamp of the event
 * that closed it (`endMicros`; `startMicros` if a record lacks it). Labels are not guarded: an
 * exemplar is kept per bucket and replaced by the next, so it adds no series.
 */
function exemplarOf(record: TransitionFields): { exemplar?: ExemplarLabels } {
  if (typeof record.vm !== 'string') return {};
  const exemplar = exemplarLabelsOf({
    host: record.host,
    vm: record.vm,
    deviceId: typeof record.deviceId === 'string' ? record.deviceId : '',
    qomPath: typeof record.qomPath === 'string' ? record.qomPath : '',
    closingMicros: record.endMicros ?? record.startMicros,
  });
  return { exemplar };
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function invalid(reason: RecordInvalidReason, detail: string): MappedRecord {
  return { kind: 'invalid', reason, detail };
}

export interface LabelGuardLimits {
  /** Distinct values admitted per label beyond the known QEMU states and outcomes. */
  maxLabelValues: number;
  /** Distinct hosts admitted; null switches the host label off. */
  maxHosts: number | null;
}

export function createLabelGuards(limits: LabelGuardLimits): LabelGuards {
  const guards: LabelGuards = {
    target: createLabelGuard(limits.maxLabelValues, KNOWN_PREPARE_TARGETS),
    outcome: createLabelGuard(limits.maxLabelValues, PREPARE_OUTCOMES),
    state: createLabelGuard(limits.maxLabelValues, VFIO_MIGRATION_STATES),
  };
  if (limits.maxHosts !== null) guards.host = createLabelGuard(limits.maxHosts);
  return guards;
}
