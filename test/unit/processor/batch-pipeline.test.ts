import assert from 'node:assert/strict';
import { test } from 'node:test';
import { asyncScheduler } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { batchPipeline } from '../../../services/processor/io/batch-pipeline.ts';

function scheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => assert.deepEqual(actual, expected));
}

/** The next event-loop turn, in the test scheduler's virtual time. */
const nextTurn = (work: () => void): void => void asyncScheduler.schedule(work);
const ok = (...jobs: string[]) => jobs.map((job) => ({ job, error: null }));

test('batches that arrive together go through every stage as one group', () => {
  scheduler().run(({ cold, hot, expectObservable }) => {
    const stage = (frames: string) => (x: string[]) => cold(frames, { x });
    const results = hot('-(ab)-----|').pipe(
      batchPipeline<string, string[]>(
        {
          restore: stage('x|'),
          apply: (x) => x,
          publish: stage('-x|'),
          save: stage('-x|'),
          commit: stage('x|'),
        },
        nextTurn,
      ),
    );
    // a and b arrive in one turn (1), are gathered at 1, published 1→2, saved 2→3, committed 3.
    expectObservable(results).toBe('---g------|', { g: ok('a', 'b') });
  });
});

test('batches arriving while a group is in the works form the next group, in order', () => {
  scheduler().run(({ cold, hot, expectObservable }) => {
    const stage = (frames: string) => (x: string[]) => cold(frames, { x });
    const results = hot('-a-bc------|').pipe(
      batchPipeline<string, string[]>(
        {
          restore: stage('x|'),
          apply: (x) => x,
          publish: stage('--x|'),
          save: stage('x|'),
          commit: stage('x|'),
        },
        nextTurn,
      ),
    );
    // a alone: 1→3 published, done at 3, stages complete at 4; b and c waited: 4→6.
    expectObservable(results).toBe('---a--g----|', { a: ok('a'), g: ok('b', 'c') });
  });
});

test('a failing stage fails its group only; the next group still runs', () => {
  scheduler().run(({ cold, hot, expectObservable }) => {
    const boom = new Error('publish refused');
    const results = hot('-a---b--|').pipe(
      batchPipeline<string, string[]>(
        {
          restore: (x) => cold('x|', { x }),
          apply: (x) => x,
          publish: (x) => (x[0] === 'a' ? cold('#', undefined, boom) : cold('x|', { x })),
          save: (x) => cold('x|', { x }),
          commit: (x) => cold('x|', { x }),
        },
        nextTurn,
      ),
    );
    expectObservable(results).toBe('-a---b--|', { a: [{ job: 'a', error: boom }], b: ok('b') });
  });
});
