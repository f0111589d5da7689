import type { PrepareOutcome, TransitionRecord } from './transition-record.ts';
import { prepareTarget, type VmEvent } from './vm-event.ts';

/**
 * The transition engine: per device, turns VFIO_MIGRATION states into prepare and dwell records.
 * Deterministic: time comes only from QEMU's event timestamps, so replaying the same events in
 * the same order gives the same records, live or offline. The rules (README, "What is measured"):
 *
 * Per device (host, VM, qom-path):
 * - A state ending in `-prepare` announces its target (the state without the suffix). The
 *   device's next non-prepare state closes it: `completed` when it is the target, else `failed`.
 *   A second prepare while one is open closes the first as `failed` with `next` = the new
 *   prepare state. `seconds` = closing timestamp − prepare timestamp, clamped at 0 because QEMU
 *   stamps events with the wall clock, which can step back.
 * - Every change of non-prepare state emits a dwell record for the state left. A repeat of the
 *   current state is not a change: the time keeps counting from its first event.
 * - An event identical to the device's previous one (same state, same timestamp) is a duplicate
 *   and is ignored.
 * Per VM:
 * - The watermark is the largest timestamp of the VM's events since its last `SHUTDOWN` (or
 *   `abort`). After each event, open prepares older than the watermark by more than the prepare
 *   timeout end as `timed_out`.
 * - An event stamped more than `MAX_AHEAD_OF_RECEIPT_MICROS` (60 s) after the collector read it
 *   (`receivedMicros`) is applied to its device but does not move the watermark: QEMU and the
 *   collector read the same host's wall clock milliseconds apart, so such a timestamp is wrong
 *   (no upper bound exists in QMP), and one event dated 2127 would otherwise time out every
 *   later prepare of the VM for good. An event without a receive time (a transcript) moves it.
 * - `SHUTDOWN` ends open prepares as `aborted`, forgets the VM's devices and resets its
 *   watermark: the QEMU process is going away, and a later QEMU with the same name starts new
 *   timelines.
 * - The end of the input ends what is still open as `unfinished`.
 *
 * API. `VmTransitions` is one VM's state and these rules; every step returns the records it
 * completes, in order, and changes nothing else:
 * - `apply(event, timeoutMicros)` — one event of the VM; `null` for a duplicate;
 * - `abort()` — open prepares end as `aborted`, devices and watermark are forgotten (what
 *   `SHUTDOWN` does; the processor's rule for a new QMP session of the VM);
 * - `timeOut()` — open prepares end as `timed_out`, watermark kept (the processor's rule for a
 *   VM silent on its own clock, so later events are judged by QEMU's clock alone);
 * - `finish()` — open prepares end as `unfinished`;
 * - `snapshot()` / `VmTransitions.restore()` — the state as plain data and back.
 * Whoever holds VMs (the processor, keyed with its session bookkeeping) decides which VM an
 * event belongs to and when its state is saved. `TransitionEngine` holds the VMs of a whole
 * stream, for `replay`: `apply(event)`, `finish()`, `stats()`.
 */
export interface TransitionEngineOptions {
  /** How long a prepare may stay open, in event time, before it ends as `timed_out`. */
  prepareTimeoutSeconds: number;
}

export const DEFAULT_PREPARE_TIMEOUT_SECONDS = 10;

/** How far an event's timestamp may run ahead of its receive time and still move the watermark. */
export const MAX_AHEAD_OF_RECEIPT_MICROS = 60_000_000;

/** Whether an event's timestamp is too far ahead of its receive time to move the watermark. */
export function isAheadOfReceipt(event: {
  timestampMicros: number;
  receivedMicros?: number | undefined;
}): boolean {
  return (
    event.receivedMicros !== undefined &&
    event.timestampMicros - event.receivedMicros > MAX_AHEAD_OF_RECEIPT_MICROS
  );
}

