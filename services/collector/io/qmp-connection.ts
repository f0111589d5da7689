/**
 * One QMP socket, read-only apart from the handshake (QEMU `docs/interop/qmp-spec.rst`):
 *
 *   S: { "QMP": { "version": ..., "capabilities": [...] } }     greeting
 *   C: { "execute": "qmp_capabilities" }                        the ONLY bytes this client writes
 *   S: { "return": {} }                                         now events flow
 *   S: { "event": ..., "data": ..., "timestamp": {...} } ...
 *
 * The monitor socket controls the VM (`quit`, `stop`, `migrate` ...), so after the handshake the
 * client never writes again; `CAPABILITIES_COMMAND` is the single write site.
 *
 * QEMU serves one client per monitor: a second connect() succeeds but gets no greeting until the
 * first client leaves, hence the greeting timeout. Events emitted while no client is connected
 * are lost for good, so every negotiated connection is a new session (new id, sequence from 1)
 * and downstream sees the gap. Lost connections are retried with capped, jittered backoff; the
 * attempt counter resets once a session is negotiated.
 */
import { createConnection, type Socket } from 'node:net';
import { QmpDecoder } from '../../shared/core/qmp-decoder.ts';
import { createSessionIdSource } from './session-ids.ts';
import type { QmpEvent, QmpGreeting, QmpInvalid } from '../../shared/core/qmp-message.ts';
import { backoffDelayMs, type BackoffPolicy } from '../../shared/core/backoff.ts';
import { TelemetryError } from '../../shared/core/errors.ts';
import { nowMicros } from '../../shared/io/clock.ts';
import type { QmpAddress, QmpTarget } from '../core/qmp-target.ts';
import type { ReadBudget } from './read-budget.ts';

export const CAPABILITIES_COMMAND = '{"execute":"qmp_capabilities"}\r\n';

export interface QmpSession {
  readonly vm: string;
  readonly sessionId: string;
  /** Events of this session the spool accepted (records may carry a renewed session id: main.ts). */
  sequence: number;
}

/** What a connection reports; the collector wires it to telemetry and the spool. */
export interface QmpConnectionHandler {
  message(kind: 'greeting' | 'return' | 'error' | 'event'): void;
  rejected(vm: string, invalid: QmpInvalid): void;
  sessionStarted(session: QmpSession, greeting: QmpGreeting, reconnect: boolean): void;
  event(session: QmpSession, event: QmpEvent, receivedMicros: number): void;
  sessionEnded(session: QmpSession, reason: string): void;
  connectFailed(vm: string, error: unknown, retryInMs: number): void;
}

export interface QmpConnectionOptions {
  target: QmpTarget;
  backoff: BackoffPolicy;
  greetingTimeoutMs: number;
  handler: QmpConnectionHandler;
  random?: () => number;
  /** Session ids (the collector's one source, so that they increase across connections). */
  newSessionId?: () => string;
  /** Bytes decoded per event-loop turn, shared by the collector's connections (read-budget.ts). */
  readBudget?: ReadBudget;
}

type State = 'connecting' | 'greeting' | 'negotiating' | 'ready' | 'closed';

export class QmpConnection {
  private readonly options: QmpConnectionOptions;
  private socket: Socket | undefined;
  private state: State = 'closed';
  private session: QmpSession | undefined;
  private sessions = 0;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private greetingTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private closedWaiter: (() => void) | undefined;

  private readonly newSessionId: () => string;

  constructor(options: QmpConnectionOptions) {
    this.options = options;
    this.newSessionId = options.newSessionId ?? createSessionIdSource();
  }

  get target(): QmpTarget {
    return this.options.target;
  }

  get vm(): string {
    return this.options.target.vm;
  }

