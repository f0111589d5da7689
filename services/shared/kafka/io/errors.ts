/**
 * Reading @platformatic/kafka errors. The client nests them: a `MultipleErrors` (an
 * `AggregateError`) from its retry loop holds one error per attempt, a `ResponseError` holds one
 * `ProtocolError` per failing partition (its `apiId` is Kafka's error name, e.g.
 * `MESSAGE_TOO_LARGE`) and keeps the parsed `response`, and any of them may carry a `cause`.
 */
import { TelemetryError, isTelemetryError, type ErrorCode } from '../../core/errors.ts';
import { classifyRefusal, type Refusal } from '../core/refusal.ts';

/** Kafka's answers that mean this producer or group member is a zombie (KIP-98, KIP-447). */
export const FENCING_ERRORS: ReadonlySet<string> = new Set([
  'INVALID_PRODUCER_EPOCH',
  'PRODUCER_FENCED',
  'ILLEGAL_GENERATION',
  'UNKNOWN_MEMBER_ID',
  'FENCED_INSTANCE_ID',
  'REBALANCE_IN_PROGRESS',
]);

/** Record-level refusals: sending the same record again can never succeed. */
export const RECORD_REFUSALS: ReadonlySet<string> = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'CORRUPT_MESSAGE',
]);

function* walk(error: unknown, seen = new Set<unknown>()): Generator<Record<string, unknown>> {
  if (typeof error !== 'object' || error === null || seen.has(error)) return;
  seen.add(error);
  const node = error as Record<string, unknown>;
  yield node;
  if (Array.isArray(node['errors'])) for (const inner of node['errors']) yield* walk(inner, seen);
  if (node['cause'] !== undefined) yield* walk(node['cause'], seen);
}

/** Every Kafka error name (`apiId`) found anywhere in `error`. */
export function kafkaErrorNames(error: unknown): Set<string> {
  const names = new Set<string>();
  for (const node of walk(error)) if (typeof node['apiId'] === 'string') names.add(node['apiId']);
  return names;
}

/**
 * What a failure counter's `kafka_error` label says: each Kafka error name in `error`; without
 * one, the client's own error codes (`PLT_KFK_NETWORK`, `PLT_KFK_TIMEOUT`...), not the wrappers'
 * (`PLT_KFK_MULTIPLE`, `PLT_KFK_RESPONSE`, which say nothing); else `unknown`. Both lists are
 * finite, so the label's cardinality is bounded.
 */
export function kafkaErrorLabels(error: unknown): string[] {
  const names = kafkaErrorNames(error);
  if (names.size > 0) return [...names].sort();
  const codes = new Set<string>();
  for (const node of walk(error)) {
    const code = node['code'];
    if (typeof code === 'string' && /^PLT_KFK_[A-Z_]+$/.test(code) && !WRAPPER_CODES.has(code))
      codes.add(code);
  }
  return codes.size > 0 ? [...codes].sort() : ['unknown'];
}

const WRAPPER_CODES: ReadonlySet<string> = new Set(['PLT_KFK_MULTIPLE', 'PLT_KFK_RESPONSE']);

export function hasKafkaError(
  error: unknown,
  names: ReadonlySet<string> | readonly string[],
): boolean {
  const set = names instanceof Set ? names : new Set(names as readonly string[]);
  for (const name of kafkaErrorNames(error)) if (set.has(name)) return true;
  return false;
}

/** The parsed responses that `ResponseError`s in `error` kept (per-partition results live there). */
export function errorResponses(error: unknown): unknown[] {
  const responses: unknown[] = [];
  for (const node of walk(error))
    if (node['response'] !== undefined) responses.push(node['response']);
  return responses;
}

/**
 * Why Kafka refused us (core/refusal.ts), from every Kafka error name, code and message in
 * `error` and the resources named in its details (or `details`); undefined when it was no refusal.
 */
export function kafkaRefusal(
  error: unknown,
  details: Record<string, unknown> = {},
): Refusal | undefined {
  const kafkaErrors: string[] = [];
  const codes: string[] = [];
  const messages: string[] = [];
  const topics = new Set<string>();
  let groupId: string | undefined;
  let transactionalId: string | undefined;
  const note = (fields: Record<string, unknown>): void => {
    if (typeof fields['topic'] === 'string') topics.add(fields['topic']);
    if (Array.isArray(fields['topics']))
      for (const t of fields['topics'] as unknown[]) if (typeof t === 'string') topics.add(t);
    if (typeof fields['groupId'] === 'string') groupId ??= fields['groupId'];
    if (typeof fields['transactionalId'] === 'string')
      transactionalId ??= fields['transactionalId'];
  };
  note(details);
  for (const node of walk(error)) {
    if (typeof node['apiId'] === 'string') kafkaErrors.push(node['apiId']);
    if (typeof node['code'] === 'string') codes.push(node['code']);
    if (typeof node['message'] === 'string') messages.push(node['message']);
    if (typeof node['details'] === 'object' && node['details'] !== null)
      note(node['details'] as Record<string, unknown>);
  }
  return classifyRefusal({
    kafkaErrors,
    codes,
    messages,
    topics: [...topics],
    ...(groupId === undefined ? {} : { groupId }),
    ...(transactionalId === undefined ? {} : { transactionalId }),
  });
}

/** Wraps `error` (kept as `cause`) unless it already is a TelemetryError. */
export function kafkaError(
  code: ErrorCode,
  message: string,
  error: unknown,
  details: Record<string, unknown> = {},
): TelemetryError {
  if (isTelemetryError(error)) return error;
  const names = [...kafkaErrorNames(error)];
  const refused = kafkaRefusal(error, details);
  return new TelemetryError(code, message, {
    cause: error,
    details: {
      ...details,
      ...(names.length > 0 ? { kafkaErrors: names } : {}),
      ...(refused === undefined ? {} : { refused }),
    },
  });
}

/** `fn`'s failures as `KAFKA_UNAVAILABLE` (or `KAFKA_FENCED` for fencing errors). */
export async function mapKafkaFailure<T>(
  message: string,
  fn: () => Promise<T>,
  details: Record<string, unknown> = {},
): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    const code = hasKafkaError(error, FENCING_ERRORS) ? 'KAFKA_FENCED' : 'KAFKA_UNAVAILABLE';
    throw kafkaError(code, message, error, details);
  }
}
