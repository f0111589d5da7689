import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  createLabelGuards,
  observationsOf,
  type MappedRecord,
  type TransitionFields,
} from '../../../services/exporter/core/transition-observations.ts';
import type { TransitionRecord } from '../../../services/shared/core/transition-record.ts';

const T0 = 1_700_000_000_000_000;
const device = { host: 'h1', vm: 'vm-a', qomPath: '/machine/peripheral/nic0', deviceId: 'nic0' };

const completed: TransitionRecord = {
  ...device,
  type: 'prepare',
  target: 'pre-copy-p2p',
  prepareState: 'pre-copy-p2p-prepare',
  outcome: 'completed',
  next: 'pre-copy-p2p',
  seconds: 0.012,
  startMicros: T0,
  endMicros: T0 + 12_000,
};
const timedOut: TransitionRecord = {
  ...completed,
  outcome: 'timed_out',
  next: null,
  seconds: null,
  endMicros: null,
};
const dwell: TransitionRecord = {
  ...device,
  type: 'dwell',
  state: 'running',
  next: 'pre-copy-p2p-prepare',
  seconds: 4.5,
  startMicros: T0 - 4_500_000,
  endMicros: T0,
};

const guards = (hostLabel = true, maxLabelValues = 4) =>
  createLabelGuards({ maxLabelValues, maxHosts: hostLabel ? 8 : null });

function observed(result: MappedRecord) {
  assert.equal(result.kind, 'observations');
  return result.kind === 'observations' ? result : assert.fail();
}

describe('observationsOf', () => {
  test('completed prepare: outcome count, duration, and lag from endMicros', () => {
    const r = observed(observationsOf(completed, T0 + 12_000 + 250_000, guards()));
    const labels = { target: 'pre-copy-p2p', outcome: 'completed', host: 'h1' };
    assert.deepEqual(r.observations, [
      { metric: 'prepareOutcome', labels },
      {
        metric: 'prepareDuration',
        labels,
        value: 0.012,
        exemplar: { host: 'h1', vm: 'vm-a', device: 'nic0', qemu_ts: '1700000000.012000' },
      },
      { metric: 'deliveryLag', value: 0.25 },
    ]);
    assert.deepEqual(r.folds, []);
  });

  test('timed-out prepare: counted, no duration, lag from startMicros', () => {
    const r = observed(observationsOf(timedOut, T0 + 2_000_000, guards()));
    assert.deepEqual(r.observations, [
      {
        metric: 'prepareOutcome',
        labels: { target: 'pre-copy-p2p', outcome: 'timed_out', host: 'h1' },
      },
      { metric: 'deliveryLag', value: 2 },
    ]);
  });

  test('dwell: duration by state and next, lag from endMicros', () => {
    const r = observed(observationsOf(dwell, T0 + 1000, guards()));
    assert.deepEqual(r.observations, [
      {
        metric: 'stateDwell',
        labels: { state: 'running', next: 'pre-copy-p2p-prepare' },
        value: 4.5,
        exemplar: { host: 'h1', vm: 'vm-a', device: 'nic0', qemu_ts: '1700000000.000000' },
      },
      { metric: 'deliveryLag', value: 0.001 },
    ]);
  });

  test('the exemplar names the real host even when the host label folds it', () => {
    const g = createLabelGuards({ maxLabelValues: 4, maxHosts: 1 });
    observationsOf(completed, T0, g);
    const r = observed(observationsOf({ ...completed, host: 'h2', deviceId: '' }, T0, g));
    const duration = r.observations.find((o) => o.metric === 'prepareDuration');
    assert.deepEqual(duration, {
      metric: 'prepareDuration',
      labels: { target: 'pre-copy-p2p', outcome: 'completed', host: 'other' },
      value: 0.012,
      exemplar: { host: 'h2', vm: 'vm-a', device: 'peripheral/nic0', qemu_ts: '1700000000.012000' },
    });
  });

  test('a record without a vm is observed without an exemplar', () => {
    const fields: TransitionFields = { ...completed };
    delete fields.vm;
    const r = observed(observationsOf(fields, T0, guards()));
    const duration = r.observations.find((o) => o.metric === 'prepareDuration');
    assert.equal(duration?.metric === 'prepareDuration' && 'exemplar' in duration, false);
  });

  test('the host label is left out when switched off', () => {
    const r = observed(observationsOf(completed, T0 + 12_000, guards(false)));
    assert.deepEqual(r.observations[0], {
      metric: 'prepareOutcome',
      labels: { target: 'pre-copy-p2p', outcome: 'completed' },
    });
  });

  test('a clock stepping back clamps durations and lag at 0', () => {
    const r = observed(observationsOf({ ...completed, seconds: -0.003 }, T0 - 5_000_000, guards()));
    assert.deepEqual(
      r.observations.filter((o) => o.metric !== 'prepareOutcome').map((o) => o.value),
      [0, 0],
    );
  });

  test('a stream of records maps to a stream of observations (plain arrays)', () => {
    const g = guards();
    const metrics = [completed, timedOut, dwell, completed]
      .map((r) => observed(observationsOf(r, T0 + 1_000_000, g)))
      .flatMap((r) => r.observations.map((o) => o.metric));
    assert.deepEqual(metrics, [
      'prepareOutcome',
      'prepareDuration',
      'deliveryLag',
      'prepareOutcome',
      'deliveryLag',
      'stateDwell',
      'deliveryLag',
      'prepareOutcome',
      'prepareDuration',
      'deliveryLag',
    ]);
  });
});

