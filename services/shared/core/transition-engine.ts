import type { PrepareOutcome, PrepareRecord, TransitionRecord } from './transition-record.ts';
import { prepareTarget, type VmEvent } from './vm-event.ts';

/**
 * The transition engine: per device, turns VFIO_MIGRATION states into prepare and dwell records.
 * Deterministic: time comes only from QEMU's event timestamps, so replaying the same events in
 * the same order gives the same records, live or offline.
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
 * - The watermark is the largest timestamp of any event of the VM. After each event, open
 *   prepares older than the watermark by more than the prepare timeout end as `timed_out`.
 * - `SHUTDOWN` ends open prepares as `aborted` and forgets the VM's devices: the QEMU process is
 *   going away, and a later QEMU with the same name starts new timelines.
 * - `finish()` ends what is still open as `unfinished`.
 */
export interface TransitionEngineOptions {
  /** How long a prepare may stay open, in event time, before it ends as `timed_out`. */
  prepareTimeoutSeconds: number;
  /**
   * Remember which VMs changed, for `takeChangedVms()`: a processor persists exactly those to
   * its state changelog after each batch. Off for replay.
   */
  trackChanges: boolean;
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

/** One VM with its devices: the unit a processor persists and restores. */
export interface VmSnapshot {
  host: string;
  vm: string;
  watermarkMicros: number;
  devices: DeviceSnapshot[];
}

export const DEFAULT_PREPARE_TIMEOUT_SECONDS = 10;

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

class VmState {
  readonly host: string;
  readonly vm: string;
  watermarkMicros = -1;
  readonly devices = new Map<string, DeviceState>();
  /** Devices with an open prepare; they are found by scanning `devices` (a VM has few). */
  openPrepares = 0;
  /**
   * A lower bound of the open prepares' timestamps, exact after each sweep. It lets the sweep
   * after every event cost O(1) unless something may have expired, even with thousands of
   * devices in one VM.
   */
  oldestOpenMicros = Number.POSITIVE_INFINITY;

  constructor(host: string, vm: string) {
    this.host = host;
    this.vm = vm;
  }
}

export class TransitionEngine {
  private readonly timeoutMicros: number;
  private readonly hosts = new Map<string, Map<string, VmState>>();
  private duplicates = 0;
  private readonly changed: Set<VmState> | null;

  constructor(options: Partial<TransitionEngineOptions> = {}) {
    this.changed = options.trackChanges === true ? new Set() : null;
    const seconds = options.prepareTimeoutSeconds ?? DEFAULT_PREPARE_TIMEOUT_SECONDS;
    if (!(seconds > 0) || !Number.isFinite(seconds)) {
      throw new RangeError(`prepareTimeoutSeconds must be a positive number, got ${seconds}`);
    }
    this.timeoutMicros = Math.round(seconds * 1_000_000);
  }

  /** Applies one event; records it completes are appended to `out`. Returns false for a duplicate. */
  apply(event: VmEvent, out: TransitionRecord[]): boolean {
    const vm = this.vmState(event.host, event.vm);
    const ts = event.timestampMicros;
    if (event.kind === 'vfio') {
      let device = vm.devices.get(event.qomPath);
      if (
        device !== undefined &&
        device.lastMicros === ts &&
        device.lastState === event.deviceState
      ) {
        this.duplicates++;
        return false;
      }
      if (ts > vm.watermarkMicros) vm.watermarkMicros = ts;
      if (device === undefined) {
        device = new DeviceState(event.qomPath, event.deviceId);
        vm.devices.set(event.qomPath, device);
      } else {
        device.deviceId = event.deviceId;
      }
      applyState(vm, device, event.deviceState, ts, out);
    } else {
      if (ts > vm.watermarkMicros) vm.watermarkMicros = ts;
      if (event.kind === 'shutdown') {
        closeAllOpen(vm, 'aborted', out);
        vm.devices.clear();
      }
    }
    expireOpen(vm, vm.watermarkMicros - this.timeoutMicros, out);
    this.changed?.add(vm);
    return true;
  }

  /**
   * Ends a VM's open prepares as `timed_out` without an event: a processor does this when the
   * VM has been silent, on its own clock, for longer than the prepare timeout. The watermark
   * stays where the VM's events put it, so later events are judged by QEMU's clock alone.
   */
  timeOutVm(host: string, vm: string, out: TransitionRecord[]): void {
    const state = this.hosts.get(host)?.get(vm);
    if (state === undefined || state.openPrepares === 0) return;
    closeAllOpen(state, 'timed_out', out);
    this.changed?.add(state);
  }

  /** Ends a VM's open prepares as `aborted` and forgets its devices (e.g. a new QMP session). */
  abortVm(host: string, vm: string, out: TransitionRecord[]): void {
    const state = this.hosts.get(host)?.get(vm);
    if (state === undefined) return;
    closeAllOpen(state, 'aborted', out);
    state.devices.clear();
    this.changed?.add(state);
  }

  /**
   * Forgets a VM entirely (a processor drops a shut-down VM that fell silent, so state does not
   * grow with every VM name ever seen). Returns whether it was known.
   */
  forgetVm(host: string, vm: string): boolean {
    const vms = this.hosts.get(host);
    const state = vms?.get(vm);
    if (vms === undefined || state === undefined) return false;
    vms.delete(vm);
    if (vms.size === 0) this.hosts.delete(host);
    this.changed?.delete(state);
    return true;
  }

