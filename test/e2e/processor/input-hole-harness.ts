/**
 * What the input-hole tests share: event records that walk each VM through its migration states,
 * the operator's offset reset past a backlog (what `kafka-consumer-groups --reset-offsets` sends:
 * an admin OffsetCommit with no member, taken only while the group is empty), and the processor's
 * `vfio_processor_input_holes_total` by result.
 */
import { Admin } from '@platformatic/kafka';
import type { EventRecord } from '../../../services/shared/core/event-record.ts';
import { createEventCodec } from '../../../services/shared/io/avro-codec.ts';
import type { OutgoingRecord } from '../../../services/shared/kafka/io/port.ts';
import { metricValue } from '../../helpers/metrics-text.ts';

const WALK = ['running', 'pre-copy-prepare', 'pre-copy', 'stop-copy-prepare', 'stop-copy', 'stop'];
const T0 = 1_795_798_176_000_000;

/**
 * A maker of `count` event records for a partition of `topic`: the partition's `vms` VMs
 * (`p<partition>-vm<i>`, host `h`) take turns, each walking its device through WALK with its
 * own sequence (1, 2, ...) and QEMU time 10 ms apart, so every event after a VM's first closes
 * a transition. Sequences go on across calls.
 */
export function walkingEvents(
  topic: string,
  vms: number,
): (partition: number, count: number) => OutgoingRecord[] {
  const codec = createEventCodec();
  const sequences = new Map<string, number>();
  return (partition, count) => {
    const records: OutgoingRecord[] = [];
    for (let i = 0; i < count; i++) {
      const vm = `p${partition}-vm${i % vms}`;
      const sequence = (sequences.get(vm) ?? 0) + 1;
      sequences.set(vm, sequence);
      const event: EventRecord = {
        host: 'h',
        vm,
        sessionId: 's1',
        sequence,
        qemuTimestampMicros: T0 + sequence * 10_000,
        receivedMicros: T0 + sequence * 10_000 + 500,
        event: 'VFIO_MIGRATION',
        qomPath: '/machine/peripheral/vf0',
        deviceId: 'vf0',
        deviceState: WALK[sequence % WALK.length] as string,
        migrationStatus: null,
        data: null,
      };
      records.push({ topic, partition, key: Buffer.from(`h/${vm}`), value: codec.encode(event) });
    }
    return records;
  };
}

/**
 * Moves the group's committed offset of one partition, as `kafka-consumer-groups --reset-offsets`
 * does (OffsetCommit with generation -1 and no member id). The group must have no live member.
 */
export async function resetGroupOffset(
  brokers: readonly string[],
  groupId: string,
  topic: string,
  partition: number,
  offset: number,
): Promise<void> {
  const admin = new Admin({
    clientId: 'vfio-telemetry-test-reset',
    bootstrapBrokers: [...brokers],
  });
  try {
    await admin.alterConsumerGroupOffsets({
      groupId,
      topics: [{ name: topic, partitionOffsets: [{ partition, offset: BigInt(offset) }] }],
    });
  } finally {
    await admin.close().catch(() => undefined);
  }
}

/** `vfio_processor_input_holes_total{result}` from a processor's /metrics text (NaN if absent). */
export function inputHoles(
  metrics: string,
  result: 'filled' | 'accepted' | 'restored_again',
): number {
  return metricValue(metrics, 'vfio_processor_input_holes_total', { result }, NaN);
}
