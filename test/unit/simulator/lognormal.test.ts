import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  lognormalFromMedianP99,
  sampleLognormal,
} from '../../../services/simulator/core/lognormal.ts';
import { deriveSeed, Prng } from '../../../services/simulator/core/prng.ts';

test('samples have the requested median and p99', () => {
  const prng = new Prng(123);
  const dist = lognormalFromMedianP99(80, 600);
  const samples = Array.from({ length: 50_000 }, () => sampleLognormal(prng, dist)).sort(
    (a, b) => a - b,
  );
  const median = samples[25_000]!;
  const p99 = samples[49_500]!;
  assert.ok(Math.abs(median / 80 - 1) < 0.04, `median ${median}`);
  assert.ok(Math.abs(p99 / 600 - 1) < 0.1, `p99 ${p99}`);
});

test('median = p99 is a constant', () => {
  const dist = lognormalFromMedianP99(5, 5);
  assert.equal(sampleLognormal(new Prng(1), dist), 5);
  assert.throws(() => lognormalFromMedianP99(10, 5), RangeError);
});

test('the PRNG stays in [0, 1) and is reproducible by seed', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), (seed) => {
      const a = new Prng(seed);
      const b = new Prng(seed);
      for (let i = 0; i < 20; i++) {
        const x = a.next();
        assert.ok(x >= 0 && x < 1);
        assert.equal(x, b.next());
      }
    }),
  );
  assert.notEqual(deriveSeed(1, 0, 0), deriveSeed(1, 1, 0));
  assert.notEqual(deriveSeed(1, 0, 0), deriveSeed(1, 0, 1));
});