describe('observationsOf guards label cardinality', () => {
  test('unknown targets beyond the limit fold into "other"; known states never do', () => {
    const g = guards(true, 1);
    const targets = ['x-1', 'x-2', 'pre-copy', 'x-1'].map((target) => {
      const r = observed(observationsOf({ ...completed, target }, T0, g));
      return {
        label: (r.observations[0] as { labels: { target: string } }).labels.target,
        folds: r.folds,
      };
    });
    assert.deepEqual(targets, [
      { label: 'x-1', folds: [] },
      { label: 'other', folds: [{ label: 'target', value: 'x-2' }] },
      { label: 'pre-copy', folds: [] },
      { label: 'x-1', folds: [] },
    ]);
  });

  test('state and next share one budget; hosts have their own', () => {
    const g = createLabelGuards({ maxLabelValues: 1, maxHosts: 1 });
    const r = observed(observationsOf({ ...dwell, state: 'odd-a', next: 'odd-b' }, T0, g));
    assert.deepEqual(r.observations[0], {
      metric: 'stateDwell',
      labels: { state: 'odd-a', next: 'other' },
      value: 4.5,
      exemplar: { host: 'h1', vm: 'vm-a', device: 'nic0', qemu_ts: '1700000000.000000' },
    });
    assert.deepEqual(r.folds, [{ label: 'state', value: 'odd-b' }]);
    observationsOf(completed, T0, g);
    const h2 = observed(observationsOf({ ...completed, host: 'h2' }, T0, g));
    assert.deepEqual(h2.folds, [{ label: 'host', value: 'h2' }]);
  });
});

describe('observationsOf reports records that break the schema rules', () => {
  const cases: [string, TransitionFields, string, string][] = [
    ['unknown type', { ...completed, type: 'resync' }, 'unknown_type', 'resync'],
    ['prepare without target', { ...completed, target: null }, 'missing_field', 'target'],
    ['prepare without outcome', { ...completed, outcome: null }, 'missing_field', 'outcome'],
    ['dwell without state', { ...dwell, state: null }, 'missing_field', 'state'],
    ['dwell without next', { ...dwell, next: null }, 'missing_field', 'next'],
    ['dwell without seconds', { ...dwell, seconds: null }, 'missing_field', 'seconds'],
    ['NaN seconds', { ...completed, seconds: Number.NaN }, 'bad_value', 'seconds'],
    ['infinite dwell', { ...dwell, seconds: Infinity }, 'bad_value', 'seconds'],
    ['NaN startMicros', { ...dwell, startMicros: Number.NaN }, 'bad_value', 'startMicros'],
  ];
  for (const [name, record, reason, detail] of cases) {
    test(name, () => {
      assert.deepEqual(observationsOf(record, T0, guards()), { kind: 'invalid', reason, detail });
    });
  }
});
