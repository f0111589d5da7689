import type { FleetConfig } from './fleet-config.ts';
import type { DeviceSpec, VmSpec } from './fleet.ts';
import { sampleLognormal, type Lognormal } from './lognormal.ts';
import type { Prng } from './prng.ts';
import type { QmpJson } from './qmp-json.ts';
import type { RunStatus } from './qmp-monitor.ts';

/**
 * One migration of one VM as the events its QEMU emits, in the orders of the domain notes §2.6
 * (derived from `hw/vfio/migration.c`, `system/runstate.c`, `migration/migration.c`):
 *
 * SOURCE, per device (all P2P transitions first, serially, then all stop transitions):
 *   [MIGRATION setup] [MIGRATION_PASS 1] `pre-copy` (PRE_COPY devices) [MIGRATION active]
 *   [MIGRATION_PASS 2..n] … switchover: P2P devices in pre-copy: `pre-copy-p2p-prepare` then
 *   `pre-copy-p2p` (or `running` when the ioctl fails and the device is reset); other P2P
 *   devices `running-p2p`; then `stop-copy` (devices in a pre-copy state) or `stop`; [STOP]
 *   [MIGRATION_PASS n+1]; `stop-copy` for devices still `stop` (save_complete_precopy);
 *   [MIGRATION completed]; `stop` (save_cleanup); later [SHUTDOWN] when management quits it.
 *   (PASS 1 precedes `active` as observed on QEMU 7.2: RAM's save_setup syncs the bitmap, and
 *   RAM's handler is registered before the VFIO devices'.)
 * Failures: cancel in pre-copy → [MIGRATION cancelling] [MIGRATION cancelled] `running`;
 *   failure after stop, or a failed prepare (`migration_file_set_error`) → [MIGRATION failed]
 *   [RESUME] `running-p2p` (P2P devices) `running` (all).
 * DESTINATION: [MIGRATION setup] [MIGRATION active] `resuming` … [RESUME] `running-p2p` (P2P)
 *   `running` [MIGRATION completed]; a failed load is [MIGRATION failed] and QEMU exits.
 */
export type EpisodeRole = 'source' | 'destination';
export type EpisodeOutcome =
  'completed' | 'cancelled' | 'failed-after-stop' | 'failed-prepare' | 'failed-load';

export interface ScheduledEvent {
  /** Virtual time since the simulation started, µs; never decreases within a VM. */
  atMicros: number;
  /** The VM's wall-clock offset at that moment (the sum of its clock steps so far), µs. */
  clockOffsetMicros: number;
  name: string;
  data?: { readonly [key: string]: QmpJson };
  /** The VM's RunState from this event on, when it changes. */
  status?: RunStatus;
}

export interface Episode {
  vm: string;
  /** 0, 1, 2… per VM. */
  index: number;
  role: EpisodeRole;
  outcome: EpisodeOutcome;
  startMicros: number;
  endMicros: number;
  events: ScheduledEvent[];
  preparesCompleted: number;
  preparesFailed: number;
  clockSteps: number;
}

export interface EpisodeContext {
  vm: VmSpec;
  index: number;
  role: EpisodeRole;
  startMicros: number;
  config: FleetConfig;
  p2pTime: Lognormal;
  prng: Prng;
}

const MS = 1000;
const S = 1_000_000;

/** Builds one episode; clock offsets are left at 0 for the schedule to fill in. */
export function buildEpisode(ctx: EpisodeContext): Episode {
  return ctx.role === 'source' ? buildSource(ctx) : buildDestination(ctx);
}

class Timeline {
  readonly events: ScheduledEvent[] = [];
  t: number;
  private readonly prng: Prng;

  constructor(start: number, prng: Prng) {
    this.t = start;
    this.prng = prng;
  }

  /** Moves time on by a uniformly drawn gap, µs (at least 1 µs: events never share a stamp). */
  wait(minMicros: number, maxMicros: number): this {
    this.t += Math.max(1, Math.round(this.prng.between(minMicros, maxMicros)));
    return this;
  }

  event(name: string, data?: { readonly [key: string]: QmpJson }, status?: RunStatus): void {
    const event: ScheduledEvent = { atMicros: this.t, clockOffsetMicros: 0, name };
    if (data !== undefined) event.data = data;
    if (status !== undefined) event.status = status;
    this.events.push(event);
  }

  migration(status: string, run?: RunStatus): void {
    this.event('MIGRATION', { status }, run);
  }

  vfio(device: DeviceSpec, state: string): void {
    this.event('VFIO_MIGRATION', {
      'device-id': device.id,
      'qom-path': device.qomPath,
      'device-state': state,
    });
  }
}

/** Time between events of one code path (event building, the next device's small ioctl). */
const NEAR: [number, number] = [50, 300];

