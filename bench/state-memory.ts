/**
 * Heap bytes per tracked device: the transition engine alone, and the processor's per-partition
 * state around it (sessions, silence tracking). Worst case: every device holds an open prepare.
 * The target is at most 256 bytes per device.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  emptyApplyCounts,
  PartitionProcessor,
} from '../services/processor/core/partition-processor.ts';
import type { PublishedTransition } from '../services/processor/core/published-transition.ts';
import { TransitionEngine } from '../services/shared/core/transition-engine.ts';

const DEVICES = 100_000;
const DEVICES_PER_VM = 4;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

const paths = Array.from({ length: DEVICES_PER_VM }, (_, i) => `/machine/peripheral/vf${i}`);
const vms = Array.from({ length: DEVICES / DEVICES_PER_VM }, (_, i) => `vm-${i}`);
const sessions = vms.map((_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
const STATES = ['pre-copy', 'pre-copy-p2p-prepare'];

export function engineBytesPerDevice(): number {
  const before = heapAfterGc();
  const engine = new TransitionEngine();
  for (let i = 0; i < DEVICES; i++) {
    for (let s = 0; s < STATES.length; s++) {
      const vm = vms[Math.floor(i / DEVICES_PER_VM)] as string;
      const qomPath = paths[i % DEVICES_PER_VM] as string;
      const deviceState = STATES[s] as string;
      engine.apply({
        kind: 'vfio',
        host: 'h1',
        vm,
        timestampMicros: 1e15 + i * 2 + s,
        qomPath,
        deviceId: '',
        deviceState,
      });
    }
  }
  const bytes = (heapAfterGc() - before) / DEVICES;
  if (engine.stats().openPrepares !== DEVICES)
    throw new Error('expected every device to hold an open prepare');
  return bytes;
}

export function processorBytesPerDevice(): number {
  const before = heapAfterGc();
  const processor = new PartitionProcessor(0, { prepareTimeoutSeconds: 10 });
  const out: PublishedTransition[] = [];
  const counts = emptyApplyCounts();
  let offset = 0;
  for (let i = 0; i < DEVICES; i++) {
    const v = Math.floor(i / DEVICES_PER_VM);
    for (const [s, deviceState] of STATES.entries()) {
      offset++;
      processor.apply(
        offset,
        1e12 + offset,
        {
          host: 'h1',
          vm: vms[v] as string,
          sessionId: sessions[v] as string,
          // Per-session sequence without gaps: a VM's devices come one after the other.
          sequence: (i % DEVICES_PER_VM) * STATES.length + s + 1,
          qemuTimestampMicros: 1e15 + offset,
          receivedMicros: 1e15,
          event: 'VFIO_MIGRATION',
          qomPath: paths[i % DEVICES_PER_VM] as string,
          deviceId: '',
          deviceState,
          migrationStatus: null,
          data: null,
        },
        out,
        counts,
      );
    }
    if (offset % 1000 === 0) {
      processor.takeChanges();
      out.length = 0;
    }
  }
  processor.takeChanges();
  out.length = 0;
  const bytes = (heapAfterGc() - before) / DEVICES;
  if (processor.stats().openPrepares !== DEVICES)
    throw new Error('expected every device to hold an open prepare');
  return bytes;
}
