import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TestScheduler } from 'rxjs/testing';
import { batchPipeline } from '../../../services/processor/io/batch-pipeline.ts';

function scheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => assert.deepEqual(actual, expected));
}

test('batches pass every stage in order, one batch at a time', () => {
  scheduler().run(({ cold, hot, expectObservable }) => {
    const jobs = hot('-a-b----|');
    const stage = (frames: string) => (x: string) => cold(frames, { x });
    const results = jobs.pipe(
      batchPipeline<string, string>({
        restore: stage('x|'),
        apply: (x) => x,
        publish: stage('-x|'),
        save: stage('-x|'),
        commit: stage('x|'),
      }),
    );
    // a: restore and apply at 1, publish 1→2, save 2→3, commit at 3, its stages complete at 4;
    // b arrived at 3 but waits for a: 4→6.
    expectObservable(results).toBe('---a--b-|', {
      a: { job: 'a', error: null },
      b: { job: 'b', error: null },
    });
  });
});

test('a failing stage fails its batch only; later batches still run', () => {
  scheduler().run(({ cold, hot, expectObservable }) => {
    const jobs = hot('-a-b-|');
    const boom = new Error('publish refused');
    const results = jobs.pipe(
      batchPipeline<string, string>({
        restore: (x) => cold('x|', { x }),
        apply: (x) => x,
        publish: (x) => (x === 'a' ? cold('#', undefined, boom) : cold('x|', { x })),
        save: (x) => cold('x|', { x }),
        commit: (x) => cold('x|', { x }),
      }),
    );
    expectObservable(results).toBe('-a-b-|', {
      a: { job: 'a', error: boom },
      b: { job: 'b', error: null },
    });
  });
});