function buildSource(ctx: EpisodeContext): Episode {
  const { prng, config, vm } = ctx;
  const tl = new Timeline(ctx.startMicros, prng);
  const states = new Map(vm.devices.map((d) => [d, 'running']));
  const set = (device: DeviceSpec, state: string): void => {
    states.set(device, state);
    tl.vfio(device, state);
  };

  tl.migration('setup');
  tl.wait(2 * MS, 5 * MS).event('MIGRATION_PASS', { pass: 1 });
  let pass = 1;
  for (const device of vm.devices) {
    if (device.precopy) {
      tl.wait(...NEAR);
      set(device, 'pre-copy');
    }
  }
  tl.wait(500, 1500).migration('active');

  const precopyMicros = prng.between(1 * S, 4 * S);
  const iterations = prng.intBetween(1, 4);
  const failing = prng.chance(config.failureRate);
  const mode = !failing ? 'complete' : prng.chance(0.5) ? 'cancel' : 'fail-after-stop';
  const activeAt = tl.t;
  if (mode === 'cancel') {
    const cancelAt = activeAt + precopyMicros * prng.between(0.2, 0.9);
    for (let k = 1; k <= iterations; k++) {
      const at = activeAt + (precopyMicros * k) / (iterations + 1);
      if (at >= cancelAt) break;
      tl.t = Math.round(at);
      tl.event('MIGRATION_PASS', { pass: ++pass });
    }
    tl.t = Math.max(tl.t + 1, Math.round(cancelAt));
    tl.migration('cancelling');
    tl.wait(10 * MS, 100 * MS).migration('cancelled');
    for (const device of vm.devices) {
      if (states.get(device) === 'pre-copy') {
        tl.wait(...NEAR);
        set(device, 'running');
      }
    }
    return finish(ctx, tl, 'cancelled', 0, 0);
  }

  for (let k = 1; k <= iterations; k++) {
    tl.t = Math.round(activeAt + (precopyMicros * k) / iterations) - 700;
    tl.event('MIGRATION_PASS', { pass: ++pass });
  }

  // Switchover: vm_state_notify runs every device's prepare callback, then every main one.
  let completed = 0;
  let failed = 0;
  for (const device of vm.devices) {
    if (!device.p2p) continue;
    tl.wait(...NEAR);
    if (states.get(device) === 'pre-copy') {
      tl.vfio(device, 'pre-copy-p2p-prepare');
      const ioctlMicros = sampleLognormal(prng, ctx.p2pTime) * MS;
      tl.wait(ioctlMicros, ioctlMicros);
      if (prng.chance(config.prepareFailureRate)) {
        failed++;
        set(device, 'running');
      } else {
        completed++;
        set(device, 'pre-copy-p2p');
      }
    } else {
      tl.wait(100, 1 * MS);
      set(device, 'running-p2p');
    }
  }
  for (const device of vm.devices) {
    const state = states.get(device);
    const precopyState = state === 'pre-copy' || state === 'pre-copy-p2p';
    tl.wait(...(precopyState ? ([1 * MS, 10 * MS] as const) : NEAR));
    set(device, precopyState ? 'stop-copy' : 'stop');
  }
  tl.wait(...NEAR).event('STOP', undefined, 'finish-migrate');

  if (failed > 0 || mode === 'fail-after-stop') {
    if (failed === 0) tl.wait(200, 800).event('MIGRATION_PASS', { pass: ++pass });
    tl.wait(2 * MS, 50 * MS).migration('failed');
    tl.wait(...NEAR).event('RESUME', undefined, 'running');
    for (const device of vm.devices) {
      if (device.p2p) {
        tl.wait(...NEAR);
        set(device, 'running-p2p');
      }
    }
    for (const device of vm.devices) {
      tl.wait(...NEAR);
      set(device, 'running');
    }
    return finish(ctx, tl, failed > 0 ? 'failed-prepare' : 'failed-after-stop', completed, failed);
  }

  tl.wait(200, 800).event('MIGRATION_PASS', { pass: ++pass });
  for (const device of vm.devices) {
    if (states.get(device) === 'stop') {
      tl.wait(1 * MS, 10 * MS);
      set(device, 'stop-copy');
    }
  }
  tl.wait(1 * MS, 5 * MS).migration('completed', 'postmigrate');
  for (const device of vm.devices) {
    tl.wait(...NEAR);
    set(device, 'stop');
  }
  tl.wait(0.5 * S, 2 * S).event('SHUTDOWN', { guest: false, reason: 'host-qmp-quit' }, 'shutdown');
  return finish(ctx, tl, 'completed', completed, failed);
}

function buildDestination(ctx: EpisodeContext): Episode {
  const { prng, config, vm } = ctx;
  const tl = new Timeline(ctx.startMicros, prng);
  tl.migration('setup', 'inmigrate');
  tl.wait(1 * MS, 3 * MS).migration('active');
  for (const device of vm.devices) {
    tl.wait(...NEAR);
    tl.vfio(device, 'resuming');
  }
  tl.wait(1 * S, 4 * S);
  if (prng.chance(config.failureRate)) {
    tl.migration('failed');
    return finish(ctx, tl, 'failed-load', 0, 0);
  }
  tl.event('RESUME', undefined, 'running');
  for (const device of vm.devices) {
    if (device.p2p) {
      tl.wait(...NEAR);
      tl.vfio(device, 'running-p2p');
    }
  }
  for (const device of vm.devices) {
    tl.wait(...NEAR);
    tl.vfio(device, 'running');
  }
  tl.wait(...NEAR).migration('completed');
  return finish(ctx, tl, 'completed', 0, 0);
}

function finish(
  ctx: EpisodeContext,
  tl: Timeline,
  outcome: EpisodeOutcome,
  preparesCompleted: number,
  preparesFailed: number,
): Episode {
  return {
    vm: ctx.vm.name,
    index: ctx.index,
    role: ctx.role,
    outcome,
    startMicros: ctx.startMicros,
    endMicros: tl.t,
    events: tl.events,
    preparesCompleted,
    preparesFailed,
    clockSteps: 0,
  };
}
