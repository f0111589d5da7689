/**
 * UTF-8 validation for the QMP decoder without `node:buffer`: the WHATWG decoder in fatal mode
 * rejects exactly what Node's `isUtf8` does (overlong forms, surrogates, code points past
 * U+10FFFF, truncated sequences), and the decoder only asks when a message has high-bit bytes.
 */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Whether `bytes` is well-formed UTF-8. */
export function isUtf8(bytes: Uint8Array): boolean {
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}
