/**
 * One connection to a libvirt daemon that receives the QMP events of every domain it runs
 * (libvirt's QEMU monitor event API, the call behind `virsh qemu-monitor-event --loop`). The
 * exchange, every byte the collector writes (core/libvirt-protocol.ts has the wire format):
 *
 *   C: REMOTE_PROC_AUTH_LIST                    S: [NONE] | [POLKIT] | [SASL]
 *   C: REMOTE_PROC_AUTH_POLKIT (only if asked)  S: complete | error (polkit said no)
 *   C: REMOTE_PROC_CONNECT_OPEN name, flags 0   S: ok | error (ACL, unknown URI)
 *   C: QEMU_PROC_CONNECT_DOMAIN_MONITOR_EVENT_REGISTER dom NULL, event NAME, flags 0
 *                                               S: callbackID      (once per event name)
 *   S: QEMU_PROC_DOMAIN_MONITOR_EVENT ...       (every domain, also those started later)
 *   C/S: KEEPALIVE PING / PONG                  (either side; the collector answers pings)
 *
 * Nothing else is ever sent: no domain lookup, no monitor command (QEMU_PROC_DOMAIN_MONITOR_COMMAND
 * is what taints a domain with `custom-monitor`), no lifecycle call. The registration does not
 * taint (checked by test/e2e/collector/libvirt-real.test.ts).
 *
 * Sessions: one per (connection, domain runtime id). A domain seen with a new id (destroyed and
 * started again, restored) ends its previous session, and so does its SHUTDOWN; a lost
 * connection ends them all, because events that happen while no registration exists are lost for
 * good and downstream must see the gap.
 */
