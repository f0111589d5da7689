/**
 * A connection flood for HTTP limit tests, run as its own process (so that its sockets count
 * against its own file descriptors and memory, not the server's):
 *   node --import tsx test/helpers/http-flood.ts PORT IDLE SLOW
 * opens IDLE connections that never send a byte and SLOW clients that send a request's headers
 * one byte every 500 ms (slowloris); a connection the server closes is opened again after 1 s, so
 * the pressure lasts until the process is killed. Prints one line of JSON when the first wave has
 * settled (every socket connected or closed), then one per second: open, closed, connected.
 */
import { connect, type Socket } from 'node:net';

const [port, idle, slow] = process.argv.slice(2).map(Number) as [number, number, number];
const open = new Set<Socket>();
let connected = 0;
let closed = 0;
let settled = 0;

function flood(slowly: boolean, first: boolean): void {
  const socket: Socket = connect(port, '127.0.0.1');
  let timer: NodeJS.Timeout | undefined;
  let counted = false;
  const settle = (): void => {
    if (first && !counted) {
      counted = true;
      settled++;
    }
  };
  socket.on('connect', () => {
    open.add(socket);
    connected++;
    settle();
    if (slowly) {
      const text = 'GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(1000);
      let at = 0;
      timer = setInterval(() => socket.write(text[at++ % text.length] as string), 500);
    }
  });
  socket.on('data', () => {});
  socket.on('error', () => {});
  socket.on('close', () => {
    clearInterval(timer);
    open.delete(socket);
    closed++;
    settle();
    setTimeout(() => flood(slowly, false), 1000).unref();
  });
}

for (let i = 0; i < idle; i++) flood(false, true);
for (let i = 0; i < slow; i++) flood(true, true);
const report = (): void => {
  process.stdout.write(`${JSON.stringify({ open: open.size, closed, connected, settled })}\n`);
};
const wave = setInterval(() => {
  if (settled >= idle + slow) {
    clearInterval(wave);
    report();
    setInterval(report, 1000);
  }
}, 50);
