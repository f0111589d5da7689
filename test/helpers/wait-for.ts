/**
 * Polls a condition until it holds, for tests: never sleep for a fixed time and hope.
 *
 * `fn` is called every `intervalMs` (first call at once). It holds when it returns anything but
 * `undefined`, `null` or `false` without throwing; `waitFor` resolves to that value. When
 * `timeoutMs` passes first, it rejects with the description and the last error thrown as `cause`.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitForOptions {
  /** Default 10 000. */
  timeoutMs?: number;
  /** Default 50. */
  intervalMs?: number;
  /** What is being waited for, for the timeout message. */
  description?: string;
}

type Held<T> = Exclude<T, undefined | null | false>;

function holds<T>(value: T): value is Held<T> {
  return value !== undefined && value !== null && value !== false;
}

export async function waitFor<T>(
  fn: () => T | Promise<T>,
  options: WaitForOptions = {},
): Promise<Held<T>> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (holds(value)) return value;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) break;
    await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
  const what = options.description ?? 'condition';
  throw new Error(
    `waitFor: ${what} did not hold within ${timeoutMs} ms`,
    lastError === undefined ? undefined : { cause: lastError },
  );
}