import { createSessionIdSource } from './session-ids.ts';
import { existsSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { backoffDelayMs, type BackoffPolicy } from '../../shared/core/backoff.ts';
import { TelemetryError } from '../../shared/core/errors.ts';
import type { QmpEvent, QmpInvalid } from '../../shared/core/qmp-message.ts';
import { nowMicros } from '../../shared/io/clock.ts';
import {
  AUTH_TYPE,
  decodeAuthList,
  decodeInt,
  decodeMonitorEvent,
  decodeRemoteError,
  encodeCall,
  encodeConnectOpenArgs,
  encodeKeepalive,
  encodeRegisterArgs,
  KEEPALIVE_PROC,
  KEEPALIVE_PROGRAM,
  LibvirtFrameDecoder,
  MESSAGE_STATUS,
  MESSAGE_TYPE,
  QEMU_PROC,
  QEMU_PROGRAM,
  REMOTE_PROC,
  registrations,
  REMOTE_PROGRAM,
  type LibvirtDomain,
  type LibvirtHeader,
} from '../core/libvirt-protocol.ts';
import type { LibvirtTarget } from '../core/libvirt-target.ts';
import type { QmpSession } from './qmp-connection.ts';

export interface LibvirtConnectionHandler {
  /** Registered: events flow. */
  connected(target: LibvirtTarget, socket: string, reconnect: boolean): void;
  disconnected(target: LibvirtTarget, reason: string, stopping: boolean): void;
  connectFailed(target: LibvirtTarget, error: unknown, retryInMs: number): void;
  /** May the domain's events be read under `vm`? (One VM name, one source.) */
  claim(vm: string, domain: LibvirtDomain): boolean;
  release(vm: string): void;
  sessionStarted(session: QmpSession, domain: LibvirtDomain): void;
  sessionEnded(session: QmpSession, reason: string): void;
  event(session: QmpSession, event: QmpEvent, receivedMicros: number): void;
  rejected(vm: string, invalid: QmpInvalid): void;
}

export interface LibvirtConnectionOptions {
  target: LibvirtTarget;
  /** QMP event names to register for; empty for all. */
  events: readonly string[];
  vmName: 'name' | 'uuid';
  backoff: BackoffPolicy;
  /** A ping after this much silence; the connection is dropped after 5 unanswered. */
  keepaliveIntervalMs: number;
  /** Longest wait for each reply of the handshake. */
  replyTimeoutMs: number;
  handler: LibvirtConnectionHandler;
  random?: () => number;
  /** Session ids (the collector's one source, so that they increase across connections). */
  newSessionId?: () => string;
}

const KEEPALIVE_COUNT = 5;

interface DomainSession {
  id: number;
  session: QmpSession;
}

type Step = 'auth_list' | 'auth_polkit' | 'open' | 'register' | 'ready';

const STEP_PROC: Record<Exclude<Step, 'ready'>, [number, number]> = {
  auth_list: [REMOTE_PROGRAM, REMOTE_PROC.AUTH_LIST],
  auth_polkit: [REMOTE_PROGRAM, REMOTE_PROC.AUTH_POLKIT],
  open: [REMOTE_PROGRAM, REMOTE_PROC.CONNECT_OPEN],
  register: [QEMU_PROGRAM, QEMU_PROC.MONITOR_EVENT_REGISTER],
};

export class LibvirtConnection {
  private readonly options: LibvirtConnectionOptions;
  private socket: Socket | undefined;
  private step: Step | 'closed' = 'closed';
  private serial = 0;
  private readonly callbackIds = new Set<number>();
  private pendingRegistrations: (string | null)[] = [];
  private attempt = 0;
  private registrations = 0;
  private readonly sessions = new Map<string, DomainSession>();
  /** Domains refused a VM name, by name or uuid: their events are dropped while connected. */
  private readonly refused = new Set<string>();
  private retryTimer: NodeJS.Timeout | undefined;
  private stepTimer: NodeJS.Timeout | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private silentTicks = 0;
  private stopped = true;
  private closedWaiter: (() => void) | undefined;

  private readonly newSessionId: () => string;

  constructor(options: LibvirtConnectionOptions) {
    this.options = options;
    this.newSessionId = options.newSessionId ?? createSessionIdSource();
  }

  get target(): LibvirtTarget {
    return this.options.target;
  }

  get connected(): boolean {
    return this.step === 'ready';
  }

  /** VM names with an open session. */
  vms(): string[] {
    return [...this.sessions.keys()];
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const socket = this.socket;
    if (socket === undefined || socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      this.closedWaiter = resolve;
      socket.destroy();
    });
  }

  private connect(): void {
    if (this.stopped) return;
    const { sockets } = this.options.target;
    // The first that exists: modular daemons serve virtqemud-sock, libvirtd libvirt-sock.
    const path = sockets.find((candidate) => existsSync(candidate)) ?? sockets[0] ?? '';
    const decoder = new LibvirtFrameDecoder();
    const socket = createConnection({ path });
    this.socket = socket;
    this.serial = 0;
    this.step = 'auth_list';
    let failure: unknown;
    const fail = (error: unknown): void => {
      failure ??= error;
      socket.destroy();
    };
    socket.on('connect', () => this.call(socket, 'auth_list', undefined, fail));
    socket.on('data', (chunk: Buffer) => {
      this.silentTicks = 0;
      for (const frame of decoder.push(chunk)) {
        if (frame.kind === 'fatal') {
          fail(new TelemetryError('QMP_PROTOCOL', `libvirt stream broken: ${frame.detail}`));
          return;
        }
        this.onFrame(socket, frame.header, frame.body, path, fail);
        if (socket.destroyed) return;
      }
    });
    socket.on('error', (error) => (failure ??= error));
    socket.on('close', () => {
      clearTimeout(this.stepTimer);
      clearInterval(this.keepaliveTimer);
      const wasReady = this.step === 'ready';
      this.step = 'closed';
      this.callbackIds.clear();
      const reason = describe(failure) ?? 'connection closed by libvirt';
      for (const [vm, { session }] of this.sessions) {
        this.options.handler.sessionEnded(session, reason);
        this.options.handler.release(vm);
      }
      this.sessions.clear();
      this.refused.clear();
      if (wasReady) {
        this.options.handler.disconnected(
          this.options.target,
          this.stopped ? 'stopped by the collector' : reason,
          this.stopped,
        );
      }
      if (this.stopped) {
        this.closedWaiter?.();
        return;
      }
      const delay = backoffDelayMs(this.options.backoff, this.attempt++, this.random());
      if (!wasReady) {
        this.options.handler.connectFailed(
          this.options.target,
          failure ??
            new TelemetryError('QMP_CONNECT_FAILED', 'libvirt closed the connection during setup'),
          delay,
        );
      }
      this.retryTimer = setTimeout(() => this.connect(), delay);
    });
  }

  private call(
    socket: Socket,
    step: Exclude<Step, 'ready'>,
    body: Buffer | undefined,
    fail: (error: unknown) => void,
  ): void {
    this.step = step;
    const [prog, proc] = STEP_PROC[step];
    socket.write(encodeCall(prog, proc, ++this.serial, body));
    clearTimeout(this.stepTimer);
    this.stepTimer = setTimeout(
      () =>
        fail(
          new TelemetryError(
            'QMP_CONNECT_FAILED',
            `libvirt sent no reply to ${step} within ${this.options.replyTimeoutMs} ms`,
          ),
        ),
      this.options.replyTimeoutMs,
    );
  }

  private onFrame(
    socket: Socket,
    header: LibvirtHeader,
    body: Buffer,
    path: string,
    fail: (error: unknown) => void,
  ): void {
    if (header.prog === KEEPALIVE_PROGRAM) {
      if (header.proc === KEEPALIVE_PROC.PING) socket.write(encodeKeepalive(KEEPALIVE_PROC.PONG));
      return;
    }
    if (header.type === MESSAGE_TYPE.MESSAGE) {
      if (header.prog === QEMU_PROGRAM && header.proc === QEMU_PROC.MONITOR_EVENT) {
        this.onEvent(body);
      }
      return;
    }
    if (header.type !== MESSAGE_TYPE.REPLY || header.serial !== this.serial) return;
    if (this.step === 'closed' || this.step === 'ready') return;
    clearTimeout(this.stepTimer);
    if (header.status !== MESSAGE_STATUS.OK) {
      const error = decodeRemoteError(body);
      const what = 'kind' in error ? error.detail : `${error.message} (code ${error.code})`;
      fail(
        new TelemetryError(
          'QMP_CONNECT_FAILED',
          `libvirt refused ${STEP_TEXT[this.step]}: ${what}`,
          {
            details: { step: this.step, socket: path, ...('kind' in error ? {} : error) },
          },
        ),
      );
      return;
    }
    switch (this.step) {
      case 'auth_list': {
        const types = decodeAuthList(body);
        if ('kind' in types) return fail(protocolError(types));
        if (types.length === 0 || types.includes(AUTH_TYPE.NONE)) return this.open(socket, fail);
        if (types.includes(AUTH_TYPE.POLKIT))
          return this.call(socket, 'auth_polkit', undefined, fail);
        return fail(
          new TelemetryError(
            'QMP_CONNECT_FAILED',
            `libvirt at ${path} wants SASL authentication, which the collector does not speak: ` +
              'use the local unix socket with auth_unix_rw = "none" or "polkit" ' +
              '(and a polkit rule or unix_sock_group for the collector user)',
            { details: { socket: path, authTypes: types } },
          ),
        );
      }
      case 'auth_polkit':
        return this.open(socket, fail);
      case 'open':
        this.pendingRegistrations = registrations(this.options.events);
        return this.registerNext(socket, fail);
      case 'register': {
        const id = decodeInt(body);
        if (typeof id !== 'number') return fail(protocolError(id));
        this.callbackIds.add(id);
        if (this.pendingRegistrations.length > 0) return this.registerNext(socket, fail);
        this.step = 'ready';
        this.attempt = 0;
        this.startKeepalive(socket, fail);
        this.options.handler.connected(this.options.target, path, this.registrations++ > 0);
        return;
      }
    }
  }

  private registerNext(socket: Socket, fail: (error: unknown) => void): void {
    const event = this.pendingRegistrations.shift() ?? null;
    this.call(socket, 'register', encodeRegisterArgs(event, 0), fail);
  }

  private open(socket: Socket, fail: (error: unknown) => void): void {
    this.call(socket, 'open', encodeConnectOpenArgs(this.options.target.name, 0), fail);
  }

  private startKeepalive(socket: Socket, fail: (error: unknown) => void): void {
    this.silentTicks = 0;
    this.keepaliveTimer = setInterval(() => {
      if (++this.silentTicks > KEEPALIVE_COUNT) {
        fail(
          new TelemetryError(
            'QMP_CONNECT_FAILED',
            `libvirt answered no keepalive for ${KEEPALIVE_COUNT} intervals`,
          ),
        );
        return;
      }
      if (this.silentTicks > 1) socket.write(encodeKeepalive(KEEPALIVE_PROC.PING));
    }, this.options.keepaliveIntervalMs);
    this.keepaliveTimer.unref();
  }

  private onEvent(body: Buffer): void {
    const { handler } = this.options;
    const decoded = decodeMonitorEvent(body);
    if ('kind' in decoded) {
      handler.rejected(`libvirt:${this.options.target.text}`, decoded);
      return;
    }
    if (this.step !== 'ready' || !this.callbackIds.has(decoded.callbackId)) return;
    const { domain } = decoded;
    const vm = this.options.vmName === 'uuid' ? domain.uuid : domain.name;
    let current = this.sessions.get(vm);
    if (current !== undefined && current.id !== domain.id) {
      handler.sessionEnded(current.session, `domain ${domain.name} restarted (id ${domain.id})`);
      current = undefined;
    }
    if (current === undefined) {
      if (this.refused.has(vm)) return;
      if (!this.sessions.has(vm) && !handler.claim(vm, domain)) {
        this.refused.add(vm);
        return;
      }
      current = { id: domain.id, session: { vm, sessionId: this.newSessionId(), sequence: 0 } };
      this.sessions.set(vm, current);
      handler.sessionStarted(current.session, domain);
    }
    handler.event(current.session, decoded.event, nowMicros());
    // QEMU is going away: end the session, so that a host with many short-lived domains keeps
    // no state for gone ones. If QEMU goes on (a reboot libvirt fakes), that is a new session.
    if (decoded.event.name === 'SHUTDOWN') {
      this.sessions.delete(vm);
      handler.sessionEnded(current.session, 'domain shut down');
      handler.release(vm);
    }
  }

  private random(): number {
    return (this.options.random ?? Math.random)();
  }
}

const STEP_TEXT: Record<Exclude<Step, 'ready'>, string> = {
  auth_list: 'the authentication list',
  auth_polkit: 'polkit authentication (no polkit rule allows the collector user?)',
  open: 'the connection open (URI unknown, or access control denied connect)',
  register: 'the QEMU monitor event registration (a read-only socket, or ACL connect:write)',
};

function protocolError(invalid: QmpInvalid): TelemetryError {
  return new TelemetryError('QMP_PROTOCOL', `libvirt reply not understood: ${invalid.detail}`);
}

function describe(error: unknown): string | undefined {
  if (error === undefined) return undefined;
  return error instanceof Error ? error.message : JSON.stringify(error);
}
