import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deriveSeed, Prng } from '../../../services/simulator/core/prng.ts';

const draws = (prng: Prng, n: number): number[] => Array.from({ length: n }, () => prng.next());

test('the same seed gives the same sequence; another seed another one', () => {
  assert.deepEqual(draws(new Prng(42), 5), draws(new Prng(42), 5));
  assert.notDeepEqual(draws(new Prng(42), 5), draws(new Prng(43), 5));
});

test('draws stay in their ranges', () => {
  const prng = new Prng(7);
  for (let i = 0; i < 10_000; i++) {
    const x = prng.next();
    assert.ok(x >= 0 && x < 1);
    const b = prng.between(2, 3);
    assert.ok(b >= 2 && b < 3);
    const n = prng.intBetween(1, 6);
    assert.ok(Number.isInteger(n) && n >= 1 && n <= 6);
    assert.ok(prng.exponential(5) >= 0);
    assert.ok(Number.isFinite(prng.normal()));
  }
  assert.equal(new Prng(1).chance(0), false);
  assert.equal(new Prng(1).chance(1), true);
});

test('the exponential draw has the mean it is given', () => {
  const prng = new Prng(99);
  let sum = 0;
  for (let i = 0; i < 50_000; i++) sum += prng.exponential(10);
  assert.ok(Math.abs(sum / 50_000 - 10) < 0.3);
});

test('derived seeds differ by VM and by stream, and are 32-bit', () => {
  const seeds = new Set<number>();
  for (let vm = 0; vm < 50; vm++)
    for (let stream = 0; stream < 4; stream++) seeds.add(deriveSeed(1, vm, stream));
  assert.equal(seeds.size, 200);
  for (const s of seeds) assert.ok(Number.isInteger(s) && s >= 0 && s < 2 ** 32);
  assert.equal(deriveSeed(1, 2, 3), deriveSeed(1, 2, 3));
});
