/**
 * Avro codec for the topics: avsc does the binary encoding and schema resolution, the pure core
 * does the single-object framing and the CRC-64-AVRO fingerprints (`schemas/README.md`).
 *
 * A codec writes with one schema and reads any schema it knows by fingerprint, resolving it to
 * the writer schema, so a consumer keeps reading while producers move to a newer schema. Decoding
 * never throws: poison bytes on a topic come back as `{ kind: 'invalid', reason }`.
 */
import avsc from 'avsc';
import type { Type } from 'avsc';
import { crc64Avro } from '../core/avro/crc64-avro.ts';
import type { AvroDecodeInvalidReason } from '../core/avro/decode-reasons.ts';
import {
  parseSingleObjectFrame,
  SINGLE_OBJECT_HEADER_LENGTH,
  writeSingleObjectHeader,
} from '../core/avro/single-object.ts';
import { TelemetryError } from '../core/errors.ts';
import type { ErrorCode } from '../core/errors.ts';
import type { EventRecord } from '../core/event-record.ts';
import type { TransitionRecord } from '../core/transition-record.ts';
import { readPackagedFile } from './packaged-files.ts';

/** A schema as avsc accepts it: parsed JSON or an avsc `Type`. */
export type AvroSchema = Parameters<typeof avsc.Type.forSchema>[0];
type Resolver = ReturnType<Type['createResolver']>;

export type { AvroDecodeInvalidReason };

export type AvroDecodeResult<T> =
  | { kind: 'record'; value: T }
  | {
      kind: 'invalid';
      reason: AvroDecodeInvalidReason;
      code: Extract<ErrorCode, 'AVRO_BAD_FRAME' | 'AVRO_UNKNOWN_SCHEMA' | 'AVRO_INVALID_RECORD'>;
      /** The frame's writer fingerprint (hex of the unsigned value), once the header was read. */
      fingerprint?: string;
      /** What avsc threw, for `bad_body`. */
      error?: TelemetryError;
    };

export interface AvroCodec<T> {
  /** The schema records are written with and resolved to. */
  readonly type: Type;
  readonly canonicalForm: string;
  /** CRC-64-AVRO of `canonicalForm`, as an unsigned 64-bit value. */
  readonly fingerprint: bigint;
  /** The record in single-object encoding; throws AVRO_INVALID_RECORD for a record the schema rejects. */
  encode(record: T): Buffer;
  decode(frame: Uint8Array): AvroDecodeResult<T>;
}

export interface CreateCodecOptions {
  writer: AvroSchema;
  /** Older or newer writer schemas whose records this codec must still read. */
  knownWriters?: readonly AvroSchema[];
}

export interface ContractCodecOptions {
  knownWriters?: readonly AvroSchema[];
}

interface KnownWriter {
  resolver: Resolver | undefined;
}

const INITIAL_SCRATCH_BYTES = 4096;

/** Logical types stay unregistered so `timestamp-micros` longs decode as plain numbers. */
function toType(schema: AvroSchema): Type {
  return avsc.Type.isType(schema) ? (schema as Type) : avsc.Type.forSchema(schema);
}

/**
 * Parsing Canonical Form (Avro specification, "Transforming into Parsing Canonical Form"):
 * avsc's default `schema()` export keeps only type, name, fields, symbols, items, values and
 * size, in that order, with full names and primitives in their simple form.
 */
export function parsingCanonicalForm(schema: AvroSchema): string {
  return JSON.stringify(toType(schema).schema());
}

export function fingerprintHex(fingerprint: bigint): string {
  return fingerprint.toString(16).padStart(16, '0');
}

function fingerprintOf(canonicalForm: string): { bytes: Uint8Array; value: bigint } {
  const bytes = crc64Avro(canonicalForm);
  const value = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  return { bytes, value };
}

/**
 * Reads and parses an `.avsc` file of the repo (`schemas/...`, embedded in a build); throws
 * FILE_UNREADABLE or CONFIG_INVALID.
 */
export function readAvroSchema(path: string): Type {
  const text = readPackagedFile(path).toString('utf8');
  try {
    return avsc.Type.forSchema(JSON.parse(text) as AvroSchema);
  } catch (cause) {
    throw new TelemetryError('CONFIG_INVALID', 'The Avro schema file is not a valid schema.', {
      cause,
      details: { path },
    });
  }
}