/** The prepare timeout in µs, for `VmTransitions.apply`; throws for anything but a positive number. */
export function prepareTimeoutMicros(seconds: number): number {
  if (!(seconds > 0) || !Number.isFinite(seconds)) {
    throw new RangeError(`prepareTimeoutSeconds must be a positive number, got ${seconds}`);
  }
  return Math.round(seconds * 1_000_000);
}

/** Everything the engine knows about one device of a VM: enough to rebuild it after a restart. */
export interface DeviceSnapshot {
  qomPath: string;
  deviceId: string;
  state: string | null;
  stateSinceMicros: number;
  lastState: string;
  lastMicros: number;
  prepareState: string | null;
  prepareMicros: number;
}

/** One VM with its devices, as plain data. */
export interface VmSnapshot {
  host: string;
  vm: string;
  watermarkMicros: number;
  devices: DeviceSnapshot[];
}

export interface TransitionEngineStats {
  vms: number;
  devices: number;
  openPrepares: number;
  duplicates: number;
}

/**
 * Mutable per-device state, kept small because a processor tracks every device of a fleet
 * (target: 256 bytes per device): the host and VM live on the VM, the prepare's target is
 * derived from the prepare state when it closes.
 */
class DeviceState {
  readonly qomPath: string;
  deviceId: string;
  /** Current non-prepare state, null until the first one is seen. */
  state: string | null = null;
  stateSinceMicros = 0;
  lastState = '';
  lastMicros = -1;
  /** The open prepare state, or null. */
  prepareState: string | null = null;
  prepareMicros = 0;

  constructor(qomPath: string, deviceId: string) {
    this.qomPath = qomPath;
    this.deviceId = deviceId;
  }
}

/** One VM's devices and watermark, and the rules above. */
export class VmTransitions {
  readonly host: string;
  readonly vm: string;
  private watermark = -1;
  private readonly devices = new Map<string, DeviceState>();
  /** Devices with an open prepare; they are found by scanning `devices` (a VM has few). */
  private open = 0;
  /**
   * A lower bound of the open prepares' timestamps, exact after each sweep. It lets the sweep
   * after every event cost O(1) unless something may have expired, even with thousands of
   * devices in one VM.
   */
  private oldestOpenMicros = Number.POSITIVE_INFINITY;

  constructor(host: string, vm: string) {
    this.host = host;
    this.vm = vm;
  }

  /** A VM exactly as `snapshot()` gave it. */
  static restore(snapshot: VmSnapshot): VmTransitions {
    const vm = new VmTransitions(snapshot.host, snapshot.vm);
    vm.watermark = snapshot.watermarkMicros;
    for (const d of snapshot.devices) {
      const device = new DeviceState(d.qomPath, d.deviceId);
      device.state = d.state;
      device.stateSinceMicros = d.stateSinceMicros;
      device.lastState = d.lastState;
      device.lastMicros = d.lastMicros;
      device.prepareState = d.prepareState;
      device.prepareMicros = d.prepareMicros;
      vm.devices.set(d.qomPath, device);
      if (device.prepareState !== null) {
        vm.open++;
        if (device.prepareMicros < vm.oldestOpenMicros) vm.oldestOpenMicros = device.prepareMicros;
      }
    }
    return vm;
  }

  /** The largest timestamp that moved the watermark since the last reset, -1 before one. */
  get watermarkMicros(): number {
    return this.watermark;
  }

  get openPrepares(): number {
    return this.open;
  }

  get deviceCount(): number {
    return this.devices.size;
  }

  /** Whether the VM has a device at `qomPath` (since its last `SHUTDOWN` or abort). */
  hasDevice(qomPath: string): boolean {
    return this.devices.has(qomPath);
  }

