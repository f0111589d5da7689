/**
 * Plays QEMU's side of many QMP monitors on unix sockets with the least work possible, so a
 * collector benchmark measures the collector and not the source: each VM's event lines are
 * rendered before the clock starts and written in large chunks, honouring backpressure. Speaks
 * only what the collector needs: greeting, `qmp_capabilities` → `{"return": {}}`, then events.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';

const GREETING =
  '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 11}, "package": "bench"}, "capabilities": ["oob"]}}\r\n';
const CHUNK_BYTES = 64 * 1024;

export interface QmpFeeder {
  /** Resolves when every VM's client has negotiated capabilities. */
  allNegotiated: Promise<void>;
  /** Writes each VM's pre-rendered bytes; resolves when all were handed to the kernel. */
  blast(bytesPerVm: readonly Buffer[]): Promise<void>;
  /** Writes one line to VM `vm` (low-rate emission); false if it has no client. */
  send(vm: number, line: string): boolean;
  close(): Promise<void>;
}

export async function startQmpFeeder(
  dir: string,
  vms: number,
  name: (i: number) => string,
): Promise<QmpFeeder> {
  const clients: (Socket | undefined)[] = new Array<Socket | undefined>(vms).fill(undefined);
  let negotiated = 0;
  let resolveAll: () => void = () => {};
  const allNegotiated = new Promise<void>((resolve) => (resolveAll = resolve));
  const servers: Server[] = [];
  await Promise.all(
    Array.from({ length: vms }, (_, i) => {
      const server = createServer((socket) => {
        socket.on('error', () => undefined);
        let pending = '';
        socket.on('data', (chunk: Buffer) => {
          if (clients[i] === socket) return;
          pending += chunk.toString('latin1');
          if (!pending.includes('qmp_capabilities')) return;
          socket.write('{"return": {}}\r\n');
          clients[i] = socket;
          if (++negotiated === vms) resolveAll();
        });
        socket.on('close', () => {
          if (clients[i] === socket) clients[i] = undefined;
        });
        socket.write(GREETING);
      });
      servers.push(server);
      return new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(join(dir, `${name(i)}.qmp`), () => resolve());
      });
    }),
  );

  const writeAll = async (socket: Socket, bytes: Buffer): Promise<void> => {
    for (let offset = 0; offset < bytes.length; offset += CHUNK_BYTES) {
      if (!socket.write(bytes.subarray(offset, offset + CHUNK_BYTES))) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            socket.off('drain', done);
            socket.off('close', done);
            resolve();
          };
          socket.on('drain', done);
          socket.on('close', done);
        });
        if (socket.destroyed) return;
      }
    }
  };

  return {
    allNegotiated,
    blast: async (bytesPerVm) => {
      await Promise.all(
        bytesPerVm.map((bytes, i) => {
          const socket = clients[i];
          return socket === undefined ? Promise.resolve() : writeAll(socket, bytes);
        }),
      );
    },
    send: (vm, line) => {
      const socket = clients[vm];
      if (socket === undefined) return false;
      socket.write(line);
      return true;
    },
    close: async () => {
      for (const socket of clients) socket?.destroy();
      await Promise.all(
        servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
      );
    },
  };
}
