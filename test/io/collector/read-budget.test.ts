/**
 * The collector's per-turn budget of QMP bytes (services/collector/io/read-budget.ts): what it
 * runs at once, what waits, and in which order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReadBudget } from '../../../services/collector/io/read-budget.ts';

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('chunks within the budget run at once; the rest wait for later turns, in order, at least one per turn', async () => {
  const budget = new ReadBudget(100);
  const ran: string[] = [];
  const chunk = (name: string, bytes: number): boolean =>
    budget.admit(bytes, () => ran.push(`${name} later`)) && ran.push(`${name} now`) > 0;
  assert.equal(chunk('a', 60), true);
  assert.equal(chunk('b', 60), true, 'the budget is spent after a chunk, not before');
  assert.equal(chunk('c', 10), false);
  assert.equal(chunk('d', 500), false);
  assert.equal(chunk('e', 10), false);
  assert.equal(budget.pending, 3);
  assert.deepEqual(ran, ['a now', 'b now']);
  await nextTurn();
  // A new turn: c (10) and d (500, over the budget but it may run as the budget is not spent).
  assert.deepEqual(ran, ['a now', 'b now', 'c later', 'd later']);
  assert.equal(chunk('f', 1), false, 'a chunk arriving behind waiting ones waits too');
  await nextTurn();
  assert.deepEqual(ran, ['a now', 'b now', 'c later', 'd later', 'e later', 'f later']);
  assert.equal(budget.pending, 0);
  await nextTurn();
  await nextTurn();
  assert.equal(chunk('g', 10), true, 'an idle budget is whole again');
});

test('runNow runs a waiting chunk at once and only once; unknown ones are ignored', async () => {
  const budget = new ReadBudget(1);
  const ran: string[] = [];
  assert.equal(
    budget.admit(5, () => ran.push('a')),
    true,
  );
  const b = (): void => void ran.push('b');
  const c = (): void => void ran.push('c');
  assert.equal(budget.admit(5, b), false);
  assert.equal(budget.admit(5, c), false);
  budget.runNow(c);
  budget.runNow(c);
  budget.runNow(() => ran.push('never'));
  assert.deepEqual(ran, ['c']);
  await nextTurn();
  assert.deepEqual(ran, ['c', 'b']);
  assert.equal(budget.pending, 0);
});
