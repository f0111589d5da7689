/**
 * QMP output bytes exactly as QEMU writes them (`qobject/json-writer.c`, `monitor/qmp.c`):
 *
 * - compact: `{"a": 1, "b": [1, 2]}` — `": "` after a key, `", "` between members;
 * - pretty (`-mon ...,pretty=on`): a newline and 4 spaces per level before every member and
 *   before every closing bracket, so an empty object is `{` newline `}` at the outer indent;
 * - strings: `\"` `\\` `\b` `\f` `\n` `\r` `\t`, every other code point below 0x20 or from 0x7F
 *   as `\uXXXX` (upper-case hex; surrogate pairs beyond the BMP), since QEMU "sends its output
 *   encoded in ASCII";
 * - the monitor appends `\n` and turns every `\n` into `\r\n` ("always terminating with CRLF").
 *
 * Member order is the insertion order of the object, which callers choose to match QEMU's
 * observed output (`{"return": {}, "id": 1}` but `{"id": 2, "error": ...}`).
 */
export type QmpJson =
  string | number | boolean | null | readonly QmpJson[] | { readonly [key: string]: QmpJson };

export function formatQmpMessage(value: QmpJson, pretty: boolean): string {
  const text = writeValue(value, pretty, 0) + '\n';
  return pretty ? text.replaceAll('\n', '\r\n') : text.slice(0, -1) + '\r\n';
}

function writeValue(value: QmpJson, pretty: boolean, depth: number): string {
  if (typeof value === 'string') return quote(value);
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new RangeError(`QMP simulator writes integers only`);
    return String(value);
  }
  if (typeof value === 'boolean' || value === null) return String(value);
  const isArray = Array.isArray(value);
  const entries: [string | null, QmpJson][] = isArray
    ? (value as readonly QmpJson[]).map((v) => [null, v])
    : Object.entries(value as { readonly [key: string]: QmpJson });
  const inner = pretty ? '\n' + ' '.repeat((depth + 1) * 4) : '';
  const outer = pretty ? '\n' + ' '.repeat(depth * 4) : '';
  const separator = pretty ? ',' + inner : ', ';
  const members = entries.map(
    ([key, v]) => (key === null ? '' : quote(key) + ': ') + writeValue(v, pretty, depth + 1),
  );
  const body = members.length === 0 ? '' : inner + members.join(separator);
  return (isArray ? '[' : '{') + body + outer + (isArray ? ']' : '}');
}

const SHORT_ESCAPES: Readonly<Record<string, string>> = {
  '"': '\\"',
  '\\': '\\\\',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
};

/** Printable ASCII other than `"` and `\`: written as is (nearly every string QMP sends). */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function quote(text: string): string {
  if (PLAIN.test(text)) return '"' + text + '"';
  let out = '"';
  for (const ch of text) {
    const short = SHORT_ESCAPES[ch];
    if (short !== undefined) {
      out += short;
      continue;
    }
    const cp = ch.codePointAt(0) as number;
    if (cp > 0xffff) {
      out += hex4(0xd800 + ((cp - 0x10000) >> 10)) + hex4(0xdc00 + ((cp - 0x10000) & 0x3ff));
    } else if (cp < 0x20 || cp >= 0x7f) {
      out += hex4(cp);
    } else {
      out += ch;
    }
  }
  return out + '"';
}

function hex4(cp: number): string {
  return '\\u' + cp.toString(16).toUpperCase().padStart(4, '0');
}
