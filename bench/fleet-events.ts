/**
 * Deterministic QMP events of a fleet, per VM, in two forms: QEMU's JSON lines (for a feeder
 * that plays QEMU on unix sockets) and the collector's Avro event records built from the same
 * events (for floors and pre-filled topics). 90% VFIO_MIGRATION walking QEMU's source order,
 * 10% MIGRATION, over `devicesPerVm` devices per VM.
 */
import { randomUUID } from 'node:crypto';
import { buildEventRecord } from '../services/shared/core/event-record-builder.ts';
import { eventKey } from '../services/collector/core/partitioner.ts';
import type { QmpEvent } from '../services/shared/core/qmp-message.ts';
import { createEventCodec } from '../services/shared/io/avro-codec.ts';

const WALK = ['pre-copy', 'pre-copy-p2p-prepare', 'pre-copy-p2p', 'stop-copy', 'stop', 'running'];
const START_MICROS = 1_795_798_176_000_000;

export function vmName(index: number): string {
  return `vm-${index}`;
}

/** Event `i` of VM `vm`; timestamps advance 100 µs per event. */
export function fleetEvent(vm: number, i: number, devicesPerVm: number): QmpEvent {
  const timestampMicros = START_MICROS + vm * 7 + i * 100;
  if (i % 10 === 9) {
    return { kind: 'event', name: 'MIGRATION', timestampMicros, data: { status: 'active' } };
  }
  // Index among this VM's VFIO events, so every device walks QEMU's order without gaps.
  const vfio = i - Math.floor((i + 1) / 10);
  const device = vfio % devicesPerVm;
  const step = Math.floor(vfio / devicesPerVm) % WALK.length;
  return {
    kind: 'event',
    name: 'VFIO_MIGRATION',
    timestampMicros,
    data: {
      'device-id': `vf${device}`,
      'qom-path': `/machine/peripheral/vf${device}`,
      'device-state': WALK[step],
    },
  };
}

/** The event as QEMU writes it on the monitor (its JSON layout, CRLF). */
export function qmpLine(event: QmpEvent): string {
  const seconds = Math.floor(event.timestampMicros / 1e6);
  const micros = event.timestampMicros % 1e6;
  return `{"timestamp": {"seconds": ${seconds}, "microseconds": ${micros}}, "event": "${event.name}", "data": ${JSON.stringify(event.data).replace(/":/g, '": ').replace(/,"/g, ', "')}}\r\n`;
}

export interface EncodedEvent {
  key: string;
  value: Buffer;
}

/**
 * The records a collector on `host` would publish for `eventsPerVm` events of each of `vms` VMs,
 * interleaved VM by VM in runs of `run` events (as a collector reading many sockets batches them).
 */
export function encodedFleetRecords(
  host: string,
  vms: number,
  eventsPerVm: number,
  devicesPerVm: number,
  run = 16,
): EncodedEvent[] {
  const codec = createEventCodec();
  const sessions = Array.from({ length: vms }, () => randomUUID());
  const out: EncodedEvent[] = [];
  for (let base = 0; base < eventsPerVm; base += run) {
    for (let vm = 0; vm < vms; vm++) {
      for (let i = base; i < Math.min(eventsPerVm, base + run); i++) {
        const record = buildEventRecord(
          {
            host,
            vm: vmName(vm),
            sessionId: sessions[vm] as string,
            sequence: i + 1,
            receivedMicros: START_MICROS + vm * 7 + i * 100 + 50,
          },
          fleetEvent(vm, i, devicesPerVm),
        );
        if ('kind' in record) throw new Error(`fleet event rejected: ${record.detail}`);
        out.push({ key: eventKey(host, record.vm), value: codec.encode(record) });
      }
    }
  }
  return out;
}
