import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { decodeQmpBytes } from '../../../services/shared/core/qmp-decoder.ts';
import { brokersFromEnv, uniqueTopic } from '../../helpers/kafka.ts';
import { runFleet } from '../pipeline/pipeline-harness.ts';
import { byVm, consumeUntil } from './collector-harness.ts';

/** Every event in a transcript, as the collector must publish it: name, time, VFIO and MIGRATION fields, data. */
function transcriptEvents(file: string): unknown[][] {
  return decodeQmpBytes(readFileSync(file)).flatMap((m) => {
    if (m.kind !== 'event') return [];
    const d = m.data;
    const vfio = m.name === 'VFIO_MIGRATION';
    return [
      [
        m.name,
        m.timestampMicros,
        vfio ? d['qom-path'] : null,
        vfio ? (d['device-id'] ?? '') : null,
        vfio ? d['device-state'] : null,
        m.name === 'MIGRATION' ? d['status'] : null,
        vfio || m.name === 'MIGRATION' || Object.keys(d).length === 0 ? null : JSON.stringify(d),
      ],
    ];
  });
}

test('simulated QEMU fleet → collector → Kafka: every event, exact contents, in order per VM', async (t) => {
  const brokers = brokersFromEnv();
  const topic = await uniqueTopic(t, 'collector-sim', { brokers, numPartitions: 3 });
  const fleet = await runFleet(t, brokers, topic, {
    vms: 10,
    devicesPerVm: 3,
    migrationsPerVmPerMinute: 30,
    failureRate: 0.2,
    prepareFailureRate: 0.2,
    seed: 31,
    migrations: 60,
    speed: 'max',
  });
  const sent = await fleet.delivered;
  const records = await consumeUntil(t, brokers, topic, (r) => r.length >= sent);
  assert.equal(records.length, sent, 'no record twice, none missing');
  const grouped = byVm(records);
  const files = readdirSync(fleet.transcripts).sort();
  assert.deepEqual(
    [...grouped.keys()].sort(),
    files.map((f) => f.replace(/\.qmp$/, '')),
  );
  for (const file of files) {
    const vm = file.replace(/\.qmp$/, '');
    const list = grouped.get(vm) ?? [];
    assert.equal(new Set(list.map((r) => r.partition)).size, 1, `${vm}: one partition`);
    assert.deepEqual(
      list.map((r) => r.record.sequence),
      list.map((_, i) => i + 1),
      `${vm}: one session, sequence from 1 without gaps`,
    );
    assert.deepEqual(
      list.map(({ record: r }) => [
        r.event,
        r.qemuTimestampMicros,
        r.qomPath,
        r.deviceId,
        r.deviceState,
        r.migrationStatus,
        r.data,
      ]),
      transcriptEvents(join(fleet.transcripts, file)),
      `${vm}: contents and order`,
    );
  }
});
