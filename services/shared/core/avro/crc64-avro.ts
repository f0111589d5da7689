/**
 * The CRC-64-AVRO (64-bit Rabin) fingerprint of a schema's Parsing Canonical Form.
 *
 * Avro specification, "Schema Fingerprints":
 *
 * > Rabin fingerprints are cyclic redundancy checks computed using irreducible polynomials. In
 * > the style of the Appendix of RFC 1952 (pg 10), which defines the CRC-32 algorithm, here's our
 * > definition of the 64-bit AVRO fingerprinting algorithm:
 * >
 * >     long fingerprint64(byte[] buf) {
 * >       if (FP_TABLE == null) initFPTable();
 * >       long fp = EMPTY;
 * >       for (int i = 0; i < buf.length; i++)
 * >         fp = (fp >>> 8) ^ FP_TABLE[(int)(fp ^ buf[i]) & 0xff];
 * >       return fp;
 * >     }
 * >
 * >     static long EMPTY = 0xc15d213aa4d7a795L;
 * >     static long[] FP_TABLE = null;
 * >
 * >     void initFPTable() {
 * >       FP_TABLE = new long[256];
 * >       for (int i = 0; i < 256; i++) {
 * >         long fp = i;
 * >         for (int j = 0; j < 8; j++)
 * >           fp = (fp >>> 1) ^ (EMPTY & -(fp & 1L));
 * >         FP_TABLE[i] = fp;
 * >       }
 * >     }
 *
 * and "Single object encoding": "The 8-byte little-endian CRC-64-AVRO fingerprint of the
 * object's schema."
 *
 * The 64-bit words are kept as two unsigned 32-bit halves so the loop stays in small-integer
 * arithmetic; the table is built on first use, not at import.
 */

const EMPTY_HI = 0xc15d213a;
const EMPTY_LO = 0xa4d7a795;

let tableHi: Uint32Array | undefined;
let tableLo: Uint32Array | undefined;

function buildTables(): [Uint32Array, Uint32Array] {
  const hiTable = new Uint32Array(256);
  const loTable = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let hi = 0;
    let lo = i;
    for (let j = 0; j < 8; j++) {
      const mask = -(lo & 1);
      lo = ((lo >>> 1) | (hi << 31)) ^ (EMPTY_LO & mask);
      hi = (hi >>> 1) ^ (EMPTY_HI & mask);
    }
    hiTable[i] = hi;
    loTable[i] = lo;
  }
  return [hiTable, loTable];
}

/** The fingerprint as its two unsigned 32-bit halves. */
function fingerprintHalves(data: Uint8Array): [hi: number, lo: number] {
  if (tableHi === undefined || tableLo === undefined) [tableHi, tableLo] = buildTables();
  const hiTable = tableHi;
  const loTable = tableLo;
  let hi = EMPTY_HI;
  let lo = EMPTY_LO;
  for (let i = 0; i < data.length; i++) {
    const index = (lo ^ data[i]!) & 0xff;
    lo = ((lo >>> 8) | (hi << 24)) ^ loTable[index]!;
    hi = (hi >>> 8) ^ hiTable[index]!;
  }
  return [hi >>> 0, lo >>> 0];
}

function toBytes(data: Uint8Array | string): Uint8Array {
  return typeof data === 'string' ? new TextEncoder().encode(data) : data;
}

/**
 * The CRC-64-AVRO fingerprint of `data` (a string is taken as its UTF-8 bytes), as the 8
 * little-endian bytes the single-object encoding puts on the wire.
 */
export function crc64Avro(data: Uint8Array | string): Uint8Array {
  const [hi, lo] = fingerprintHalves(toBytes(data));
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, lo, true);
  view.setUint32(4, hi, true);
  return bytes;
}

/**
 * The CRC-64-AVRO fingerprint of `data` as an unsigned 64-bit number (Java's
 * `SchemaNormalization.fingerprint64` gives the same bits as a signed long).
 */
export function crc64AvroValue(data: Uint8Array | string): bigint {
  const [hi, lo] = fingerprintHalves(toBytes(data));
  return (BigInt(hi) << 32n) | BigInt(lo);
}
