import {
  defer,
  EMPTY,
  expand,
  filter,
  firstValueFrom,
  from,
  map,
  type Observable,
  type ObservableInput,
} from 'rxjs';

/**
 * The processor's RxJS wiring: transactions, not single events, flow through it, one at a
 * time — the engine's state after transaction n is the input of transaction n+1:
 *
 *   collect (the records of one commit interval) → commit (restore, processBatch, transaction)
 *
 * `collect` gives `null` when the stage stops; the stream then completes. A failed commit is the
 * stage's to handle (it keeps the records and retries them, or drops them when the partitions
 * moved to another member): the stream never errors on a Kafka failure.
 */
export interface TransactionStages<Pending, Result> {
  collect(): ObservableInput<Pending | null>;
  commit(pending: Pending): ObservableInput<Result>;
}

type Step<Result> = { readonly result: Result } | null;

export function transactionPipeline<Pending, Result>(
  stages: TransactionStages<Pending, Result>,
): Observable<Result> {
  const step = (): Observable<Step<Result>> =>
    defer(async (): Promise<Step<Result>> => {
      const pending = await firstValueFrom(from(stages.collect()));
      if (pending === null) return null;
      return { result: await firstValueFrom(from(stages.commit(pending))) };
    });
  return step().pipe(
    expand((s) => (s === null ? EMPTY : step())),
    filter((s): s is { readonly result: Result } => s !== null),
    map((s) => s.result),
  );
}
