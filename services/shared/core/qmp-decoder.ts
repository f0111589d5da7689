import { isUtf8 } from './is-utf8.ts';
import { classifyQmp, excerpt, invalid, type QmpMessage } from './qmp-message.ts';

/**
 * Streaming decoder for the bytes a QMP socket sends.
 *
 * Framing (QEMU `docs/interop/qmp-spec.rst`): "All interactions transmitted by the Server are
 * json-objects, always terminating with CRLF." A normal monitor sends one object per line; a
 * `pretty=on` monitor sends one object over many lines (`{\r\n    "QMP": {\r\n ...`), so lines
 * are not messages. The decoder therefore tracks JSON structure (depth, strings, escapes) and
 * ends a message at the brace that closes it, whatever the chunking of the byte stream.
 *
 * Recovery, so that one bad message never costs the next one:
 * - A line that does not start with `{` is garbage: skipped to the next newline, one rejection.
 * - A newline inside a string ends the candidate (JSON strings cannot hold a raw newline).
 * - A `{` at the start of a line while a candidate is still open starts a new candidate: QEMU's
 *   pretty printer indents nested objects, so only a top-level object starts in column 0, and a
 *   truncated object is abandoned instead of swallowing the messages after it.
 * - After a candidate that fails to parse, the rest of its line is skipped.
 * - A message over `maxBytes` is rejected; its bytes are tracked for structure but dropped as
 *   they arrive, never buffered whole.
 *
 * Bytes are copied only when a message spans chunks, so callers may reuse their buffers.
 *
 * Speed: the common case, whole one-line messages, costs one UTF-8 decode per chunk rather than
 * one per line. The chunk's complete lines are decoded at once (up to `BLOCK_BYTES`); when that
 * text is all ASCII (as long as its bytes, with no U+FFFD), a character offset in it is a byte
 * offset, so each line is parsed from a slice of it and anything unusual falls back to the byte
 * scanner at the same offset. Any other chunk is decoded line by line, as valid UTF-8 or not.
 */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

/** Bytes of complete lines decoded at once on the fast path. */
const BLOCK_BYTES = 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const TAB = 0x09;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const REPLACEMENT_CHAR = '\uFFFD';

const enum Mode {
  /** Between messages, skipping whitespace. */
  Idle,
  /** Inside a candidate object. */
  Object,
  /** Inside a line that did not start with `{`. */
  Garbage,
  /** Dropping the rest of a line after a failed candidate. */
  SkipLine,
}

export class QmpDecoder {
  private readonly maxBytes: number;
  private mode = Mode.Idle;
  /** Bytes of the current candidate or garbage line carried over from earlier chunks. */
  private parts: Buffer[] = [];
  private size = 0;
  private overflow = false;
  private depth = 0;
  private inString = false;
  private escape = false;
  private lineStart = false;
  private highBit = false;
  /**
   * Bytes [blockFrom, blockTo) of the chunk being pushed: complete lines, decoded into `block`
   * when they are all ASCII, or `null` when they are not (decoded line by line instead).
   */
  private block: string | null = null;
  private blockFrom = 0;
  private blockTo = 0;

  constructor(maxBytes: number = MAX_MESSAGE_BYTES) {
    this.maxBytes = maxBytes;
  }

  /** Bytes held for a message still open; never more than `maxBytes`. */
  get pendingBytes(): number {
    return this.overflow ? 0 : this.size;
  }

  /** Decodes what `chunk` completes. Never throws on any input. */
  push(chunk: Uint8Array): QmpMessage[] {
    const buf = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    const out: QmpMessage[] = [];
    this.block = null;
    this.blockFrom = this.blockTo = 0;
    let i = 0;
    while (i < buf.length) {
      switch (this.mode) {
        case Mode.Idle:
          i = this.scanIdle(buf, i, out);
          break;
        case Mode.Object:
          i = this.scanObject(buf, i, out);
          break;
        case Mode.Garbage:
          i = this.scanGarbage(buf, i, out);
          break;
        case Mode.SkipLine:
          i = this.skipLine(buf, i);
          break;
      }
    }
    this.block = null;
    return out;
  }

