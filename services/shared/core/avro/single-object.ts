/**
 * Avro single-object encoding: how every record on the events and transitions topics is framed.
 *
 * Avro specification, "Single object encoding specification":
 *
 * > Single Avro objects are encoded as follows:
 * >
 * > 1. A two-byte marker, `C3 01`, to show that the message is Avro and uses this single-record
 * >    format (version 1).
 * > 2. The 8-byte little-endian CRC-64-AVRO fingerprint of the object's schema.
 * > 3. The Avro object encoded using Avro's binary encoding.
 * >
 * > Implementations use the 2-byte marker to determine whether a payload is Avro. This check
 * > helps avoid expensive lookups that resolve the schema from a fingerprint, when the message is
 * > not an encoded Avro payload.
 */
import type { AvroFrameInvalidReason } from './decode-reasons.ts';

export const SINGLE_OBJECT_MARKER: readonly [number, number] = [0xc3, 0x01];
export const FINGERPRINT_LENGTH = 8;
export const SINGLE_OBJECT_HEADER_LENGTH = SINGLE_OBJECT_MARKER.length + FINGERPRINT_LENGTH;

export type SingleObjectFrameInvalidReason = AvroFrameInvalidReason;

export type SingleObjectFrame =
  | {
      kind: 'frame';
      /** The writer schema's CRC-64-AVRO fingerprint, as an unsigned 64-bit value. */
      fingerprint: bigint;
      /** Where the Avro binary datum starts in the parsed buffer. */
      bodyOffset: number;
    }
  | { kind: 'invalid'; reason: SingleObjectFrameInvalidReason };

/**
 * Writes the marker and the 8 little-endian fingerprint bytes (as `crc64Avro` returns them) into
 * `target` at `offset`; returns the offset where the datum goes.
 */
export function writeSingleObjectHeader(
  target: Uint8Array,
  fingerprint: Uint8Array,
  offset = 0,
): number {
  if (fingerprint.length !== FINGERPRINT_LENGTH) {
    throw new RangeError(`A CRC-64-AVRO fingerprint has ${FINGERPRINT_LENGTH} bytes.`);
  }
  if (offset < 0 || offset + SINGLE_OBJECT_HEADER_LENGTH > target.length) {
    throw new RangeError('The target is too small for a single-object header.');
  }
  target[offset] = SINGLE_OBJECT_MARKER[0];
  target[offset + 1] = SINGLE_OBJECT_MARKER[1];
  target.set(fingerprint, offset + SINGLE_OBJECT_MARKER.length);
  return offset + SINGLE_OBJECT_HEADER_LENGTH;
}

/** The single-object header for a fingerprint, as a fresh 10-byte array. */
export function createSingleObjectHeader(fingerprint: Uint8Array): Uint8Array {
  const header = new Uint8Array(SINGLE_OBJECT_HEADER_LENGTH);
  writeSingleObjectHeader(header, fingerprint);
  return header;
}

/**
 * Reads the header of a single-object frame; never throws. A payload whose first bytes are not the
 * marker is `bad_marker` even when it is also short, since it is not Avro at all.
 */
export function parseSingleObjectFrame(frame: Uint8Array): SingleObjectFrame {
  if (
    (frame.length >= 1 && frame[0] !== SINGLE_OBJECT_MARKER[0]) ||
    (frame.length >= 2 && frame[1] !== SINGLE_OBJECT_MARKER[1])
  ) {
    return { kind: 'invalid', reason: 'bad_marker' };
  }
  if (frame.length < SINGLE_OBJECT_HEADER_LENGTH) return { kind: 'invalid', reason: 'short_frame' };
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  return {
    kind: 'frame',
    fingerprint: view.getBigUint64(SINGLE_OBJECT_MARKER.length, true),
    bodyOffset: SINGLE_OBJECT_HEADER_LENGTH,
  };
}
