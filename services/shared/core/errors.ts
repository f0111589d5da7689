/**
 * The one error type of vfio-telemetry. Callers branch on `code`, never on `message`
 * (platformatic/kafka `errors.ts`, kafkajs `retriable`). Hot paths do not throw: decoders return
 * `{ kind: 'invalid', reason }` and adapters count it. Throw only for programmer errors, bad
 * configuration, and I/O that the caller must handle.
 */
export const ERROR_CODES = [
  'CONFIG_INVALID',
  'USAGE',
  'FILE_UNREADABLE',
  'AVRO_UNKNOWN_SCHEMA',
  'AVRO_BAD_FRAME',
  'AVRO_INVALID_RECORD',
  'KAFKA_UNAVAILABLE',
  'KAFKA_PUBLISH_FAILED',
  'KAFKA_FENCED',
  'QMP_CONNECT_FAILED',
  'QMP_PROTOCOL',
  'SHUTDOWN_TIMEOUT',
  /** Another live process holds the spool directory's lock (a restart cannot help). */
  'SPOOL_LOCKED',
  /** The spool directory cannot be written at start (read-only, full, not a directory). */
  'SPOOL_UNWRITABLE',
  /** Another live process holds the processor's state directory (a restart cannot help). */
  'STATE_DIR_LOCKED',
  /** The processor's state directory cannot be created or written at start. */
  'STATE_DIR_UNWRITABLE',
  /** A transaction's commit was sent and its answer never came: committed or not is unknown. */
  'KAFKA_OUTCOME_UNKNOWN',
  'HTTP_LISTEN_FAILED',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Codes where trying the same thing again later can succeed. */
const RETRIABLE: ReadonlySet<ErrorCode> = new Set([
  'KAFKA_UNAVAILABLE',
  'KAFKA_PUBLISH_FAILED',
  'QMP_CONNECT_FAILED',
]);

export interface TelemetryErrorOptions {
  cause?: unknown;
  /** Structured context for logs; never interpolated into `message`. */
  details?: Readonly<Record<string, unknown>>;
}

export class TelemetryError extends Error {
  override readonly name = 'TelemetryError';
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: TelemetryErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retriable = RETRIABLE.has(code);
    this.details = options.details ?? {};
  }
}

export function isTelemetryError(value: unknown, code?: ErrorCode): value is TelemetryError {
  return value instanceof TelemetryError && (code === undefined || value.code === code);
}