  get connected(): boolean {
    return this.state === 'ready';
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  /**
   * Stops reconnecting but keeps reading until the peer closes: when QEMU exits, its socket file
   * goes away before the collector has necessarily read what QEMU wrote last, and those bytes
   * are still in the kernel's buffer. Resolves once the socket is closed.
   */
  retire(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const socket = this.socket;
    if (socket === undefined || socket.destroyed || this.state !== 'ready') return this.stop();
    return new Promise((resolve) => (this.closedWaiter = resolve));
  }

  /** Stops reading and reconnecting; resolves once the socket is closed. */
  stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.greetingTimer);
    const socket = this.socket;
    if (socket === undefined || socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const earlier = this.closedWaiter;
      this.closedWaiter = () => {
        earlier?.();
        resolve();
      };
      socket.destroy();
    });
  }

  private connect(): void {
    if (this.stopped) return;
    const decoder = new QmpDecoder();
    const socket = openSocket(this.options.target.address);
    this.socket = socket;
    this.state = 'connecting';
    let failure: unknown;
    socket.on('connect', () => {
      this.state = 'greeting';
      this.greetingTimer = setTimeout(() => {
        failure = new TelemetryError(
          'QMP_CONNECT_FAILED',
          `no QMP greeting within ${this.options.greetingTimeoutMs} ms`,
        );
        socket.destroy();
      }, this.options.greetingTimeoutMs);
    });
    const budget = this.options.readBudget;
    let waiting: (() => void) | undefined;
    socket.on('data', (chunk: Buffer) => {
      if (budget === undefined) {
        this.onData(socket, decoder.push(chunk));
        return;
      }
      const later = (): void => {
        waiting = undefined;
        this.onData(socket, decoder.push(chunk));
        if (!socket.destroyed) socket.resume();
      };
      if (budget.admit(chunk.length, later)) {
        this.onData(socket, decoder.push(chunk));
      } else {
        // No further 'data' until `later` has run: chunks stay in order.
        waiting = later;
        socket.pause();
      }
    });
    socket.on('error', (error) => (failure ??= error));
    socket.on('close', () => {
      clearTimeout(this.greetingTimer);
      if (waiting !== undefined) budget?.runNow(waiting);
      this.onData(socket, decoder.end());
      const session = this.session;
      this.session = undefined;
      const wasReady = this.state === 'ready';
      this.state = 'closed';
      if (session !== undefined && wasReady) {
        this.options.handler.sessionEnded(session, describe(failure) ?? 'socket closed by QEMU');
      }
      if (this.stopped) {
        this.closedWaiter?.();
        return;
      }
      const delay = backoffDelayMs(this.options.backoff, this.attempt++, this.random());
      if (!wasReady) {
        this.options.handler.connectFailed(
          this.vm,
          failure ?? new TelemetryError('QMP_CONNECT_FAILED', 'closed before negotiation'),
          delay,
        );
      }
      this.retryTimer = setTimeout(() => this.connect(), delay);
    });
  }

  private onData(socket: Socket, messages: ReturnType<QmpDecoder['push']>): void {
    const { handler } = this.options;
    let receivedMicros = -1;
    for (const message of messages) {
      if (message.kind === 'invalid') {
        handler.rejected(this.vm, message);
        continue;
      }
      handler.message(message.kind);
      if (message.kind === 'greeting') {
        if (this.state !== 'greeting') continue;
        clearTimeout(this.greetingTimer);
        this.state = 'negotiating';
        this.greeting = message;
        socket.write(CAPABILITIES_COMMAND);
      } else if (message.kind === 'return') {
        if (this.state !== 'negotiating') continue;
        this.state = 'ready';
        this.attempt = 0;
        this.session = { vm: this.vm, sessionId: this.newSessionId(), sequence: 0 };
        handler.sessionStarted(this.session, this.greeting as QmpGreeting, this.sessions++ > 0);
      } else if (message.kind === 'error') {
        if (this.state === 'negotiating') {
          socket.destroy(
            new TelemetryError(
              'QMP_PROTOCOL',
              `qmp_capabilities failed: ${message.errorClass} ${message.desc}`,
              { details: { errorClass: message.errorClass } },
            ),
          );
          return;
        }
      } else if (this.state === 'ready' && this.session !== undefined) {
        if (receivedMicros < 0) receivedMicros = nowMicros();
        handler.event(this.session, message, receivedMicros);
      }
    }
  }

  private greeting: QmpGreeting | undefined;

  private random(): number {
    return (this.options.random ?? Math.random)();
  }
}

function openSocket(address: QmpAddress): Socket {
  return address.kind === 'unix'
    ? createConnection({ path: address.path })
    : createConnection({ host: address.host, port: address.port });
}

function describe(error: unknown): string | undefined {
  if (error === undefined) return undefined;
  return error instanceof Error ? error.message : JSON.stringify(error);
}
