import {
  catchError,
  concatMap,
  from,
  map,
  of,
  type ObservableInput,
  type OperatorFunction,
} from 'rxjs';

/**
 * The processor's RxJS wiring: batches, not single events, flow through it. Each batch passes
 * every stage before the next batch starts (the outer `concatMap`), because the engine's state
 * must be saved before the next batch changes it and offsets committed in order:
 *
 *   restore → apply (engine, pure) → publish (transitions, dead letters) → save (state) → commit
 *
 * Stages are named functions from the service; the pipeline only sequences them. A failing
 * stage fails its batch (the error travels to whoever waits on it), never the stream.
 */
export interface BatchStages<Job, Applied> {
  restore(job: Job): ObservableInput<Job>;
  apply(job: Job): Applied;
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
): OperatorFunction<Job, BatchResult<Job>> {
  return (jobs) =>
    jobs.pipe(
      concatMap((job) =>
        from(stages.restore(job)).pipe(
          map((restored) => stages.apply(restored)),
          concatMap((applied) => from(stages.publish(applied))),
          concatMap((published) => from(stages.save(published))),
          concatMap((saved) => from(stages.commit(saved))),
          map((): BatchResult<Job> => ({ job, error: null })),
          catchError((error: unknown) => of<BatchResult<Job>>({ job, error })),
        ),
      ),
    );
}
