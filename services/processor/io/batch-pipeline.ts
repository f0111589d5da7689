import {
  catchError,
  concatMap,
  from,
  map,
  of,
  type ObservableInput,
  type OperatorFunction,
} from 'rxjs';
import { coalesceMap } from './coalesce-map.ts';

/**
 * The processor's RxJS wiring: batches, not single events, flow through it. Batches that arrive
 * while a group is in the works (kafkajs hands over several partitions at once) travel together
 * as the next group, and each group passes every stage before the next group starts, because the
 * engine's state must be saved before the next group changes it and offsets advance in order:
 *
 *   restore → apply (engine, pure) → publish (transitions, dead letters) → save (state) → commit
 *
 * One group costs one round trip per stage whatever the number of partitions in it. Stages are
 * named functions from the service; the pipeline only sequences them. A failing stage fails its
 * group (the error travels to whoever waits on each batch), never the stream.
 */
export interface BatchStages<Job, Applied> {
  restore(jobs: Job[]): ObservableInput<Job[]>;
  apply(jobs: Job[]): Applied;
  publish(applied: Applied): ObservableInput<Applied>;
  save(applied: Applied): ObservableInput<Applied>;
  commit(applied: Applied): ObservableInput<unknown>;
}

export interface BatchResult<Job> {
  job: Job;
  error: unknown;
}

export function batchPipeline<Job, Applied>(
  stages: BatchStages<Job, Applied>,
  nextTurn?: (work: () => void) => void,
): OperatorFunction<Job, BatchResult<Job>[]> {
  return (jobs) =>
    jobs.pipe(
      coalesceMap(
        (group: Job[]) =>
          from(stages.restore(group)).pipe(
            map((restored) => stages.apply(restored)),
            concatMap((applied) => from(stages.publish(applied))),
            concatMap((published) => from(stages.save(published))),
            concatMap((saved) => from(stages.commit(saved))),
            map(() => group.map((job): BatchResult<Job> => ({ job, error: null }))),
            catchError((error: unknown) =>
              of(group.map((job): BatchResult<Job> => ({ job, error }))),
            ),
          ),
        nextTurn,
      ),
    );
}