  /** Ends the stream: whatever is pending is rejected (or, for a garbage line, classified). */
  end(): QmpMessage[] {
    const out: QmpMessage[] = [];
    if (this.mode === Mode.Object) {
      out.push(
        this.overflow
          ? invalid('too_large', `message over ${this.maxBytes} bytes`)
          : invalid('not_json', 'input ended inside a JSON object'),
      );
    } else if (this.mode === Mode.Garbage) {
      out.push(this.classifyGarbage());
    }
    this.mode = Mode.Idle;
    this.resetCandidate();
    return out;
  }

  private scanIdle(buf: Buffer, start: number, out: QmpMessage[]): number {
    for (let i = start; i < buf.length; i++) {
      const b = buf[i];
      if (b === SPACE || b === LF || b === CR || b === TAB) continue;
      if (b === OPEN_BRACE) {
        const next = this.decodeWholeLine(buf, i, out);
        if (next !== -1) return next;
        this.resetCandidate();
        this.mode = Mode.Object;
        return i;
      }
      this.resetCandidate();
      this.mode = Mode.Garbage;
      return i;
    }
    return buf.length;
  }

  /**
   * Fast path for the common case: a one-line message complete in this chunk. Returns the index
   * after its newline, or -1 to let the structural scanner handle it.
   */
  private decodeWholeLine(buf: Buffer, start: number, out: QmpMessage[]): number {
    if (start >= this.blockTo) this.decodeBlock(buf, start);
    if (this.block !== null && start >= this.blockFrom && start < this.blockTo) {
      return this.decodeAsciiLine(this.block, start, out);
    }
    const newline = buf.indexOf(LF, start);
    if (newline === -1 || newline - start > this.maxBytes) return -1;
    let end = newline;
    if (buf[end - 1] === CR) end--;
    if (buf[end - 1] !== CLOSE_BRACE) return -1;
    const text = buf.toString('utf8', start, end);
    if (text.includes(REPLACEMENT_CHAR) && !isUtf8(buf.subarray(start, end))) {
      out.push(invalid('invalid_utf8', 'message is not valid UTF-8'));
      return newline + 1;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return -1;
    }
    out.push(classifyQmp(value as Record<string, unknown>, text.length));
    return newline + 1;
  }

  /** Decodes the complete lines from `start` (a `{`) on, up to `BLOCK_BYTES`, into `block`. */
  private decodeBlock(buf: Buffer, start: number): void {
    const last = buf.lastIndexOf(LF, Math.min(buf.length, start + BLOCK_BYTES) - 1);
    this.block = null;
    if (last < start) {
      this.blockFrom = this.blockTo = 0;
      return;
    }
    this.blockFrom = start;
    this.blockTo = last + 1;
    const text = buf.toString('utf8', start, last + 1);
    // Equal lengths: each byte became one character, an ASCII one unless it was replaced.
    if (text.length === last + 1 - start && !text.includes(REPLACEMENT_CHAR)) this.block = text;
  }