  /**
   * Applies one event of this VM (`timeoutMicros` from `prepareTimeoutMicros`); returns the
   * records it completes, or null for a duplicate, which changes nothing.
   */
  apply(event: VmEvent, timeoutMicros: number): readonly TransitionRecord[] | null {
    const ts = event.timestampMicros;
    let out: TransitionRecord[] | null = null;
    if (event.kind === 'vfio') {
      let device = this.devices.get(event.qomPath);
      if (
        device !== undefined &&
        device.lastMicros === ts &&
        device.lastState === event.deviceState
      ) {
        return null;
      }
      if (ts > this.watermark && !isAheadOfReceipt(event)) this.watermark = ts;
      if (device === undefined) {
        device = new DeviceState(event.qomPath, event.deviceId);
        this.devices.set(event.qomPath, device);
      } else {
        device.deviceId = event.deviceId;
      }
      out = this.applyState(device, event.deviceState, ts);
    } else if (event.kind === 'shutdown') {
      out = this.closeAllAndForget();
    } else if (ts > this.watermark && !isAheadOfReceipt(event)) {
      this.watermark = ts;
    }
    return this.expireOpen(this.watermark - timeoutMicros, out) ?? NO_TRANSITIONS;
  }

  /** Open prepares end as `aborted`; the devices and the watermark are forgotten. */
  abort(): readonly TransitionRecord[] {
    return this.closeAllAndForget() ?? NO_TRANSITIONS;
  }

  /** Open prepares end as `timed_out`; the watermark stays where the VM's events put it. */
  timeOut(): readonly TransitionRecord[] {
    return this.closeAllOpen('timed_out') ?? NO_TRANSITIONS;
  }

  /** Open prepares end as `unfinished` (end of input). */
  finish(): readonly TransitionRecord[] {
    return this.closeAllOpen('unfinished') ?? NO_TRANSITIONS;
  }

  snapshot(): VmSnapshot {
    return {
      host: this.host,
      vm: this.vm,
      watermarkMicros: this.watermark,
      devices: [...this.devices.values()].map(snapshotDevice),
    };
  }

  /*
   * The steps below return the records completed so far: `out` with theirs appended, allocated
   * on the first (most events complete at most one record; none allocates nothing).
   */

  private applyState(device: DeviceState, state: string, ts: number): TransitionRecord[] | null {
    let out: TransitionRecord[] | null = null;
    const target = prepareTarget(state);
    if (target !== null) {
      if (device.prepareState !== null) out = this.closePrepare(device, 'failed', state, ts, out);
      device.prepareState = state;
      device.prepareMicros = ts;
      this.open++;
      if (ts < this.oldestOpenMicros) this.oldestOpenMicros = ts;
    } else {
      if (device.prepareState !== null) {
        const outcome = state === prepareTarget(device.prepareState) ? 'completed' : 'failed';
        out = this.closePrepare(device, outcome, state, ts, out);
      }
      if (device.state === null) {
        device.state = state;
        device.stateSinceMicros = ts;
      } else if (device.state !== state) {
        out = append(out, {
          type: 'dwell',
          host: this.host,
          vm: this.vm,
          qomPath: device.qomPath,
          deviceId: device.deviceId,
          state: device.state,
          next: state,
          seconds: elapsedSeconds(device.stateSinceMicros, ts),
          startMicros: device.stateSinceMicros,
          endMicros: ts,
        });
        device.state = state;
        device.stateSinceMicros = ts;
      }
    }
    device.lastState = state;
    device.lastMicros = ts;
    return out;
  }

  private closePrepare(
    device: DeviceState,
    outcome: PrepareOutcome,
    next: string | null,
    endMicros: number | null,
    out: TransitionRecord[] | null,
  ): TransitionRecord[] {
    const prepareState = device.prepareState ?? '';
    const record: TransitionRecord = {
      type: 'prepare',
      host: this.host,
      vm: this.vm,
      qomPath: device.qomPath,
      deviceId: device.deviceId,
      target: prepareTarget(prepareState) ?? '',
      prepareState,
      outcome,
      next,
      seconds: endMicros === null ? null : elapsedSeconds(device.prepareMicros, endMicros),
      startMicros: device.prepareMicros,
      endMicros,
    };
    device.prepareState = null;
    this.open--;
    return append(out, record);
  }

