/**
 * A fake libvirt daemon on a unix socket, enough of the remote protocol for the collector's
 * libvirt connection: answers AUTH_LIST (with the auth types a test chooses), AUTH_POLKIT,
 * CONNECT_OPEN and the QEMU monitor event registration (or refuses one with a remote_error),
 * answers keepalive pings unless told not to, records every message the client sends, and sends
 * monitor events or raw bytes on demand.
 */
import { rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import {
  encodeKeepalive,
  encodeMessage,
  encodeMonitorEventMessage,
  KEEPALIVE_PROC,
  KEEPALIVE_PROGRAM,
  LibvirtFrameDecoder,
  MESSAGE_TYPE,
  QEMU_PROC,
  QEMU_PROGRAM,
  REMOTE_PROC,
  REMOTE_PROGRAM,
  XdrReader,
  XdrWriter,
  type LibvirtDomain,
  type LibvirtHeader,
} from '../../../services/collector/core/libvirt-protocol.ts';

export interface ReceivedMessage {
  header: LibvirtHeader;
  body: Buffer;
}

export interface FakeLibvirtdOptions {
  authTypes?: number[];
  /** remote_error message for the step, instead of success. */
  refuse?: Partial<Record<'auth_polkit' | 'open' | 'register', string>>;
  answerPings?: boolean;
}

export interface FakeLibvirtd {
  path: string;
  received: ReceivedMessage[];
  /** Connections that completed at least one registration. */
  registered(): number;
  connections(): number;
  sendEvent(fields: {
    domain: LibvirtDomain;
    event: string;
    micros?: number;
    details?: string | null;
    seconds?: bigint;
  }): void;
  sendRaw(bytes: Buffer): void;
  /** Closes every client connection (as a libvirtd restart does); the server keeps listening. */
  dropClients(): void;
  close(): Promise<void>;
}

export async function startFakeLibvirtd(
  path: string,
  options: FakeLibvirtdOptions = {},
): Promise<FakeLibvirtd> {
  rmSync(path, { force: true });
  const received: ReceivedMessage[] = [];
  const clients = new Map<Socket, Map<string | null, number>>();
  let nextCallbackId = 1;
  let registeredCount = 0;
  let connectionCount = 0;

  const reply = (socket: Socket, header: LibvirtHeader, body: Buffer, error?: string): void => {
    socket.write(
      encodeMessage(
        { ...header, type: MESSAGE_TYPE.REPLY, status: error === undefined ? 0 : 1 },
        error === undefined
          ? body
          : new XdrWriter()
              .int(38)
              .int(7)
              .optionalString(error)
              .int(2)
              .uint(0)
              .uint(0)
              .uint(0)
              .uint(0)
              .int(0)
              .int(0)
              .uint(0)
              .bytes(),
      ),
    );
  };

  const server: Server = createServer((socket) => {
    connectionCount++;
    const callbacks = new Map<string | null, number>();
    clients.set(socket, callbacks);
    const decoder = new LibvirtFrameDecoder();
    socket.on('error', () => {});
    socket.on('close', () => clients.delete(socket));
    socket.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) {
        if (frame.kind !== 'frame') {
          socket.destroy();
          return;
        }
        const { header, body } = frame;
        received.push({ header, body: Buffer.from(body) });
        if (header.prog === KEEPALIVE_PROGRAM) {
          if (header.proc === KEEPALIVE_PROC.PING && options.answerPings !== false) {
            socket.write(encodeKeepalive(KEEPALIVE_PROC.PONG));
          }
          continue;
        }
        if (header.prog === REMOTE_PROGRAM && header.proc === REMOTE_PROC.AUTH_LIST) {
          const types = options.authTypes ?? [0];
          const w = new XdrWriter().uint(types.length);
          for (const type of types) w.int(type);
          reply(socket, header, w.bytes());
        } else if (header.prog === REMOTE_PROGRAM && header.proc === REMOTE_PROC.AUTH_POLKIT) {
          reply(socket, header, new XdrWriter().int(1).bytes(), options.refuse?.auth_polkit);
        } else if (header.prog === REMOTE_PROGRAM && header.proc === REMOTE_PROC.CONNECT_OPEN) {
          reply(socket, header, Buffer.alloc(0), options.refuse?.open);
        } else if (
          header.prog === QEMU_PROGRAM &&
          header.proc === QEMU_PROC.MONITOR_EVENT_REGISTER
        ) {
          const r = new XdrReader(body);
          r.uint(); // dom: the collector always sends NULL (checked by the tests)
          const event = r.optionalString();
          const id = nextCallbackId++;
          if (options.refuse?.register === undefined) {
            callbacks.set(event, id);
            if (callbacks.size === 1) registeredCount++;
          }
          reply(socket, header, new XdrWriter().int(id).bytes(), options.refuse?.register);
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));

  return {
    path,
    received,
    registered: () => registeredCount,
    connections: () => connectionCount,
    sendEvent(fields) {
      for (const [socket, callbacks] of clients) {
        const id = callbacks.get(fields.event) ?? callbacks.get(null);
        if (id === undefined) continue;
        const message = encodeMonitorEventMessage({
          callbackId: id,
          domain: fields.domain,
          event: fields.event,
          seconds: fields.seconds ?? 1_796_000_000n,
          micros: fields.micros ?? 0,
          details: fields.details ?? null,
        });
        socket.write(message);
      }
    },
    sendRaw(bytes) {
      for (const [socket, callbacks] of clients) if (callbacks.size > 0) socket.write(bytes);
    },
    dropClients() {
      for (const socket of clients.keys()) socket.destroy();
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of clients.keys()) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