export function createCodec<T>(options: CreateCodecOptions): AvroCodec<T> {
  const type = toType(options.writer);
  const canonicalForm = parsingCanonicalForm(type);
  const own = fingerprintOf(canonicalForm);

  const known = new Map<bigint, KnownWriter>([[own.value, { resolver: undefined }]]);
  for (const schema of options.knownWriters ?? []) {
    const writerType = toType(schema);
    const writer = fingerprintOf(parsingCanonicalForm(writerType));
    if (known.has(writer.value)) continue;
    let resolver: Resolver;
    try {
      resolver = type.createResolver(writerType);
    } catch (cause) {
      throw new TelemetryError(
        'CONFIG_INVALID',
        'A known writer schema cannot be read as the codec schema.',
        {
          cause,
          details: { writer: fingerprintHex(writer.value), reader: fingerprintHex(own.value) },
        },
      );
    }
    known.set(writer.value, { resolver });
  }

  let scratch = Buffer.allocUnsafe(INITIAL_SCRATCH_BYTES);
  writeSingleObjectHeader(scratch, own.bytes);

  const rejectRecord = (record: T, cause?: unknown): TelemetryError => {
    const paths: string[] = [];
    type.isValid(record, { errorHook: (path) => paths.push(path.join('.')) });
    return new TelemetryError('AVRO_INVALID_RECORD', 'The record does not match its Avro schema.', {
      cause,
      details: { schema: type.name, fields: paths },
    });
  };

  const encode = (record: T): Buffer => {
    if (!type.isValid(record)) throw rejectRecord(record);
    let end: number;
    try {
      end = type.encode(record, scratch, SINGLE_OBJECT_HEADER_LENGTH);
      while (end < 0) {
        scratch = Buffer.allocUnsafe(2 * (scratch.length - end));
        writeSingleObjectHeader(scratch, own.bytes);
        end = type.encode(record, scratch, SINGLE_OBJECT_HEADER_LENGTH);
      }
    } catch (cause) {
      throw rejectRecord(record, cause);
    }
    const frame = Buffer.allocUnsafe(end);
    scratch.copy(frame, 0, 0, end);
    return frame;
  };

  const decode = (frame: Uint8Array): AvroDecodeResult<T> => {
    const header = parseSingleObjectFrame(frame);
    if (header.kind === 'invalid') {
      return { kind: 'invalid', reason: header.reason, code: 'AVRO_BAD_FRAME' };
    }
    const writer = known.get(header.fingerprint);
    if (writer === undefined) {
      return {
        kind: 'invalid',
        reason: 'unknown_schema',
        code: 'AVRO_UNKNOWN_SCHEMA',
        fingerprint: fingerprintHex(header.fingerprint),
      };
    }
    const buf = Buffer.isBuffer(frame)
      ? frame
      : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    let decoded: { value: unknown; offset: number };
    try {
      decoded = type.decode(buf, header.bodyOffset, writer.resolver);
    } catch (cause) {
      return {
        kind: 'invalid',
        reason: 'bad_body',
        code: 'AVRO_INVALID_RECORD',
        fingerprint: fingerprintHex(header.fingerprint),
        error: new TelemetryError('AVRO_INVALID_RECORD', 'The Avro datum cannot be decoded.', {
          cause,
        }),
      };
    }
    if (decoded.offset < 0 || decoded.offset !== buf.length) {
      return {
        kind: 'invalid',
        reason: decoded.offset < 0 ? 'truncated_body' : 'trailing_bytes',
        code: 'AVRO_INVALID_RECORD',
        fingerprint: fingerprintHex(header.fingerprint),
      };
    }
    return { kind: 'record', value: decoded.value as T };
  };

  return { type, canonicalForm, fingerprint: own.value, encode, decode };
}

const EVENT_SCHEMA = 'schemas/vfio-event.avsc';
const TRANSITION_SCHEMA = 'schemas/vfio-transition.avsc';

/** The events-topic codec (`schemas/vfio-event.avsc`). */
export function createEventCodec(options: ContractCodecOptions = {}): AvroCodec<EventRecord> {
  return createCodec<EventRecord>({
    ...options,
    writer: readAvroSchema(EVENT_SCHEMA),
  });
}

/** The transitions-topic codec (`schemas/vfio-transition.avsc`). */
export function createTransitionCodec(
  options: ContractCodecOptions = {},
): AvroCodec<TransitionRecord> {
  return createCodec<TransitionRecord>({
    ...options,
    writer: readAvroSchema(TRANSITION_SCHEMA),
  });
}
