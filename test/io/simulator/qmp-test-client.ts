import { createConnection, type Socket } from 'node:net';

/**
 * A minimal QMP client for tests: keeps every byte it reads, sends raw text, and waits (by
 * reacting to data, never by sleeping) for a condition on what it has read so far.
 */
export class QmpTestClient {
  readonly socket: Socket;
  text = '';
  ended = false;
  private readonly waiters = new Set<() => void>();

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.text += chunk;
      this.notify();
    });
    socket.on('close', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('error', () => undefined);
  }

  /** Connects to a unix socket path or a `host:port`. */
  static connect(address: string): Promise<QmpTestClient> {
    const tcp = /^([\d.]+):(\d+)$/.exec(address);
    return new Promise((resolve, reject) => {
      const socket =
        tcp === null
          ? createConnection(address)
          : createConnection(Number(tcp[2]), tcp[1] as string);
      socket.once('connect', () => resolve(new QmpTestClient(socket)));
      socket.once('error', reject);
    });
  }

  send(text: string): void {
    this.socket.write(text);
  }

  /** Compact-mode messages read so far, one per CRLF line. */
  lines(): string[] {
    return this.text.split('\r\n').filter((line) => line !== '');
  }

  events(): Record<string, unknown>[] {
    return this.lines()
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((message) => 'event' in message);
  }

  /** Resolves once `condition()` holds; rejects after `timeoutMs` or when the socket closes first. */
  waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (condition()) finish();
        else if (this.ended)
          finish(new Error(`socket closed before ${what}; read: ${this.text.slice(-300)}`));
      };
      const timer = setTimeout(
        () => finish(new Error(`timed out waiting for ${what}; read: ${this.text.slice(-300)}`)),
        timeoutMs,
      );
      const finish = (error?: Error): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        if (error) reject(error);
        else resolve();
      };
      this.waiters.add(check);
    });
  }

  /** Waits until the server has closed the connection. */
  waitForEnd(timeoutMs = 30_000): Promise<void> {
    return this.waitFor(() => this.ended, 'end of stream', timeoutMs);
  }

  close(): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.destroy();
    });
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

/** Polls `condition` on every turn of the event loop's timers phase until it holds. */
export async function waitUntil(
  condition: () => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
