/**
 * The part of libvirt's RPC protocol the collector speaks: XDR (RFC 4506) over libvirtd's unix
 * socket. Sources: libvirt `src/rpc/virnetprotocol.x`, `src/rpc/virkeepaliveprotocol.x`,
 * `src/remote/remote_protocol.x`, `src/remote/qemu_protocol.x`.
 *
 * Framing (virnetprotocol.x "RPC wire format"):
 *
 *   Length  int                  total bytes of the message INCLUDING this length word
 *   Header  virNetMessageHeader  { unsigned prog; unsigned vers; int proc;
 *                                  virNetMessageType type; unsigned serial;
 *                                  virNetMessageStatus status; }
 *   Payload                      XXX_args (CALL), XXX_ret or remote_error (REPLY), XXX_msg (MESSAGE)
 *
 * "VIR_NET_MESSAGE_MAX = 16777216" bounds a message; a length below the header or above the
 * bound means the stream lost its framing, which no byte after it can recover: `fatal`.
 *
 * The collector only ever sends (REMOTE_PROGRAM 0x20008086, QEMU_PROGRAM 0x20008087,
 * KEEPALIVE_PROGRAM 0x6b656570):
 *
 *   REMOTE_PROC_AUTH_LIST = 66                         (no args) → remote_auth_type types<>
 *   REMOTE_PROC_AUTH_POLKIT = 70                       (no args) → int complete
 *   REMOTE_PROC_CONNECT_OPEN = 1                       { remote_string name; unsigned flags; }
 *   QEMU_PROC_CONNECT_DOMAIN_MONITOR_EVENT_REGISTER = 4
 *        { remote_domain dom; remote_string event; unsigned flags; } → { int callbackID; }
 *   REMOTE_PROC_CONNECT_CLOSE = 2                      (no args), on a clean stop
 *   KEEPALIVE_PROC_PING = 1 / KEEPALIVE_PROC_PONG = 2  (type MESSAGE, no payload)
 *
 * and reads, besides the replies:
 *
 *   QEMU_PROC_DOMAIN_MONITOR_EVENT = 6 (type MESSAGE)
 *     struct qemu_domain_monitor_event_msg {
 *         int callbackID; remote_nonnull_domain dom; remote_nonnull_string event;
 *         hyper seconds; unsigned int micros; remote_string details; };
 *     struct remote_nonnull_domain { remote_nonnull_string name; opaque uuid[16]; int id; };
 *
 * `details` is QEMU's `data` member as JSON text (NULL when the event had none); `seconds` and
 * `micros` are QEMU's `timestamp` as libvirt read it from the monitor.
 */
import { classifyQmp, excerpt, invalid, isObject } from '../../shared/core/qmp-message.ts';
import type { QmpEvent, QmpInvalid } from '../../shared/core/qmp-message.ts';

export const REMOTE_PROGRAM = 0x20008086;
export const QEMU_PROGRAM = 0x20008087;
export const KEEPALIVE_PROGRAM = 0x6b656570;
const PROTOCOL_VERSION = 1;

export const REMOTE_PROC = { CONNECT_OPEN: 1, CONNECT_CLOSE: 2, AUTH_LIST: 66, AUTH_POLKIT: 70 };
export const QEMU_PROC = { MONITOR_EVENT_REGISTER: 4, MONITOR_EVENT: 6 };
export const KEEPALIVE_PROC = { PING: 1, PONG: 2 };

export const MESSAGE_TYPE = { CALL: 0, REPLY: 1, MESSAGE: 2, STREAM: 3 };
export const MESSAGE_STATUS = { OK: 0, ERROR: 1, CONTINUE: 2 };

/** `remote_auth_type`. */
export const AUTH_TYPE = { NONE: 0, SASL: 1, POLKIT: 2 };

const HEADER_BYTES = 28;
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** VIR_NET_MESSAGE_STRING_MAX. */
const MAX_STRING_BYTES = 4 * 1024 * 1024;

export interface LibvirtHeader {
  prog: number;
  vers: number;
  proc: number;
  type: number;
  serial: number;
  status: number;
}

export type LibvirtFrame =
  { kind: 'frame'; header: LibvirtHeader; body: Buffer } | { kind: 'fatal'; detail: string };

/** Splits the socket's byte stream into messages. After a `fatal` it returns nothing more. */
export class LibvirtFrameDecoder {
  private parts: Buffer[] = [];
  private size = 0;
  private broken = false;

  /** Bytes held for an incomplete message. */
  get pendingBytes(): number {
    return this.size;
  }

  push(chunk: Buffer): LibvirtFrame[] {
    if (this.broken) return [];
    this.parts.push(chunk);
    this.size += chunk.length;
    const out: LibvirtFrame[] = [];
    while (this.size >= 4) {
      const head = this.peek(4);
      const length = head.readUInt32BE(0);
      if (length < HEADER_BYTES || length > MAX_MESSAGE_BYTES) {
        this.broken = true;
        this.parts = [];
        this.size = 0;
        out.push({ kind: 'fatal', detail: `message length ${length} out of range` });
        return out;
      }
      if (this.size < length) break;
      const message = this.take(length);
      out.push({
        kind: 'frame',
        header: {
          prog: message.readUInt32BE(4),
          vers: message.readUInt32BE(8),
          proc: message.readInt32BE(12),
          type: message.readInt32BE(16),
          serial: message.readUInt32BE(20),
          status: message.readInt32BE(24),
        },
        body: message.subarray(HEADER_BYTES),
      });
    }
    return out;
  }

