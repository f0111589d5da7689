/**
 * Kafka's refusals of a stage (authentication, authorization, TLS: kafka/core/refusal.ts) as one
 * named event: a counter `<prefix>kafka_refused_total{reason}`, one log line per reason and
 * resource every 10 s, and the last refusal for the stage's `/readyz` until an attempt succeeds.
 * The collector has its own (it spools meanwhile); the processor and the exporter use this one,
 * and wait while refused instead of exiting: whoever fixes the ACL or the credentials sees the
 * stage go on with nothing lost, as the collector does.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Counter, type Registry, type RegistryContentType } from 'prom-client';
import { backoffDelayMs, type BackoffPolicy } from '../../core/backoff.ts';
import type { Logger } from '../../io/logger.ts';
import { createRateLimitedLog } from '../../io/rate-limited-log.ts';
import { REFUSAL_REASONS, type Refusal } from '../core/refusal.ts';

export type RefusalDiagnosis = (
  error: unknown,
  details?: Record<string, unknown>,
) => Promise<Refusal | undefined>;

export interface KafkaRefusals {
  /** Kafka's refusal of the last attempt, until one succeeds (`cleared`). */
  readonly current: Refusal | undefined;
  /** Diagnoses `error`; a refusal is counted, logged and kept. Resolves with it. */
  observe(
    error: unknown,
    context: { readonly what: string; readonly details?: Record<string, unknown> },
  ): Promise<Refusal | undefined>;
  /** An attempt succeeded: no refusal any more. */
  cleared(): void;
  /**
   * Runs `attempt` until it succeeds, again after a back-off while Kafka refuses it; any other
   * failure is thrown at once, and so is the refusal once `signal` aborts (the stage stops).
   */
  retryWhileRefused<T>(
    what: string,
    attempt: () => Promise<T>,
    details?: Record<string, unknown>,
  ): Promise<T>;
}

export const REFUSAL_RETRY: BackoffPolicy = { initialMs: 500, maxMs: 10_000, multiplier: 2 };

export function createKafkaRefusals(options: {
  readonly registry: Registry<RegistryContentType>;
  /** `vfio_processor_`, `vfio_exporter_`. */
  readonly metricPrefix: string;
  /** `processor`, `exporter`: the log line says who was refused. */
  readonly stage: string;
  readonly logger: Logger;
  readonly diagnose: RefusalDiagnosis;
  readonly retry?: BackoffPolicy;
  /** Aborted when the stage stops: a wait for a refused start gives up. */
  readonly signal?: AbortSignal;
}): KafkaRefusals {
  const counter = new Counter({
    name: `${options.metricPrefix}kafka_refused_total`,
    help: 'Attempts Kafka refused, by reason: authentication (SASL login), authorization (ACL), tls (certificates).',
    labelNames: ['reason'],
    registers: [options.registry],
  });
  for (const reason of REFUSAL_REASONS) counter.inc({ reason }, 0);
  const rateLimited = createRateLimitedLog(options.logger);
  const retry = options.retry ?? REFUSAL_RETRY;
  let current: Refusal | undefined;

  const observe: KafkaRefusals['observe'] = async (error, { what, details = {} }) => {
    const refusal = await options.diagnose(error, details).catch(() => undefined);
    if (refusal === undefined) return undefined;
    current = refusal;
    counter.inc({ reason: refusal.reason });
    rateLimited(
      `refused:${refusal.reason}:${refusal.resource ?? ''}`,
      'error',
      `Kafka refused the ${options.stage} (${what}); it waits and tries again.`,
      {
        reason: refusal.reason,
        detail: refusal.detail,
        ...(refusal.resource === undefined ? {} : { resource: refusal.resource }),
      },
    );
    return refusal;
  };
  const cleared = (): void => {
    if (current === undefined) return;
    options.logger.info(`Kafka accepts the ${options.stage} again.`, {
      wasRefused: current.reason,
      ...(current.resource === undefined ? {} : { resource: current.resource }),
    });
    current = undefined;
  };

  return {
    get current() {
      return current;
    },
    observe,
    cleared,
    async retryWhileRefused(what, attempt, details = {}) {
      for (let failures = 0; ; failures++) {
        try {
          const result = await attempt();
          cleared();
          return result;
        } catch (error) {
          if ((await observe(error, { what, details })) === undefined) throw error;
          if (options.signal?.aborted === true) throw error;
          try {
            await sleep(backoffDelayMs(retry, failures, Math.random()), undefined, {
              signal: options.signal,
            });
          } catch {
            throw error;
          }
        }
      }
    },
  };
}
