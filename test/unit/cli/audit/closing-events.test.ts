import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  closingEventTimes,
  type PartitionEvent,
} from '../../../../services/cli/audit/closing-events.ts';
import type { EventRecord } from '../../../../services/shared/core/event-record.ts';
import { createEventCodec } from '../../../../services/shared/io/avro-codec.ts';
import { engineTransitions } from '../../../helpers/transcript-events.ts';

const codec = createEventCodec();
const T0 = 1_795_798_176_000_000;

function vfio(sequence: number, atMicros: number, state: string): EventRecord {
  return {
    host: 'h1',
    vm: 'vm-a',
    sessionId: 's1',
    sequence,
    qemuTimestampMicros: T0 + atMicros,
    receivedMicros: T0 + atMicros + 500,
    event: 'VFIO_MIGRATION',
    qomPath: '/machine/peripheral/vf0',
    deviceId: 'vf0',
    deviceState: state,
    migrationStatus: null,
    data: null,
  };
}

/** Event i was written at Kafka time 100 * (i + 1). */
function partition(records: EventRecord[]): PartitionEvent[] {
  return records.map((record, i) => ({
    offset: BigInt(i),
    timestampMs: 100 * (i + 1),
    value: codec.encode(record),
    record,
  }));
}

const recompute = (records: readonly { value: Buffer | null }[]) =>
  engineTransitions(
    records.flatMap((r) => {
      const decoded = r.value === null ? null : codec.decode(r.value);
      return decoded?.kind === 'record' ? [decoded.value] : [];
    }),
  );

test('an ended transition is closed by the event at its end; a timed-out one by the event that timed it out', () => {
  const events = partition([
    vfio(1, 0, 'running'),
    vfio(2, 1_000_000, 'pre-copy-p2p-prepare'),
    vfio(3, 1_012_000, 'pre-copy-p2p'),
    vfio(4, 2_000_000, 'pre-copy-p2p-prepare'),
    vfio(5, 3_000_000, 'pre-copy-p2p'),
    vfio(6, 3_000_100, 'pre-copy-p2p-prepare'),
    // 20 s later in QEMU time, another event of the VM: the open prepare is older than the
    // 10 s timeout.
    {
      ...vfio(7, 23_000_000, ''),
      event: 'MIGRATION',
      qomPath: null,
      deviceId: null,
      deviceState: null,
      migrationStatus: 'active',
    },
  ]);
  const transitions = recompute(events);
  const timedOut = transitions.findIndex((t) => t.type === 'prepare' && t.outcome === 'timed_out');
  assert.ok(timedOut >= 0, JSON.stringify(transitions));
  const times = closingEventTimes(events, transitions, recompute);
  for (const [i, t] of transitions.entries()) {
    if (i === timedOut) assert.equal(times[i], 700, 'timed out by the 7th event');
    else {
      const closer = events.find((e) => e.record?.qemuTimestampMicros === t.endMicros);
      assert.equal(times[i], closer?.timestampMs, JSON.stringify(t));
    }
  }
});

test('a prepare still open at the end has no closing event', () => {
  const events = partition([
    vfio(1, 0, 'running'),
    vfio(2, 500_000, 'pre-copy'),
    vfio(3, 1_000_000, 'stop-copy-prepare'),
  ]);
  const open = {
    ...(recompute(events)[0] ?? assert.fail('a dwell')),
  };
  const unfinished = {
    type: 'prepare' as const,
    host: 'h1',
    vm: 'vm-a',
    qomPath: '/machine/peripheral/vf0',
    deviceId: 'vf0',
    target: 'stop-copy',
    prepareState: 'stop-copy-prepare',
    outcome: 'unfinished' as const,
    next: null,
    seconds: null,
    startMicros: T0 + 1_000_000,
    endMicros: null,
  };
  assert.deepEqual(closingEventTimes(events, [open, unfinished], recompute), [200, null]);
});
