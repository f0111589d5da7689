/**
 * A tiny QMP server for collector tests: it greets, answers `qmp_capabilities`, emits events
 * with a timestamp to negotiated clients, and records every byte any client wrote, so a test can
 * prove what the collector sent. Serves one client at a time like QEMU (a second client waits
 * without a greeting until the first leaves).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { unlink } from 'node:fs/promises';

export const GREETING =
  '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "test"}, "capabilities": ["oob"]}}\r\n';

export interface FakeQmpServer {
  readonly path: string;
  /** Every byte clients wrote, per connection, in order. */
  readonly written: Buffer[];
  /** Number of connections that completed negotiation. */
  readonly negotiations: number;
  /** True while a negotiated client is connected. */
  readonly negotiated: boolean;
  /** Sends an event to the negotiated client; returns its timestamp in µs, or -1 if none. */
  emit(event: string, data?: Record<string, unknown>, timestampMicros?: number): number;
  /** Sends raw bytes to the current client (malformed input tests). */
  sendRaw(text: string | Buffer): void;
  /** Drops the current client, as a QEMU restart of the monitor would. */
  dropClient(): void;
  close(): Promise<void>;
}

export async function startFakeQmpServer(path: string): Promise<FakeQmpServer> {
  const written: Buffer[] = [];
  const queue: Socket[] = [];
  let current: Socket | undefined;
  let negotiated = false;
  let negotiations = 0;
  let clock = 1_795_798_000_000_000;

  const serve = (socket: Socket): void => {
    current = socket;
    negotiated = false;
    const index = written.push(Buffer.alloc(0)) - 1;
    let pending = '';
    socket.on('data', (chunk: Buffer) => {
      written[index] = Buffer.concat([written[index] as Buffer, chunk]);
      pending += chunk.toString('utf8');
      let nl: number;
      while ((nl = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, nl).trim();
        pending = pending.slice(nl + 1);
        if (line === '') continue;
        let command: { execute?: unknown } = {};
        try {
          command = JSON.parse(line) as { execute?: unknown };
        } catch {
          socket.write('{"error": {"class": "GenericError", "desc": "JSON parse error"}}\r\n');
          continue;
        }
        if (command.execute === 'qmp_capabilities' && !negotiated) {
          negotiated = true;
          negotiations++;
          socket.write('{"return": {}}\r\n');
        } else {
          socket.write('{"error": {"class": "CommandNotFound", "desc": "not in this fake"}}\r\n');
        }
      }
    });
    socket.write(GREETING);
  };

  const server: Server = createServer((socket) => {
    socket.on('error', () => {});
    socket.on('close', () => {
      if (current === socket) {
        current = undefined;
        negotiated = false;
        const next = queue.shift();
        if (next !== undefined) serve(next);
      } else {
        const i = queue.indexOf(socket);
        if (i !== -1) queue.splice(i, 1);
      }
    });
    if (current === undefined) serve(socket);
    else queue.push(socket);
  });
  await unlink(path).catch(() => {});
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });

  return {
    path,
    written,
    get negotiations() {
      return negotiations;
    },
    get negotiated() {
      return negotiated && current !== undefined;
    },
    emit(event, data, timestampMicros) {
      if (current === undefined || !negotiated) return -1;
      const ts = timestampMicros ?? (clock += 1000);
      const message: Record<string, unknown> = {
        timestamp: { seconds: Math.floor(ts / 1e6), microseconds: ts % 1e6 },
        event,
      };
      if (data !== undefined) message['data'] = data;
      current.write(JSON.stringify(message) + '\r\n');
      return ts;
    },
    sendRaw(text) {
      current?.write(text);
    },
    dropClient() {
      current?.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        current?.destroy();
        for (const s of queue) s.destroy();
        server.close(() => resolve());
      }),
  };
}