  private peek(n: number): Buffer {
    const first = this.parts[0] as Buffer;
    if (first.length >= n) return first;
    this.parts = [Buffer.concat(this.parts)];
    return this.parts[0] as Buffer;
  }

  private take(n: number): Buffer {
    const all = this.peek(n);
    const message = all.subarray(0, n);
    const rest = all.subarray(n);
    this.parts = rest.length === 0 ? [] : [rest];
    this.size -= n;
    return message;
  }
}

/** One message as bytes: length word, header, body. */
export function encodeMessage(header: LibvirtHeader, body: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(HEADER_BYTES + body.length);
  out.writeUInt32BE(out.length, 0);
  out.writeUInt32BE(header.prog, 4);
  out.writeUInt32BE(header.vers, 8);
  out.writeInt32BE(header.proc, 12);
  out.writeInt32BE(header.type, 16);
  out.writeUInt32BE(header.serial, 20);
  out.writeInt32BE(header.status, 24);
  body.copy(out, HEADER_BYTES);
  return out;
}

export function encodeCall(prog: number, proc: number, serial: number, body?: Buffer): Buffer {
  return encodeMessage(
    { prog, vers: PROTOCOL_VERSION, proc, type: MESSAGE_TYPE.CALL, serial, status: 0 },
    body,
  );
}

export function encodeKeepalive(proc: number): Buffer {
  return encodeMessage({
    prog: KEEPALIVE_PROGRAM,
    vers: PROTOCOL_VERSION,
    proc,
    type: MESSAGE_TYPE.MESSAGE,
    serial: 0,
    status: MESSAGE_STATUS.OK,
  });
}

/** XDR writer for the few argument shapes the collector sends. */
export class XdrWriter {
  private readonly chunks: Buffer[] = [];

  uint(value: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(value >>> 0, 0);
    this.chunks.push(b);
    return this;
  }

  int(value: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(value, 0);
    this.chunks.push(b);
    return this;
  }

  string(value: string): this {
    const bytes = Buffer.from(value, 'utf8');
    this.uint(bytes.length);
    this.chunks.push(bytes, Buffer.alloc((4 - (bytes.length % 4)) % 4));
    return this;
  }

