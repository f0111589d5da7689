import type { FleetConfig } from './fleet-config.ts';
import type { RunStatus } from './qmp-monitor.ts';
import { deriveSeed, Prng } from './prng.ts';

/** One VFIO device of a simulated VM: `-device vfio-pci,id=vfN,migration-events=on`. */
export interface DeviceSpec {
  id: string;
  qomPath: string;
  /** Driver supports RUNNING_P2P / PRE_COPY_P2P (`VFIO_MIGRATION_P2P`). */
  p2p: boolean;
  /** Driver supports PRE_COPY (`VFIO_MIGRATION_PRE_COPY`). */
  precopy: boolean;
}

export interface VmSpec {
  index: number;
  name: string;
  devices: readonly DeviceSpec[];
  /** Whether the VM runs here at start (its first migration is outgoing) or is expected in. */
  firstRole: 'source' | 'destination';
  initialStatus: RunStatus;
}

/** Random streams of one VM, derived from the seed so VMs do not influence each other. */
export const STREAM_FLEET = 0;
export const STREAM_EPISODES = 1;
export const STREAM_CLOCK = 2;

export function createFleet(config: FleetConfig): VmSpec[] {
  const width = Math.max(3, String(config.vms - 1).length);
  const vms: VmSpec[] = [];
  for (let index = 0; index < config.vms; index++) {
    const prng = new Prng(deriveSeed(config.seed, index, STREAM_FLEET));
    const devices: DeviceSpec[] = [];
    for (let d = 0; d < config.devicesPerVm; d++) {
      devices.push({
        id: `vf${d}`,
        qomPath: `/machine/peripheral/vf${d}`,
        p2p: prng.chance(config.p2pRatio),
        precopy: prng.chance(config.precopyRatio),
      });
    }
    const firstRole = prng.chance(0.5) ? 'source' : 'destination';
    vms.push({
      index,
      name: `vm-${String(index).padStart(width, '0')}`,
      devices,
      firstRole,
      initialStatus: firstRole === 'source' ? 'running' : 'inmigrate',
    });
  }
  return vms;
}
