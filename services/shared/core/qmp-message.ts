/**
 * QMP message shapes, from QEMU `docs/interop/qmp-spec.rst`:
 *
 *   greeting  { "QMP": { "version": json-object, "capabilities": json-array } }
 *   success   { "return": json-value, "id": json-value }
 *   error     { "error": { "class": json-string, "desc": json-string }, "id": json-value }
 *   event     { "event": json-string, "data": json-object,
 *               "timestamp": { "seconds": json-number, "microseconds": json-number } }
 *
 * "The `data` member ... is optional." "if there is a failure to retrieve host time, both members
 * of the timestamp will be set to -1" — such an event carries no usable time and is rejected.
 * Member order is not significant.
 */

/** Why a piece of input was rejected. Each rejected piece gets exactly one reason. */
export const REJECT_REASONS = [
  /** Bytes that do not parse as JSON (garbage, truncated objects, a newline inside a string). */
  'not_json',
  /** Valid JSON that is not an object (`[1]`, `42`, `"x"`). */
  'not_object',
  /** A JSON object that is none of greeting, return, error, event. */
  'not_qmp',
  /** Bytes that are not valid UTF-8, or a name with a lone surrogate escape (`\ud800`). */
  'invalid_utf8',
  /** A message over the size limit (1 MiB); never buffered whole. */
  'too_large',
  /** A message nested deeper than `MAX_JSON_DEPTH` objects and arrays (QEMU's own limit). */
  'too_deep',
  /**
   * An event whose timestamp is missing, negative, beyond 2^53 µs, or has microseconds outside
   * 0..999999.
   */
  'bad_timestamp',
  /** A VFIO_MIGRATION event whose data lacks a string `qom-path` or `device-state`. */
  'bad_vfio_data',
] as const;

export type RejectReason = (typeof REJECT_REASONS)[number];

export interface QmpGreeting {
  kind: 'greeting';
  /** `version.qemu` as "major.minor.micro" when present. */
  qemuVersion: string | null;
  capabilities: readonly string[];
}

export interface QmpReturn {
  kind: 'return';
  id: unknown;
  value: unknown;
}

export interface QmpError {
  kind: 'error';
  id: unknown;
  errorClass: string;
  desc: string;
}

export interface QmpEvent {
  kind: 'event';
  name: string;
  /** `seconds * 1e6 + microseconds`; QEMU's wall clock when the event was built. */
  timestampMicros: number;
  /** The `data` member, or an empty object when absent. */
  data: Readonly<Record<string, unknown>>;
}

export interface QmpInvalid {
  kind: 'invalid';
  reason: RejectReason;
  /** A short excerpt or explanation for logs; never the whole input. */
  detail: string;
}

export type QmpMessage = QmpGreeting | QmpReturn | QmpError | QmpEvent | QmpInvalid;

const MAX_MICROSECONDS = 999_999;

/**
 * Objects and arrays nested in one message, the message itself included. QEMU refuses deeper
 * input itself (`qobject/json-streamer.c`: `MAX_NESTING (1 << 10)`), so a real monitor never sends
 * more; deeper input would make `JSON.stringify` (the record's `data`) throw `RangeError`.
 */
export const MAX_JSON_DEPTH = 1024;

/**
 * Source texts shorter than this cannot nest deeper than `MAX_JSON_DEPTH`: every level costs an
 * opening and a closing bracket, so depth d needs at least 2d characters.
 */
const SHORTEST_TOO_DEEP = 2 * (MAX_JSON_DEPTH + 1);

/**
 * Sorts a parsed JSON object into a QMP message kind. Never throws. `sourceLength`, the length
 * of the text `value` was parsed from (characters or bytes), spares the nesting walk when the
 * text is too short to be too deep — every QMP message a real monitor sends; without it (an
 * object built in memory) the walk runs.
 */
export function classifyQmp(
  value: Record<string, unknown>,
  sourceLength: number = Infinity,
): QmpMessage {
  if (sourceLength >= SHORTEST_TOO_DEEP && nestedDeeperThan(value, MAX_JSON_DEPTH)) {
    return invalid('too_deep', `nested deeper than ${MAX_JSON_DEPTH} levels`);
  }
  const event = value['event'];
  if (event !== undefined) {
    if (typeof event !== 'string') return invalid('not_qmp', 'event member is not a string');
    const timestampMicros = readTimestamp(value['timestamp']);
    if (timestampMicros < 0)
      return invalid('bad_timestamp', excerpt(`${event}: ${describe(value['timestamp'])}`));
    const data = value['data'];
    if (data !== undefined && !isObject(data))
      return invalid('not_qmp', excerpt(`${event}: data is not an object`));
    return { kind: 'event', name: event, timestampMicros, data: data ?? EMPTY_DATA };
  }
  if ('return' in value) return { kind: 'return', id: value['id'], value: value['return'] };
  const error = value['error'];
  if (isObject(error)) {
    return {
      kind: 'error',
      id: value['id'],
      errorClass: typeof error['class'] === 'string' ? error['class'] : '',
      desc: typeof error['desc'] === 'string' ? error['desc'] : '',
    };
  }
  const greeting = value['QMP'];
  if (isObject(greeting)) return toGreeting(greeting);
  return invalid('not_qmp', 'object has none of event, return, error, QMP');
}

const EMPTY_DATA: Readonly<Record<string, unknown>> = Object.freeze({});

/**
 * Whether parsed JSON nests objects and arrays deeper than `levels` (a leaf is 0 deep, `{}` 1).
 * Recursion stops at `levels`, so the stack stays within 1,025 frames whatever the input.
 */
function nestedDeeperThan(value: unknown, levels: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (levels === 0) return true;
  if (Array.isArray(value)) {
    for (const item of value) if (nestedDeeperThan(item, levels - 1)) return true;
    return false;
  }
  const object = value as Record<string, unknown>;
  for (const key in object) if (nestedDeeperThan(object[key], levels - 1)) return true;
  return false;
}

/** µs since the epoch, or -1 when the timestamp is missing or out of range. */
function readTimestamp(timestamp: unknown): number {
  if (!isObject(timestamp)) return -1;
  const seconds = timestamp['seconds'];
  const micros = timestamp['microseconds'];
  if (typeof seconds !== 'number' || typeof micros !== 'number') return -1;
  if (!Number.isInteger(seconds) || !Number.isInteger(micros)) return -1;
  if (seconds < 0 || micros < 0 || micros > MAX_MICROSECONDS) return -1;
  const total = seconds * 1_000_000 + micros;
  // Beyond 2^53 µs (year 2255) the sum is no longer exact, and Avro's long would refuse it.
  return Number.isSafeInteger(total) ? total : -1;
}

function toGreeting(greeting: Record<string, unknown>): QmpGreeting {
  const version = greeting['version'];
  let qemuVersion: string | null = null;
  if (isObject(version) && isObject(version['qemu'])) {
    const q = version['qemu'];
    qemuVersion = `${String(q['major'])}.${String(q['minor'])}.${String(q['micro'])}`;
  }
  const caps = greeting['capabilities'];
  const capabilities = Array.isArray(caps) ? caps.filter((c) => typeof c === 'string') : [];
  return { kind: 'greeting', qemuVersion, capabilities };
}

export function invalid(reason: RejectReason, detail: string): QmpInvalid {
  return { kind: 'invalid', reason, detail };
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === undefined) return 'timestamp missing';
  return `timestamp ${excerpt(JSON.stringify(value))}`;
}

/** At most 80 characters of a string, for log details. */
export function excerpt(text: string): string {
  return text.length <= 80 ? text : `${text.slice(0, 77)}...`;
}
