import type { EventRecord } from '../../../services/shared/core/event-record.ts';
import type { EventDecodeResult } from '../../../services/processor/core/published-transition.ts';
import type { BatchRecord } from '../../../services/processor/core/process-batch.ts';

/** QEMU time origin of the fixtures, and the collector's receive clock (1 ms behind QEMU). */
export const T0 = 1_795_798_176_000_000;

export interface EventSpec {
  vm?: string;
  session?: string;
  seq: number;
  /** QEMU time, ms after T0. */
  ms: number;
  /** Collector receive time, ms after T0 (default `ms`). */
  receivedMs?: number;
  /** Broker time (the record's Kafka timestamp), ms after T0 (default `receivedMs`). */
  brokerMs?: number;
  state?: string;
  event?: string;
  device?: string;
}

export function eventRecord(spec: EventSpec): EventRecord {
  const event = spec.event ?? 'VFIO_MIGRATION';
  const vfio = event === 'VFIO_MIGRATION';
  const device = spec.device ?? 'vf0';
  return {
    host: 'h1',
    vm: spec.vm ?? 'vm1',
    sessionId: spec.session ?? 's1',
    sequence: spec.seq,
    qemuTimestampMicros: T0 + spec.ms * 1000,
    receivedMicros: T0 + (spec.receivedMs ?? spec.ms) * 1000 + 1000,
    event,
    qomPath: vfio ? `/machine/peripheral/${device}` : null,
    deviceId: vfio ? device : null,
    deviceState: vfio ? (spec.state ?? 'running') : null,
    migrationStatus: null,
    data: null,
  };
}

/** Test encoding of the events topic: JSON instead of Avro (the core takes the decoder). */
export function encodeEvent(record: EventRecord): Buffer {
  return Buffer.from(JSON.stringify(record));
}

export function decodeEvent(value: Uint8Array): EventDecodeResult {
  try {
    return { kind: 'record', value: JSON.parse(Buffer.from(value).toString()) as EventRecord };
  } catch {
    return { kind: 'invalid', reason: 'bad_body' };
  }
}

/** The Kafka timestamp of a record appended `ms` after T0: 1 ms after its receive time. */
export function brokerTimeMs(ms: number): number {
  return T0 / 1000 + ms + 2;
}

/** The Kafka timestamp of a test-encoded record appended 1 ms after its receive time. */
export function appendedAfterReceipt(value: Buffer): number {
  return Math.floor((JSON.parse(value.toString()) as EventRecord).receivedMicros / 1000) + 1;
}

/** Records of one partition from offset `from` on. */
export function batchOf(specs: readonly EventSpec[], partition = 0, from = 0): BatchRecord[] {
  return specs.map((spec, i) => ({
    partition,
    offset: from + i,
    key: null,
    value: encodeEvent(eventRecord(spec)),
    timestampMs: brokerTimeMs(spec.brokerMs ?? spec.receivedMs ?? spec.ms),
  }));
}