  private expireOpen(
    limitMicros: number,
    out: TransitionRecord[] | null,
  ): TransitionRecord[] | null {
    if (this.oldestOpenMicros >= limitMicros) return out;
    let oldest = Number.POSITIVE_INFINITY;
    for (const device of this.devices.values()) {
      if (device.prepareState === null) continue;
      if (device.prepareMicros < limitMicros) {
        out = this.closePrepare(device, 'timed_out', null, null, out);
      } else if (device.prepareMicros < oldest) oldest = device.prepareMicros;
    }
    this.oldestOpenMicros = oldest;
    return out;
  }

  private closeAllOpen(outcome: PrepareOutcome): TransitionRecord[] | null {
    let out: TransitionRecord[] | null = null;
    if (this.open === 0) return out;
    for (const device of this.devices.values()) {
      if (device.prepareState !== null) out = this.closePrepare(device, outcome, null, null, out);
    }
    return out;
  }

  private closeAllAndForget(): TransitionRecord[] | null {
    const out = this.closeAllOpen('aborted');
    this.devices.clear();
    this.watermark = -1;
    return out;
  }
}

function append(out: TransitionRecord[] | null, record: TransitionRecord): TransitionRecord[] {
  if (out === null) return [record];
  out.push(record);
  return out;
}

/** The VMs of one stream of events, keyed by host and VM (what `replay` runs). */
export class TransitionEngine {
  private readonly timeoutMicros: number;
  /** Per host, per VM. Nested maps rather than a "host/vm" key: no key string per event. */
  private readonly hosts = new Map<string, Map<string, VmTransitions>>();
  private duplicates = 0;

  constructor(options: Partial<TransitionEngineOptions> = {}) {
    this.timeoutMicros = prepareTimeoutMicros(
      options.prepareTimeoutSeconds ?? DEFAULT_PREPARE_TIMEOUT_SECONDS,
    );
  }

  /** Applies one event; returns the records it completes (none for a duplicate, counted). */
  apply(event: VmEvent): readonly TransitionRecord[] {
    const out = this.vmOf(event.host, event.vm).apply(event, this.timeoutMicros);
    if (out === null) this.duplicates++;
    return out ?? NO_TRANSITIONS;
  }

  /** Ends every open prepare as `unfinished` (end of input); returns those records. */
  finish(): TransitionRecord[] {
    const out: TransitionRecord[] = [];
    for (const vms of this.hosts.values()) {
      for (const vm of vms.values()) out.push(...vm.finish());
    }
    return out;
  }

  stats(): TransitionEngineStats {
    let vms = 0;
    let devices = 0;
    let openPrepares = 0;
    for (const byVm of this.hosts.values()) {
      for (const vm of byVm.values()) {
        vms++;
        devices += vm.deviceCount;
        openPrepares += vm.openPrepares;
      }
    }
    return { vms, devices, openPrepares, duplicates: this.duplicates };
  }

  private vmOf(host: string, vm: string): VmTransitions {
    let vms = this.hosts.get(host);
    if (vms === undefined) {
      vms = new Map();
      this.hosts.set(host, vms);
    }
    let state = vms.get(vm);
    if (state === undefined) {
      state = new VmTransitions(host, vm);
      vms.set(vm, state);
    }
    return state;
  }
}

const NO_TRANSITIONS: readonly TransitionRecord[] = Object.freeze([]);

function snapshotDevice(device: DeviceState): DeviceSnapshot {
  return {
    qomPath: device.qomPath,
    deviceId: device.deviceId,
    state: device.state,
    stateSinceMicros: device.stateSinceMicros,
    lastState: device.lastState,
    lastMicros: device.lastMicros,
    prepareState: device.prepareState,
    prepareMicros: device.prepareMicros,
  };
}

/** Whole microseconds to seconds, clamped at 0 (the wall clock can step back). */
function elapsedSeconds(fromMicros: number, toMicros: number): number {
  return toMicros > fromMicros ? (toMicros - fromMicros) / 1_000_000 : 0;
}
