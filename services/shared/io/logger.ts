/**
 * Structured logs: one JSON object per line on stderr, so stdout stays free for a command's
 * output. Messages are sentences; context goes in fields; an error goes in `error`.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; defaults to stderr. Tests pass an array-backed sink. */
  write?: (line: string) => void;
  fields?: Record<string, unknown>;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const threshold = LEVEL_RANK[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const base = options.fields ?? {};

  const log = (level: LogLevel, message: string, fields?: Record<string, unknown>): void => {
    if (LEVEL_RANK[level] < threshold) return;
    const record: Record<string, unknown> = {
      time: new Date().toISOString(),
      level,
      msg: message,
      ...base,
      ...fields,
    };
    if (record['error'] !== undefined) record['error'] = serializeError(record['error']);
    write(JSON.stringify(record, jsonValue));
  };

  return {
    debug: (m, f) => log('debug', m, f),
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
    child: (fields) => createLogger({ ...options, fields: { ...base, ...fields } }),
  };
}

/** Offsets and other bigints (error details carry them) as decimal strings. */
function jsonValue(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? String(value) : value;
}

/** Inner errors of an aggregate logged at most (the rest are counted in `errorsTotal`). */
const MAX_INNER_ERRORS = 5;

/**
 * An error as JSON: name, message, `code`, `details` (TelemetryError), the Kafka error a client
 * error carries (`apiId`, e.g. `INVALID_TIMESTAMP`, `apiCode`, `serverErrorMessage`), the cause,
 * and an aggregate's inner errors (@platformatic/kafka's `PLT_KFK_MULTIPLE` holds one per attempt,
 * a `PLT_KFK_RESPONSE` one per failing partition), distinct ones only: the Kafka error is what an
 * operator needs, and it is always inside.
 */
function serializeError(error: unknown, depth = 0): unknown {
  if (!(error instanceof Error)) return error;
  const out: Record<string, unknown> = { name: error.name, message: error.message };
  const fields = error as unknown as Record<string, unknown>;
  for (const key of ['code', 'apiId', 'apiCode', 'serverErrorMessage', 'details']) {
    const value = fields[key];
    if (value !== undefined && value !== null) out[key] = value;
  }
  if (depth > 8) return out;
  if (error.cause !== undefined) out['cause'] = serializeError(error.cause, depth + 1);
  const inner = fields['errors'];
  if (Array.isArray(inner) && inner.length > 0) {
    const distinct = new Map<string, unknown>();
    for (const e of inner) {
      const serialized = serializeError(e, depth + 1);
      const key = JSON.stringify(serialized, jsonValue);
      if (!distinct.has(key) && distinct.size < MAX_INNER_ERRORS) distinct.set(key, serialized);
    }
    out['errors'] = [...distinct.values()];
    out['errorsTotal'] = inner.length;
  }
  return out;
}
