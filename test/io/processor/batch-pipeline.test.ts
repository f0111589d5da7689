import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lastValueFrom, toArray } from 'rxjs';
import { transactionPipeline } from '../../../services/processor/io/batch-pipeline.ts';

test('transactions run one at a time, in order, until collect says stop', async () => {
  const log: string[] = [];
  const pending = ['a', 'b', 'c'];
  let active = 0;
  const results = await lastValueFrom(
    transactionPipeline<string, string>({
      collect: async () => {
        assert.equal(active, 0, 'collect never overlaps a commit');
        await Promise.resolve();
        return pending.shift() ?? null;
      },
      commit: async (p) => {
        active++;
        log.push(`commit ${p}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
        active--;
        return p.toUpperCase();
      },
    }).pipe(toArray()),
  );
  assert.deepEqual(results, ['A', 'B', 'C']);
  assert.deepEqual(log, ['commit a', 'commit b', 'commit c']);
});
