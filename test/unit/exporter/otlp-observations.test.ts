import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  exponentialRelativeError,
  exponentialScaleFor,
  OTLP_HISTOGRAM_MAX_BUCKETS,
  OTLP_HISTOGRAMS,
  otlpRecordingsOf,
} from '../../../services/exporter/core/otlp-observations.ts';
import {
  createLabelGuards,
  observationsOf,
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
  seconds: 0.000_004,
  startMicros: T0,
  endMicros: T0 + 4,
};

function recordingsOf(record: TransitionRecord, hostLabel = true) {
  const guards = createLabelGuards({ maxLabelValues: 16, maxHosts: hostLabel ? 64 : null });
  // The exporter reads the record ten minutes later: lag is not an OTLP recording.
  const mapped = observationsOf(record, T0 + 600_000_000, guards);
  assert.equal(mapped.kind, 'observations');
  return otlpRecordingsOf(mapped.observations);
}

describe('otlpRecordingsOf', () => {
  test('a completed prepare records its own seconds with the prom-client labels', () => {
    assert.deepEqual(recordingsOf(completed), [
      {
        histogram: 'prepareDuration',
        value: 0.000_004,
        attributes: { target: 'pre-copy-p2p', outcome: 'completed', host: 'h1' },
      },
    ]);
  });

  test('without the host label the attributes have no host', () => {
    assert.deepEqual(recordingsOf({ ...completed, seconds: 180 }, false), [
      {
        histogram: 'prepareDuration',
        value: 180,
        attributes: { target: 'pre-copy-p2p', outcome: 'completed' },
      },
    ]);
  });

  test('a prepare no event closed records nothing (only its outcome count, which stays prom-client)', () => {
    assert.deepEqual(
      recordingsOf({
        ...completed,
        outcome: 'timed_out',
        next: null,
        seconds: null,
        endMicros: null,
      }),
      [],
    );
  });

  test('a dwell records its seconds by state and next; a step back of the clock records 0', () => {
    const dwell: TransitionRecord = {
      ...device,
      type: 'dwell',
      state: 'running',
      next: 'pre-copy-p2p-prepare',
      seconds: -0.5,
      startMicros: T0,
      endMicros: T0 - 500_000,
    };
    assert.deepEqual(recordingsOf(dwell), [
      {
        histogram: 'stateDwell',
        value: 0,
        attributes: { state: 'running', next: 'pre-copy-p2p-prepare' },
      },
    ]);
  });

  test('the instrument names are Prometheus names with the unit, apart from the scraped ones', () => {
    for (const spec of Object.values(OTLP_HISTOGRAMS)) {
      assert.match(spec.name, /^vfio_[a-z_]+_exponential_seconds$/);
      assert.equal(spec.unit, 's');
    }
  });
});

describe('exponentialScaleFor', () => {
  test('512 buckets keep scale 4 from 1 µs to an hour, and fall to 3 beyond 71 minutes', () => {
    assert.equal(exponentialScaleFor(1e-6, 3600, OTLP_HISTOGRAM_MAX_BUCKETS), 4);
    assert.equal(exponentialScaleFor(1e-6, 2 ** 32 * 1e-6 * 1.01, OTLP_HISTOGRAM_MAX_BUCKETS), 3);
  });

  test("the SDK's default 160 buckets fall to scale 2 over the same range", () => {
    assert.equal(exponentialScaleFor(1e-6, 3600, 160), 2);
  });

  test('a single value keeps the largest scale', () => {
    assert.equal(exponentialScaleFor(0.05, 0.05, 2), 20);
  });

  test('a range of 2^k needs 2^(k+scale) buckets: 1 to 2 fits 2 buckets at scale 0 only', () => {
    assert.equal(exponentialScaleFor(1.5, 3, 2), 0);
    assert.equal(exponentialScaleFor(1.5, 3, 3), 1);
  });

  test('rejects a range that is empty or not positive', () => {
    assert.throws(() => exponentialScaleFor(0, 1, 10), RangeError);
    assert.throws(() => exponentialScaleFor(2, 1, 10), RangeError);
  });
});

describe('exponentialRelativeError', () => {
  test('is the bucket width: 2^(2^-scale) − 1', () => {
    assert.equal(exponentialRelativeError(0), 1);
    assert.ok(Math.abs(exponentialRelativeError(4) - 0.044_273_782_427_413_84) < 1e-15);
    assert.ok(Math.abs(exponentialRelativeError(8) - 0.002_711_275_050_202_485) < 1e-15);
  });
});
