/**
 * The labels of the exemplar the exporter attaches to a latency observation: which host, VM and
 * device it was, and when QEMU saw the event that closed it (docs/metrics.md, "Exemplars").
 *
 * OpenMetrics 1.0, "Exemplars": "The combined length of the label names and values of an
 * Exemplar's LabelSet MUST NOT exceed 128 UTF-8 characters." prom-client counts UTF-16 code units
 * and throws past 128; Prometheus (2.42, checked against it in test/e2e/exporter) counts runes of
 * the values as written in the exposition, escapes included, and silently drops the exemplar past
 * 128. So this module measures a value in UTF-16 code units (never fewer than runes) and counts
 * a backslash, a double quote and a newline twice (`\\`, `\"`, `\n` once escaped): a set it
 * returns passes both.
 *
 * The rule, in order:
 *   1. `qemu_ts` is the closing event's QEMU timestamp as `seconds.micros` (QEMU's own two
 *      fields), never shortened: 17 characters for any date this century.
 *   2. `device` is the device-id, or, when QEMU had none, the qom-path without its `/machine/`
 *      prefix (`peripheral-anon/device[3]`).
 *   3. Empty values are left out.
 *   4. If host, vm and device do not fit in what names and `qemu_ts` leave of the 128, the
 *      space is shared max-min fairly: values shorter than an equal share keep their length, and
 *      the rest is split evenly among the longer ones (lengths as written). A shortened host or vm keeps its head and
 *      ends in `~` (names tend to differ at the front: `hv-rack12…`); a shortened device keeps its
 *      tail and starts with `~` (qom-paths differ at the end: `…/device[3]`). A cut never splits
 *      a surrogate pair.
 */

export const EXEMPLAR_LABEL_LIMIT = 128;
/** Marks where a value was cut. */
export const SHORTENED_MARK = '~';
const QOM_PREFIX = '/machine/';

export interface ExemplarSource {
  host: string;
  vm: string;
  deviceId: string;
  qomPath: string;
  /** QEMU timestamp of the event that closed the observation, µs since the epoch. */
  closingMicros: number;
}

export type ExemplarLabels = Partial<Record<'host' | 'vm' | 'device' | 'qemu_ts', string>>;

/** Names plus values as written, in UTF-16 code units: what both limits are checked against. */
export function exemplarLabelSetLength(labels: Readonly<Record<string, string>>): number {
  let length = 0;
  for (const [name, value] of Object.entries(labels)) length += name.length + writtenLength(value);
  return length;
}

/** UTF-16 code units of a label value once escaped for the exposition. */
export function writtenLength(value: string): number {
  let length = value.length;
  for (let i = 0; i < value.length; i++) if (isEscaped(value.charCodeAt(i))) length++;
  return length;
}

/** `\`, `"` and newline are written as two characters. */
function isEscaped(code: number): boolean {
  return code === 0x5c || code === 0x22 || code === 0x0a;
}

export function qemuTimestampLabel(micros: number): string {
  if (!Number.isSafeInteger(micros)) return String(micros).slice(0, 24);
  const sign = micros < 0 ? '-' : '';
  const abs = Math.abs(micros);
  const seconds = Math.floor(abs / 1e6);
  return `${sign}${seconds}.${String(abs - seconds * 1e6).padStart(6, '0')}`;
}

export function deviceLabel(deviceId: string, qomPath: string): string {
  if (deviceId !== '') return deviceId;
  return qomPath.startsWith(QOM_PREFIX) ? qomPath.slice(QOM_PREFIX.length) : qomPath;
}

export function exemplarLabelsOf(source: ExemplarSource): ExemplarLabels {
  const qemuTs = qemuTimestampLabel(source.closingMicros);
  const { host, vm } = source;
  const device = deviceLabel(source.deviceId, source.qomPath);
  // Fast path, on every observation of a normal fleet: everything fits as it is.
  const length =
    'qemu_ts'.length +
    qemuTs.length +
    (host === '' ? 0 : 'host'.length + writtenLength(host)) +
    (vm === '' ? 0 : 'vm'.length + writtenLength(vm)) +
    (device === '' ? 0 : 'device'.length + writtenLength(device));
  if (length <= EXEMPLAR_LABEL_LIMIT) {
    const labels: ExemplarLabels = {};
    if (host !== '') labels.host = host;
    if (vm !== '') labels.vm = vm;
    if (device !== '') labels.device = device;
    labels.qemu_ts = qemuTs;
    return labels;
  }
  const wanted: [name: 'host' | 'vm' | 'device', value: string, keep: 'head' | 'tail'][] = [
    ['host', host, 'head'],
    ['vm', vm, 'head'],
    ['device', device, 'tail'],
  ];
  const present = wanted.filter(([, value]) => value !== '');
  const fixed = 'qemu_ts'.length + qemuTs.length;
  const names = present.reduce((n, [name]) => n + name.length, 0);
  const sizes = fairShares(
    present.map(([, value]) => writtenLength(value)),
    EXEMPLAR_LABEL_LIMIT - fixed - names,
  );
  const labels: ExemplarLabels = {};
  present.forEach(([name, value, keep], i) => {
    labels[name] = shorten(value, sizes[i] as number, keep);
  });
  labels.qemu_ts = qemuTs;
  return labels;
}

/**
 * Max-min fair split of `budget` among values of the given lengths: each gets its length if
 * that is at most an equal share of what is left, the rest split what remains evenly.
 */
export function fairShares(lengths: readonly number[], budget: number): number[] {
  const sizes = [...lengths];
  const total = lengths.reduce((a, b) => a + b, 0);
  if (total <= budget) return sizes;
  let left = Math.max(0, budget);
  const open = lengths.map((length, i) => ({ length, i })).sort((a, b) => a.length - b.length);
  while (open.length > 0) {
    const share = Math.floor(left / open.length);
    const first = open[0] as { length: number; i: number };
    if (first.length <= share) {
      sizes[first.i] = first.length;
      left -= first.length;
      open.shift();
      continue;
    }
    // Everyone left is longer than the share: split evenly, the remainder to the first ones.
    let extra = left - share * open.length;
    for (const { i } of open) {
      sizes[i] = share + (extra > 0 ? 1 : 0);
      extra--;
    }
    break;
  }
  return sizes;
}

/**
 * `value` cut to at most `size` code units as written (escapes count twice), marked, never
 * splitting a surrogate pair.
 */
export function shorten(value: string, size: number, keep: 'head' | 'tail'): string {
  if (writtenLength(value) <= size) return value;
  if (size <= 0) return '';
  let room = size - SHORTENED_MARK.length;
  if (keep === 'head') {
    let end = 0;
    while (end < value.length) {
      const pair =
        isHighSurrogate(value.charCodeAt(end)) && isLowSurrogate(value.charCodeAt(end + 1)) ? 2 : 1;
      const cost = pair === 2 ? 2 : isEscaped(value.charCodeAt(end)) ? 2 : 1;
      if (cost > room) break;
      room -= cost;
      end += pair;
    }
    return value.slice(0, end) + SHORTENED_MARK;
  }
  let start = value.length;
  while (start > 0) {
    const pair =
      isLowSurrogate(value.charCodeAt(start - 1)) && isHighSurrogate(value.charCodeAt(start - 2))
        ? 2
        : 1;
    const cost = pair === 2 ? 2 : isEscaped(value.charCodeAt(start - 1)) ? 2 : 1;
    if (cost > room) break;
    room -= cost;
    start -= pair;
  }
  return SHORTENED_MARK + value.slice(start);
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}
