/**
 * services/shared/io/settle-gc.ts: the full collection really frees what is unreachable, leaves
 * no `gc` behind, and the settle timer runs it once per quiet period, re-armed by every poke.
 */
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { runInNewContext } from 'node:vm';
import { test } from 'node:test';
import { collectAllGarbage, settleGc } from '../../../services/shared/io/settle-gc.ts';
import { waitFor } from '../../helpers/wait-for.ts';

test('collectAllGarbage frees an unreachable object and exposes no gc', async () => {
  // Built in a function of its own so that nothing on this frame holds it.
  const ref = ((): WeakRef<object> => new WeakRef({ payload: new Array(1000).fill('x') }))();
  // A WeakRef's target lives until the end of the job that made or read it.
  await turn();
  collectAllGarbage();
  assert.equal(ref.deref(), undefined, 'the object was collected');
  collectAllGarbage();
  assert.equal((globalThis as { gc?: unknown }).gc, undefined, 'this context has no gc');
  assert.equal(runInNewContext('typeof gc'), 'undefined', 'nor does a new context');
});

test('settleGc collects once the pokes stop for quietMs, once per settling', async () => {
  let collections = 0;
  const settle = settleGc({ quietMs: 300, collect: () => collections++ });
  // Pokes every 50 ms keep it from collecting, unless the machine's load stretched a gap.
  let longestGap = 0;
  let last = Date.now();
  for (let i = 0; i < 20; i++) {
    settle.poke();
    await new Promise((resolve) => setTimeout(resolve, 50));
    longestGap = Math.max(longestGap, Date.now() - last);
    last = Date.now();
  }
  if (longestGap < 200) assert.equal(collections, 0, 'no collection while poked');
  await waitFor(() => collections >= 1, { timeoutMs: 10_000 });
  const after = collections;
  await new Promise((resolve) => setTimeout(resolve, 600));
  assert.equal(collections, after, 'nothing more without a poke');
  settle.poke();
  await waitFor(() => collections === after + 1, { timeoutMs: 10_000 });
  settle.stop();
});

test('settleGc.stop cancels a pending collection and ignores later pokes', async () => {
  let collections = 0;
  const settle = settleGc({ quietMs: 50, collect: () => collections++ });
  settle.poke();
  settle.stop();
  settle.poke();
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(collections, 0);
});
