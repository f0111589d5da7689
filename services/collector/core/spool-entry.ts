import { crc32 } from '../../shared/core/crc32.ts';

/**
 * One entry of the collector's spool (write-ahead log), format v1, little-endian:
 *
 *   offset  size  field
 *   0       4     u32  bodyLength          bytes after the 8-byte header
 *   4       4     u32  crc32(body)         CRC-32/IEEE of the body
 *   8       8     f64  receivedMicros      collector wall clock when the event was read
 *   16      2     u16  keyLength
 *   18      k     key                      UTF-8, the Kafka message key (`host/vm`)
 *   18+k    v     value                    the Avro single-object frame published as is
 *
 * The key and the receive time sit outside the Avro bytes so that the sender never decodes a
 * record to publish it. The CRC covers the body; a torn write (process or OS crash in the middle
 * of a write) shows as a short or zero-filled tail or a CRC mismatch, which `readSpoolEntry`
 * reports instead of returning garbage.
 */
export const ENTRY_HEADER_BYTES = 8;
const BODY_FIXED_BYTES = 10;
/** Far above any QMP event (QMP messages are capped at 1 MiB); a bigger length is corruption. */
export const MAX_ENTRY_BODY_BYTES = 4 * 1024 * 1024;
/** The key's length is a u16. */
export const MAX_KEY_BYTES = 0xffff;

export interface SpoolEntry {
  receivedMicros: number;
  key: string;
  value: Uint8Array;
}

export type SpoolRead =
  | { kind: 'entry'; entry: SpoolEntry; next: number }
  /** Fewer bytes than the entry needs: the end of the log, or a torn write at its end. */
  | { kind: 'incomplete' }
  /** The bytes here are not an entry (bad length or CRC). */
  | { kind: 'corrupt'; reason: 'bad_length' | 'bad_crc' };

export function encodedEntryLength(key: string, value: Uint8Array): number {
  return ENTRY_HEADER_BYTES + BODY_FIXED_BYTES + Buffer.byteLength(key) + value.length;
}

/** Why an entry cannot be written in this format, or null when it can. */
export function unwritableEntry(entry: SpoolEntry): string | null {
  const keyBytes = Buffer.byteLength(entry.key);
  if (keyBytes > MAX_KEY_BYTES) return `key of ${keyBytes} bytes (at most ${MAX_KEY_BYTES})`;
  const bodyBytes = BODY_FIXED_BYTES + keyBytes + entry.value.length;
  if (bodyBytes > MAX_ENTRY_BODY_BYTES) {
    return `entry of ${bodyBytes} bytes (at most ${MAX_ENTRY_BODY_BYTES})`;
  }
  return null;
}

/** Writes one entry at `offset` of `target`; returns the offset after it. */
export function writeSpoolEntry(target: Buffer, offset: number, entry: SpoolEntry): number {
  const bodyStart = offset + ENTRY_HEADER_BYTES;
  target.writeDoubleLE(entry.receivedMicros, bodyStart);
  const keyLength = target.write(entry.key, bodyStart + BODY_FIXED_BYTES, 'utf8');
  target.writeUInt16LE(keyLength, bodyStart + 8);
  const valueStart = bodyStart + BODY_FIXED_BYTES + keyLength;
  target.set(entry.value, valueStart);
  const end = valueStart + entry.value.length;
  target.writeUInt32LE(end - bodyStart, offset);
  target.writeUInt32LE(crc32(target, bodyStart, end), offset + 4);
  return end;
}

/** Encodes entries into one buffer, for one write call (group commit). */
export function encodeSpoolEntries(entries: readonly SpoolEntry[]): Buffer {
  let size = 0;
  for (const e of entries) size += encodedEntryLength(e.key, e.value);
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const e of entries) offset = writeSpoolEntry(out, offset, e);
  return out;
}

/** Reads the entry at `offset` of `source`. Never throws. */
export function readSpoolEntry(source: Buffer, offset: number): SpoolRead {
  if (source.length - offset < ENTRY_HEADER_BYTES) return { kind: 'incomplete' };
  const bodyLength = source.readUInt32LE(offset);
  if (bodyLength < BODY_FIXED_BYTES || bodyLength > MAX_ENTRY_BODY_BYTES) {
    return { kind: 'corrupt', reason: 'bad_length' };
  }
  const bodyStart = offset + ENTRY_HEADER_BYTES;
  const end = bodyStart + bodyLength;
  if (end > source.length) return { kind: 'incomplete' };
  if (crc32(source, bodyStart, end) !== source.readUInt32LE(offset + 4)) {
    return { kind: 'corrupt', reason: 'bad_crc' };
  }
  const keyLength = source.readUInt16LE(bodyStart + 8);
  const keyStart = bodyStart + BODY_FIXED_BYTES;
  if (keyStart + keyLength > end) return { kind: 'corrupt', reason: 'bad_length' };
  return {
    kind: 'entry',
    entry: {
      receivedMicros: source.readDoubleLE(bodyStart),
      key: source.toString('utf8', keyStart, keyStart + keyLength),
      value: source.subarray(keyStart + keyLength, end),
    },
    next: end,
  };
}

/**
 * Where reading resumes after damage at `offset` (an entry that reads as corrupt, or incomplete
 * before the end of a finished segment): the next offset that holds a whole entry, or
 * `source.length` when none follows. When the damaged entry's length still leads to a whole entry
 * (or to the end), only that entry is lost; otherwise the bytes are searched for the next entry
 * whose length and CRC-32 match (a false match is a 1 in 2^32 chance per position). Never throws.
 */
export function resumeAfterDamage(source: Buffer, offset: number): number {
  if (source.length - offset >= ENTRY_HEADER_BYTES) {
    const next = offset + ENTRY_HEADER_BYTES + source.readUInt32LE(offset);
    if (next === source.length) return next;
    if (next < source.length && readSpoolEntry(source, next).kind === 'entry') return next;
  }
  for (let at = offset + 1; at + ENTRY_HEADER_BYTES <= source.length; at++) {
    if (readSpoolEntry(source, at).kind === 'entry') return at;
  }
  return source.length;
}