  /** Reports a VM in the next `takeChangedVms()` although no event changed it (its owner's bookkeeping did). */
  touchVm(host: string, vm: string): void {
    const state = this.hosts.get(host)?.get(vm);
    if (state !== undefined) this.changed?.add(state);
  }

  /** Drops every VM and device; what a processor does when it loses a partition. */
  clear(): void {
    this.hosts.clear();
    this.changed?.clear();
  }

  /** VMs changed since the last call, with all their devices (needs `trackChanges`). */
  takeChangedVms(): VmSnapshot[] {
    if (this.changed === null) throw new Error('takeChangedVms() needs trackChanges: true');
    const result = [...this.changed].map(snapshotVm);
    this.changed.clear();
    return result;
  }

  /** Puts back a VM exactly as `takeChangedVms()` reported it (state rebuild after a restart). */
  restoreVm(snapshot: VmSnapshot): void {
    const vm = this.vmState(snapshot.host, snapshot.vm);
    vm.watermarkMicros = snapshot.watermarkMicros;
    vm.devices.clear();
    vm.openPrepares = 0;
    vm.oldestOpenMicros = Number.POSITIVE_INFINITY;
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
        vm.openPrepares++;
        if (device.prepareMicros < vm.oldestOpenMicros) vm.oldestOpenMicros = device.prepareMicros;
      }
    }
  }

  /** Ends every open prepare as `unfinished` (end of input). */
  finish(out: TransitionRecord[]): void {
    for (const vms of this.hosts.values()) {
      for (const vm of vms.values()) closeAllOpen(vm, 'unfinished', out);
    }
  }

  /** VM watermarks, for a processor that tracks silence (host, vm, µs). */
  *watermarks(): IterableIterator<
    [host: string, vm: string, micros: number, openPrepares: number]
  > {
    for (const [host, vms] of this.hosts) {
      for (const [vm, state] of vms) yield [host, vm, state.watermarkMicros, state.openPrepares];
    }
  }

  stats(): TransitionEngineStats {
    let vms = 0;
    let devices = 0;
    let openPrepares = 0;
    for (const byVm of this.hosts.values()) {
      for (const vm of byVm.values()) {
        vms++;
        devices += vm.devices.size;
        openPrepares += vm.openPrepares;
      }
    }
    return { vms, devices, openPrepares, duplicates: this.duplicates };
  }

  private vmState(host: string, vm: string): VmState {
    let vms = this.hosts.get(host);
    if (vms === undefined) {
      vms = new Map();
      this.hosts.set(host, vms);
    }
    let state = vms.get(vm);
    if (state === undefined) {
      state = new VmState(host, vm);
      vms.set(vm, state);
    }
    return state;
  }
}

function snapshotVm(vm: VmState): VmSnapshot {
  return {
    host: vm.host,
    vm: vm.vm,
    watermarkMicros: vm.watermarkMicros,
    devices: [...vm.devices.values()].map(snapshotDevice),
  };
}

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

function applyState(
  vm: VmState,
  device: DeviceState,
  state: string,
  ts: number,
  out: TransitionRecord[],
): void {
  const target = prepareTarget(state);
  if (target !== null) {
    if (device.prepareState !== null) closePrepare(vm, device, 'failed', state, ts, out);
    device.prepareState = state;
    device.prepareMicros = ts;
    vm.openPrepares++;
    if (ts < vm.oldestOpenMicros) vm.oldestOpenMicros = ts;
  } else {
    if (device.prepareState !== null) {
      const outcome = state === prepareTarget(device.prepareState) ? 'completed' : 'failed';
      closePrepare(vm, device, outcome, state, ts, out);
    }
    if (device.state === null) {
      device.state = state;
      device.stateSinceMicros = ts;
    } else if (device.state !== state) {
      out.push({
        type: 'dwell',
        host: vm.host,
        vm: vm.vm,
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
}

function closePrepare(
  vm: VmState,
  device: DeviceState,
  outcome: PrepareOutcome,
  next: string | null,
  endMicros: number | null,
  out: TransitionRecord[],
): void {
  const prepareState = device.prepareState ?? '';
  const record: PrepareRecord = {
    type: 'prepare',
    host: vm.host,
    vm: vm.vm,
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
  out.push(record);
  device.prepareState = null;
  vm.openPrepares--;
}

function expireOpen(vm: VmState, limitMicros: number, out: TransitionRecord[]): void {
  if (vm.oldestOpenMicros >= limitMicros) return;
  let oldest = Number.POSITIVE_INFINITY;
  for (const device of vm.devices.values()) {
    if (device.prepareState === null) continue;
    if (device.prepareMicros < limitMicros) closePrepare(vm, device, 'timed_out', null, null, out);
    else if (device.prepareMicros < oldest) oldest = device.prepareMicros;
  }
  vm.oldestOpenMicros = oldest;
}

function closeAllOpen(vm: VmState, outcome: PrepareOutcome, out: TransitionRecord[]): void {
  if (vm.openPrepares === 0) return;
  for (const device of vm.devices.values()) {
    if (device.prepareState !== null) closePrepare(vm, device, outcome, null, null, out);
  }
}

/** Whole microseconds to seconds, clamped at 0 (the wall clock can step back). */
function elapsedSeconds(fromMicros: number, toMicros: number): number {
  return toMicros > fromMicros ? (toMicros - fromMicros) / 1_000_000 : 0;
}
