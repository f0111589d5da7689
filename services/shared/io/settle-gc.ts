/**
 * A full, compacting garbage collection once a process has settled: `poke()` whenever something
 * that allocates much and keeps little happens (start-up, a burst of new connections); the
 * collection runs when no poke came for `quietMs`.
 *
 * Why: V8 collects when allocation fills a space, so a process that goes idle after start-up
 * never collects again, and the start-up garbage (module initialisation, run-once code, parsed
 * configuration, the responses of the first Kafka requests) stays resident for its whole life.
 * Measured on the idle collector (the single executable, no VM): RSS 76.6 -> 71.9 MiB, anonymous
 * pages 25.2 -> 20.1 MiB, with a "last-resort" collection (V8 compacts, shrinks the young
 * generation and returns the freed pages) 6 s after start (docs/decisions.md, "Fourth pass").
 *
 * The collection runs on the main thread (tens of milliseconds for the collector's ~15 MiB heap)
 * and at most once per settling; a process that stays busy is never collected by this.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** V8's `gc()` of a context created with --expose-gc, with the options V8's gc extension takes. */
type V8Gc = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

let v8Gc: V8Gc | undefined;

/**
 * A synchronous full garbage collection of the "last-resort" flavour (V8 compacts and releases
 * what it can, as it does before failing an allocation).
 *
 * Node.js has no API for it; V8's `gc` function is installed in contexts created while the
 * --expose-gc flag is set, so the flag is set for the creation of one new context (jest's
 * leak detector does the same) and cleared again: the process's own global has no `gc`, and
 * later contexts get none either. The function collects the whole isolate, not its context.
 */
export function collectAllGarbage(): void {
  if (v8Gc === undefined) {
    setFlagsFromString('--expose-gc');
    try {
      v8Gc = runInNewContext('gc') as V8Gc;
    } finally {
      setFlagsFromString('--no-expose-gc');
    }
  }
  v8Gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}

export interface SettleGc {
  /** Something allocating happened: collect once `quietMs` passed without another poke. */
  poke(): void;
  /** Cancels a pending collection; pokes after it are ignored. */
  stop(): void;
}

export function settleGc(options: { quietMs: number; collect?: () => void }): SettleGc {
  const collect = options.collect ?? collectAllGarbage;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  return {
    poke() {
      if (stopped) return;
      if (timer !== undefined) {
        timer.refresh();
        return;
      }
      timer = setTimeout(() => {
        timer = undefined;
        collect();
      }, options.quietMs);
      // A pending collection never keeps the process alive.
      timer.unref();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
