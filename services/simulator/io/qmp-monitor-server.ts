import { createWriteStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { TelemetryError } from '../../shared/core/errors.ts';
import type { Logger } from '../../shared/io/logger.ts';
import { QmpInputSplitter } from '../core/qmp-input-splitter.ts';
import { formatQmpMessage } from '../core/qmp-json.ts';
import { answerQmpInput, QMP_GREETING, type RunStatus } from '../core/qmp-monitor.ts';

/**
 * One QMP monitor of one simulated VM (`-qmp unix:PATH,server=on,wait=off` or a TCP port),
 * behaving as QEMU 7.2 was observed to (domain notes §3.7, §4.8):
 * - one client at a time: a second connection is accepted but neither read nor written until
 *   the first closes, then it gets its own greeting;
 * - events reach only a client that has negotiated; events while there is none are dropped;
 * - every byte written to a client is also appended to the transcript file, so the transcript
 *   is exactly what the clients read.
 * Backpressure: the player asks `saturated` after each event and awaits `whenWritable()`, so a
 * slow client holds back its VM instead of growing a buffer; replies to a client that sends
 * commands but does not read pause reading its input until the socket drains.
 */
/** How long `close()` lets a client read what is still pending before dropping it, by default. */
const CLOSE_GRACE_MS = 2000;

export type MonitorListen = { path: string } | { host: string; port: number };

export interface QmpMonitorServerOptions {
  vm: string;
  listen: MonitorListen;
  pretty: boolean;
  transcriptPath?: string;
  /** The VM's RunState, for `query-status`. */
  status: () => RunStatus;
  /** Called when a client completes negotiation. */
  onNegotiated?: () => void;
  log: Logger;
}

export interface RecordedCommand {
  /** 1 for the monitor's first client, 2 for the next, … */
  client: number;
  /** `execute` (or `exec-oob`) of the input, null when it had none or did not parse. */
  command: string | null;
  /** The input as the client sent it. */
  text: string;
}

interface Client {
  id: number;
  socket: Socket;
  negotiated: boolean;
  splitter: QmpInputSplitter;
  inputPaused: boolean;
}

export class QmpMonitorServer {
  readonly vm: string;
  private readonly options: QmpMonitorServerOptions;
  private readonly server: Server;
  private readonly waiting: Socket[] = [];
  private readonly recorded: RecordedCommand[] = [];
  private transcript: WriteStream | null = null;
  private active: Client | null = null;
  private clients = 0;
  private closed = false;
  eventsSent = 0;
  eventsDropped = 0;

  constructor(options: QmpMonitorServerOptions) {
    this.vm = options.vm;
    this.options = options;
    this.server = createServer((socket) => this.onConnection(socket));
  }

  /** Listens; returns the socket path or `host:port`. */
  async start(): Promise<string> {
    const { listen } = this.options;
    // QEMU unlinks a stale socket path before binding; so do we.
    if ('path' in listen) await rm(listen.path, { force: true });
    if (this.options.transcriptPath !== undefined) {
      this.transcript = createWriteStream(this.options.transcriptPath);
    }
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (error) =>
        reject(
          new TelemetryError('CONFIG_INVALID', `cannot listen for ${this.vm}: ${error.message}`, {
            cause: error,
            details: { vm: this.vm },
          }),
        ),
      );
      if ('path' in listen) this.server.listen(listen.path, resolve);
      else this.server.listen(listen.port, listen.host, resolve);
    });
    if ('path' in listen) return listen.path;
    const address = this.server.address() as AddressInfo;
    return `${address.address}:${address.port}`;
  }

  get connected(): boolean {
    return this.active !== null;
  }

  /** Writes an event line to a negotiated client; false when there is none (the event is lost). */
  sendEvent(line: string): boolean {
    const client = this.active;
    if (client === null || !client.negotiated) {
      this.eventsDropped++;
      return false;
    }
    this.write(client, line);
    this.eventsSent++;
    return true;
  }

  /** True when the client's socket or the transcript is over its high-water mark. */
  get saturated(): boolean {
    const socket = this.active?.socket;
    return (
      (socket !== undefined && !socket.destroyed && socket.writableNeedDrain) ||
      (this.transcript?.writableNeedDrain ?? false)
    );
  }

  /** Resolves once both the client and the transcript can take more (or the client is gone). */
  async whenWritable(): Promise<void> {
    for (;;) {
      const socket = this.active?.socket;
      if (socket !== undefined && !socket.destroyed && socket.writableNeedDrain) {
        await drainedOrClosed(socket);
      } else if (this.transcript?.writableNeedDrain) {
        await drainedOrClosed(this.transcript);
      } else {
        return;
      }
    }
  }

  commands(): readonly RecordedCommand[] {
    return this.recorded;
  }

  /**
   * Ends the client after its pending bytes (dropping it after `graceMs` if it stops reading),
   * drops waiting ones, closes the transcript.
   */
  async close(graceMs: number = CLOSE_GRACE_MS): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.waiting.splice(0)) socket.destroy();
    const active = this.active;
    if (active !== null && !active.socket.destroyed) {
      const socket = active.socket;
      await new Promise<void>((resolve) => {
        // A client that stops reading would keep its bytes pending forever.
        const timer = setTimeout(() => socket.destroy(), graceMs);
        socket.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        socket.end(() => socket.destroy());
      });
    }
    await serverClosed;
    if ('path' in this.options.listen) await rm(this.options.listen.path, { force: true });
    const transcript = this.transcript;
    if (transcript !== null) {
      await new Promise<void>((resolve, reject) =>
        transcript.end((error?: Error | null) => (error ? reject(error) : resolve())),
      );
    }
  }

  private onConnection(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    socket.on('error', (error) => this.options.log.debug('QMP client socket failed.', { error }));
    socket.once('close', () => {
      const index = this.waiting.indexOf(socket);
      if (index >= 0) this.waiting.splice(index, 1);
      if (this.active?.socket === socket) {
        this.active = null;
        this.serveNext();
      }
    });
    this.waiting.push(socket);
    if (this.active === null) this.serveNext();
  }

  private serveNext(): void {
    if (this.closed) return;
    for (let socket = this.waiting.shift(); socket !== undefined; socket = this.waiting.shift()) {
      if (socket.destroyed) continue;
      this.serve(socket);
      return;
    }
  }

  private serve(socket: Socket): void {
    const client: Client = {
      id: ++this.clients,
      socket,
      negotiated: false,
      splitter: new QmpInputSplitter(),
      inputPaused: false,
    };
    this.active = client;
    this.write(client, formatQmpMessage(QMP_GREETING, this.options.pretty));
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => this.onInput(client, text));
  }

  private onInput(client: Client, text: string): void {
    for (const input of client.splitter.push(text)) {
      const answer = answerQmpInput(input, client.negotiated, this.options.status());
      this.recorded.push({
        client: client.id,
        command: answer.command,
        text: input.kind === 'too-large' ? '' : input.text,
      });
      if (answer.negotiated && !client.negotiated) {
        client.negotiated = true;
        this.options.onNegotiated?.();
      }
      this.write(client, formatQmpMessage(answer.reply, this.options.pretty));
    }
    if (client.socket.writableNeedDrain && !client.inputPaused) {
      client.inputPaused = true;
      client.socket.pause();
      client.socket.once('drain', () => {
        client.inputPaused = false;
        client.socket.resume();
      });
    }
  }

  private write(client: Client, text: string): void {
    if (client.socket.destroyed) return;
    client.socket.write(text);
    this.transcript?.write(text);
  }
}

function drainedOrClosed(stream: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}