  /** `decodeWholeLine` for a line of the ASCII block: character offsets are byte offsets. */
  private decodeAsciiLine(block: string, start: number, out: QmpMessage[]): number {
    const from = start - this.blockFrom;
    // The block ends with a newline, so there is one.
    const newline = block.indexOf('\n', from);
    if (newline - from > this.maxBytes) return -1;
    let end = newline;
    if (block.charCodeAt(end - 1) === CR) end--;
    if (block.charCodeAt(end - 1) !== CLOSE_BRACE) return -1;
    const text = block.slice(from, end);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return -1;
    }
    out.push(classifyQmp(value as Record<string, unknown>, text.length));
    return this.blockFrom + newline + 1;
  }

  private scanObject(buf: Buffer, start: number, out: QmpMessage[]): number {
    for (let i = start; i < buf.length; i++) {
      const b = buf[i] as number;
      if (this.inString) {
        if (b === LF) {
          this.rejectCandidate(out, 'not_json', 'newline inside a JSON string');
          this.mode = Mode.Idle;
          return i;
        }
        if (this.escape) this.escape = false;
        else if (b === BACKSLASH) this.escape = true;
        else if (b === QUOTE) this.inString = false;
        else if (b >= 0x80) this.highBit = true;
        continue;
      }
      const atLineStart = this.lineStart;
      this.lineStart = b === LF;
      if (b === QUOTE) {
        this.inString = true;
      } else if (b === OPEN_BRACE || b === OPEN_BRACKET) {
        if (atLineStart && b === OPEN_BRACE) {
          const tooLarge = this.overflow || this.size + (i - start) > this.maxBytes;
          this.rejectCandidate(out, tooLarge ? 'too_large' : 'not_json', 'unterminated object');
          this.mode = Mode.Idle;
          return i;
        }
        this.depth++;
      } else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
        this.depth--;
        if (this.depth <= 0) {
          this.completeCandidate(buf, start, i + 1, out);
          return i + 1;
        }
      } else if (b >= 0x80) {
        this.highBit = true;
      }
    }
    this.carry(buf, start, buf.length);
    return buf.length;
  }

  private completeCandidate(buf: Buffer, start: number, end: number, out: QmpMessage[]): void {
    const total = this.size + (end - start);
    if (this.overflow || total > this.maxBytes) {
      this.rejectCandidate(out, 'too_large', `message over ${this.maxBytes} bytes`);
      this.mode = Mode.SkipLine;
      return;
    }
    const bytes =
      this.parts.length === 0
        ? buf.subarray(start, end)
        : Buffer.concat([...this.parts, buf.subarray(start, end)]);
    const message = parseCandidate(bytes, this.highBit);
    out.push(message);
    this.mode = message.kind === 'invalid' ? Mode.SkipLine : Mode.Idle;
    this.resetCandidate();
  }

  private scanGarbage(buf: Buffer, start: number, out: QmpMessage[]): number {
    const newline = buf.indexOf(LF, start);
    const end = newline === -1 ? buf.length : newline;
    this.carry(buf, start, end);
    if (newline === -1) return buf.length;
    out.push(this.classifyGarbage());
    this.mode = Mode.Idle;
    this.resetCandidate();
    return newline + 1;
  }

  private skipLine(buf: Buffer, start: number): number {
    const newline = buf.indexOf(LF, start);
    if (newline === -1) return buf.length;
    this.mode = Mode.Idle;
    return newline + 1;
  }

  /** Keeps bytes [start, end) of a chunk for a message still open, until the size limit. */
  private carry(buf: Buffer, start: number, end: number): void {
    if (this.overflow || end <= start) return;
    this.size += end - start;
    if (this.size > this.maxBytes) {
      this.overflow = true;
      this.parts = [];
      return;
    }
    this.parts.push(Buffer.from(buf.subarray(start, end)));
  }

  private classifyGarbage(): QmpMessage {
    if (this.overflow) return invalid('too_large', `line over ${this.maxBytes} bytes`);
    const bytes = Buffer.concat(this.parts);
    if (!isUtf8(bytes)) return invalid('invalid_utf8', 'line is not valid UTF-8');
    const text = bytes.toString('utf8').trimEnd();
    try {
      JSON.parse(text);
    } catch {
      return invalid('not_json', excerpt(text));
    }
    return invalid('not_object', excerpt(text));
  }

  private rejectCandidate(
    out: QmpMessage[],
    reason: 'not_json' | 'too_large',
    detail: string,
  ): void {
    out.push(invalid(reason, detail));
    this.resetCandidate();
  }

  private resetCandidate(): void {
    this.parts = [];
    this.size = 0;
    this.overflow = false;
    this.depth = 0;
    this.inString = false;
    this.escape = false;
    this.lineStart = false;
    this.highBit = false;
  }
}

function parseCandidate(bytes: Buffer, highBit: boolean): QmpMessage {
  if (highBit && !isUtf8(bytes)) return invalid('invalid_utf8', 'message is not valid UTF-8');
  const text = bytes.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return invalid('not_json', excerpt(text));
  }
  // A candidate starts with `{`, so whatever parses is an object.
  return classifyQmp(value as Record<string, unknown>, text.length);
}

/** Decodes a whole byte string (a file, a test fixture) at once. */
export function decodeQmpBytes(bytes: Uint8Array): QmpMessage[] {
  const decoder = new QmpDecoder();
  return [...decoder.push(bytes), ...decoder.end()];
}