  /** An XDR optional-data (`type *`) string: a 0/1 word, then the string when present. */
  optionalString(value: string | null): this {
    return value === null ? this.uint(0) : this.uint(1).string(value);
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Thrown by XdrReader only; the decode functions below turn it into an `invalid`. */
class XdrShort extends Error {}

/** XDR reader that never reads past the body. */
export class XdrReader {
  private offset = 0;
  constructor(private readonly body: Buffer) {}

  get remaining(): number {
    return this.body.length - this.offset;
  }

  private need(n: number): void {
    if (n < 0 || this.offset + n > this.body.length)
      throw new XdrShort(`needs ${n} bytes at ${this.offset} of ${this.body.length}`);
  }

  uint(): number {
    this.need(4);
    const v = this.body.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  int(): number {
    this.need(4);
    const v = this.body.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  hyper(): bigint {
    this.need(8);
    const v = this.body.readBigInt64BE(this.offset);
    this.offset += 8;
    return v;
  }

  opaque(n: number): Buffer {
    this.need(n);
    const v = this.body.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }

  string(): string {
    const length = this.uint();
    if (length > MAX_STRING_BYTES) throw new XdrShort(`string of ${length} bytes`);
    const padded = length + ((4 - (length % 4)) % 4);
    this.need(padded);
    const bytes = this.body.subarray(this.offset, this.offset + length);
    this.offset += padded;
    return UTF8.decode(bytes);
  }

  optionalString(): string | null {
    const present = this.uint();
    if (present === 0) return null;
    if (present !== 1) throw new XdrShort(`optional flag ${present}`);
    return this.string();
  }
}

// A fatal decoder rejects a string that is not UTF-8 instead of inventing U+FFFD characters.
const UTF8 = new TextDecoder('utf-8', { fatal: true });

function read<T>(body: Buffer, what: string, f: (r: XdrReader) => T): T | QmpInvalid {
  try {
    return f(new XdrReader(body));
  } catch (error) {
    if (error instanceof XdrShort) return invalid('not_qmp', `${what}: ${error.message}`);
    if (error instanceof TypeError) return invalid('invalid_utf8', `${what}: string not UTF-8`);
    throw error;
  }
}

export function encodeConnectOpenArgs(name: string | null, flags: number): Buffer {
  return new XdrWriter().optionalString(name).uint(flags).bytes();
}

/** Registration for every domain (`dom` NULL, so domains started later too). */
export function encodeRegisterArgs(event: string | null, flags: number): Buffer {
  return new XdrWriter().uint(0).optionalString(event).uint(flags).bytes();
}

export function decodeAuthList(body: Buffer): number[] | QmpInvalid {
  return read(body, 'auth list', (r) => {
    const n = r.uint();
    if (n > 20) throw new XdrShort(`${n} auth types`);
    return Array.from({ length: n }, () => r.int());
  });
}

export function decodeInt(body: Buffer): number | QmpInvalid {
  return read(body, 'reply', (r) => r.int());
}

export interface LibvirtError {
  code: number;
  domain: number;
  message: string;
}

/** `remote_error`'s leading members; the rest (str1..net) are not needed. */
export function decodeRemoteError(body: Buffer): LibvirtError | QmpInvalid {
  return read(body, 'error', (r) => {
    const code = r.int();
    const domain = r.int();
    const message = r.optionalString() ?? '';
    return { code, domain, message };
  });
}

export interface LibvirtDomain {
  name: string;
  /** Canonical 8-4-4-4-12 lower-case hex. */
  uuid: string;
  /** Runtime id, -1 when the domain is not running. */
  id: number;
}

export interface MonitorEvent {
  callbackId: number;
  domain: LibvirtDomain;
  event: QmpEvent;
}

/**
 * A `qemu_domain_monitor_event_msg` as the QMP event QEMU sent. Anything QMP would reject is
 * rejected with the same reasons: a timestamp out of range (`bad_timestamp`), `details` that is
 * not a JSON object (`not_json` / `not_qmp`), strings that are not UTF-8, a truncated message.
 */
export function decodeMonitorEvent(body: Buffer): MonitorEvent | QmpInvalid {
  const fields = read(body, 'monitor event', (r) => {
    const callbackId = r.int();
    const name = r.string();
    const uuid = formatUuid(r.opaque(16));
    const id = r.int();
    const event = r.string();
    const seconds = r.hyper();
    const micros = r.uint();
    const details = r.optionalString();
    return { callbackId, domain: { name, uuid, id }, event, seconds, micros, details };
  });
  if ('kind' in fields) return fields;
  const { callbackId, domain, event, seconds, micros, details } = fields;
  let data: unknown;
  if (details !== null) {
    try {
      data = JSON.parse(details);
    } catch {
      return invalid('not_json', `${event}: details ${excerpt(details)}`);
    }
  }
  if (data !== undefined && !isObject(data)) {
    return invalid('not_qmp', `${event}: details is not an object`);
  }
  // Same checks as a QMP event read from a socket (range of seconds and microseconds).
  const asQmp = classifyQmp({
    event,
    timestamp: {
      seconds: seconds > BigInt(Number.MAX_SAFE_INTEGER) / 1_000_000n ? -1 : Number(seconds),
      microseconds: micros,
    },
    ...(data === undefined ? {} : { data }),
  });
  if (asQmp.kind === 'invalid') return asQmp;
  if (asQmp.kind !== 'event') return invalid('not_qmp', `${event}: not an event`);
  return { callbackId, domain, event: asQmp };
}

function formatUuid(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Builds a monitor event message as libvirtd sends it (for fakes, fixtures and fuzzing). */
export function encodeMonitorEventMessage(fields: {
  callbackId: number;
  domain: LibvirtDomain;
  event: string;
  seconds: bigint;
  micros: number;
  details: string | null;
}): Buffer {
  const w = new XdrWriter().int(fields.callbackId).string(fields.domain.name);
  const head = w.bytes();
  const uuid = Buffer.from(fields.domain.uuid.replaceAll('-', ''), 'hex');
  const seconds = Buffer.alloc(8);
  seconds.writeBigInt64BE(fields.seconds, 0);
  const tail1 = new XdrWriter().int(fields.domain.id).string(fields.event).bytes();
  const tail2 = new XdrWriter().uint(fields.micros).optionalString(fields.details).bytes();
  return encodeMessage(
    {
      prog: QEMU_PROGRAM,
      vers: PROTOCOL_VERSION,
      proc: QEMU_PROC.MONITOR_EVENT,
      type: MESSAGE_TYPE.MESSAGE,
      serial: 0,
      status: MESSAGE_STATUS.OK,
    },
    Buffer.concat([head, uuid, tail1, seconds, tail2]),
  );
}

/**
 * The registrations for `events`: one exact-match registration per event name (flags 0), or a
 * single one for every event when the list is empty. `SHUTDOWN` is always among them: it ends
 * the domain's session (libvirt's monitor events say nothing else about a domain going away). libvirt's REGISTER_FLAG_REGEX is not used:
 * its pattern syntax changed with the library behind it (POSIX basic regexps, later GLib's
 * PCRE-like GRegex on libvirt 9.0 here, where `^(STOP|RESUME)$` works and `STOP\\|RESUME` matches
 * nothing), while an exact name means the same on every version since 1.2.3.
 */
export function registrations(events: readonly string[]): (string | null)[] {
  return events.length === 0 ? [null] : [...new Set([...events, 'SHUTDOWN'])];
}
