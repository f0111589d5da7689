import {
  from,
  Observable,
  type ObservableInput,
  type OperatorFunction,
  type Subscription,
} from 'rxjs';

/**
 * Group commit for batches: items that arrive while the previous group is being worked on are
 * worked on together, as one group, when it is done; a burst that arrives at once (kafkajs hands
 * several partitions' batches over concurrently) is gathered until the event loop's next turn.
 * Under light load every item goes alone and at once; under heavy load each group costs one
 * round of Kafka round trips instead of one per partition. Groups run one at a time, in order.
 */
export function coalesceMap<T, R>(
  project: (items: T[]) => ObservableInput<R>,
  /** When to look at what has gathered; tests pass a virtual-time scheduler. */
  nextTurn: (work: () => void) => void = setImmediate,
): OperatorFunction<T, R> {
  return (source) =>
    new Observable<R>((subscriber) => {
      let pending: T[] = [];
      let busy = false;
      let scheduled = false;
      let sourceDone = false;
      let inner: Subscription | undefined;

      const drain = (): void => {
        scheduled = false;
        if (busy) return;
        if (pending.length === 0) {
          if (sourceDone) subscriber.complete();
          return;
        }
        const items = pending;
        pending = [];
        busy = true;
        inner = from(project(items)).subscribe({
          next: (value) => subscriber.next(value),
          error: (error: unknown) => subscriber.error(error),
          complete: () => {
            busy = false;
            schedule();
          },
        });
      };
      const schedule = (): void => {
        if (scheduled || busy) return;
        scheduled = true;
        nextTurn(drain);
      };

      const outer = source.subscribe({
        next: (item) => {
          pending.push(item);
          schedule();
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => {
          sourceDone = true;
          schedule();
        },
      });
      return () => {
        outer.unsubscribe();
        inner?.unsubscribe();
      };
    });
}
