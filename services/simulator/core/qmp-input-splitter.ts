/**
 * Splits what a QMP client sends into top-level JSON values. QEMU's input is a JSON stream, not
 * lines (`docs/interop/qmp-spec.rst`: "The server expects its input to be encoded in UTF-8"), so
 * a command may arrive in pieces or several in one chunk. The splitter tracks brackets and
 * strings; it does not validate — `JSON.parse` of each piece does.
 *
 * A piece that exceeds `maxBytes` is dropped as it arrives and reported once as too large, so a
 * client cannot make the server buffer without bound.
 */
export type QmpInput =
  | { kind: 'value'; text: string; value: unknown }
  | { kind: 'parse-error'; text: string }
  | { kind: 'too-large' };

export const MAX_INPUT_BYTES = 64 * 1024;

export class QmpInputSplitter {
  private readonly maxBytes: number;
  private pending = '';
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Inside a bare scalar at top level (`42`, `true`, garbage), which ends at whitespace. */
  private inScalar = false;
  private oversized = false;

  constructor(maxBytes = MAX_INPUT_BYTES) {
    this.maxBytes = maxBytes;
  }

  push(text: string): QmpInput[] {
    const out: QmpInput[] = [];
    for (const ch of text) {
      if (this.depth === 0 && !this.inScalar) {
        if (ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n') continue;
        if (ch === '{' || ch === '[') this.depth = 1;
        else this.inScalar = true;
        this.append(ch);
        if (this.inScalar && (ch === '}' || ch === ']')) this.finish(out);
        continue;
      }
      if (this.inScalar) {
        if (ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n') this.finish(out);
        else this.append(ch);
        continue;
      }
      this.append(ch);
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (ch === '\\') this.escaped = true;
        else if (ch === '"') this.inString = false;
      } else if (ch === '"') {
        this.inString = true;
      } else if (ch === '{' || ch === '[') {
        this.depth++;
      } else if (ch === '}' || ch === ']') {
        this.depth--;
        if (this.depth === 0) this.finish(out);
      }
    }
    return out;
  }

  private append(ch: string): void {
    if (this.oversized) return;
    this.pending += ch;
    if (this.pending.length > this.maxBytes) {
      this.oversized = true;
      this.pending = '';
    }
  }

  private finish(out: QmpInput[]): void {
    if (this.oversized) {
      out.push({ kind: 'too-large' });
    } else {
      const text = this.pending;
      try {
        out.push({ kind: 'value', text, value: JSON.parse(text) as unknown });
      } catch {
        out.push({ kind: 'parse-error', text });
      }
    }
    this.pending = '';
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
    this.inScalar = false;
    this.oversized = false;
  }
}
