/**
 * `vfio-telemetry audit` against the real broker: real QEMU transcripts turned into event records
 * as the collector builds them, the exact transitions the transition engine computes from them,
 * both on fresh topics; then a dropped, a duplicated and a changed transition, each named.
 */
import { BROKER_TIME_CONFIGS } from '../../../services/shared/core/topics.ts';
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import type { AuditReport } from '../../../services/cli/audit/audit-topics.ts';
import { eventKey, partitionFor } from '../../../services/collector/core/partitioner.ts';
import type { TransitionRecord } from '../../../services/shared/core/transition-record.ts';
import { createEventCodec, createTransitionCodec } from '../../../services/shared/io/avro-codec.ts';
import { createKafkaPort } from '../../../services/shared/kafka/io/client.ts';
import type { KafkaPort, OutgoingRecord } from '../../../services/shared/kafka/io/port.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { runCli } from '../../helpers/cli.ts';
import { engineTransitions, transcriptEvents } from '../../helpers/transcript-events.ts';
import { brokersFromEnv, uniqueTopic } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const PARTITIONS = 2;
const HOST = 'audit-host';
const TRANSCRIPTS = [
  'source-p2p-precopy',
  'failed-prepare-reset',
  'cancel-precopy',
  'destination',
  'lifecycle',
];
const eventCodec = createEventCodec();
const transitionCodec = createTransitionCodec();

interface Fleet {
  eventsTopic: string;
  transitionsTopic: string;
  /** Transitions per partition, in the order the processor would publish them. */
  transitions: Map<number, TransitionRecord[]>;
  port: KafkaPort;
}

async function fleetTopics(t: TestContext): Promise<Fleet> {
  const eventsTopic = await uniqueTopic(t, 'audit-events', {
    numPartitions: PARTITIONS,
    configs: BROKER_TIME_CONFIGS,
  });
  const transitionsTopic = await uniqueTopic(t, 'audit-transitions', {
    numPartitions: PARTITIONS,
  });
  const port = createKafkaPort({
    brokers: brokersFromEnv(),
    clientId: 'vfio-telemetry-test',
    logger: createLogger({ level: 'warn' }),
  });
  t.after(() => port.close());
  const transitions = new Map<number, TransitionRecord[]>();
  const events: OutgoingRecord[] = [];
  for (const vm of TRANSCRIPTS) {
    const key = eventKey(HOST, vm);
    const partition = partitionFor(key, PARTITIONS);
    const vmEvents = transcriptEvents(`vfio/${vm}.qmp`, HOST, vm);
    for (const record of vmEvents) {
      events.push({
        topic: eventsTopic,
        partition,
        key: Buffer.from(key),
        value: eventCodec.encode(record),
      });
    }
    transitions.set(partition, [
      ...(transitions.get(partition) ?? []),
      ...engineTransitions(vmEvents),
    ]);
  }
  // A collector re-send after a crash: the same (session, sequence) twice, which the processor
  // recognises and skips.
  events.push(events[3] as OutgoingRecord);
  const producer = await port.producer();
  try {
    assert.deepEqual((await producer.send(events)).refused, []);
  } finally {
    await producer.close();
  }
  return { eventsTopic, transitionsTopic, transitions, port };
}

async function publish(fleet: Fleet, records: readonly [number, TransitionRecord][]) {
  const producer = await fleet.port.producer();
  try {
    const { refused } = await producer.send(
      records.map(([partition, record]) => ({
        topic: fleet.transitionsTopic,
        partition,
        key: Buffer.from(eventKey(record.host, record.vm)),
        value: transitionCodec.encode(record),
      })),
    );
    assert.deepEqual(refused, []);
  } finally {
    await producer.close();
  }
}

const all = (fleet: Fleet): [number, TransitionRecord][] =>
  [...fleet.transitions].flatMap(([p, records]) =>
    records.map((r): [number, TransitionRecord] => [p, r]),
  );

async function audit(fleet: Fleet, ...flags: string[]) {
  const run = await runCli([
    'audit',
    '--events-topic',
    fleet.eventsTopic,
    '--transitions-topic',
    fleet.transitionsTopic,
    ...flags,
  ]);
  return run;
}

async function auditJson(fleet: Fleet, ...flags: string[]) {
  const run = await audit(fleet, '--format', 'json', ...flags);
  return { ...run, report: JSON.parse(run.stdout) as AuditReport };
}

describe('vfio-telemetry audit against Kafka', { timeout: 120_000 }, () => {
  test('the exact transitions: exit 0, every event counted once, re-sends apart', async (t) => {
    const fleet = await fleetTopics(t);
    const published = all(fleet);
    assert.ok(published.length >= 10, `only ${published.length} transitions in the fixtures`);
    assert.ok(new Set(published.map(([p]) => p)).size === PARTITIONS, 'both partitions used');
    await publish(fleet, published);

    const { status, report, stderr } = await auditJson(fleet);
    assert.equal(status, 0, stderr + JSON.stringify(report));
    assert.equal(report.clean, true);
    assert.deepEqual(report.partitions, [0, 1]);
    const totalEvents = TRANSCRIPTS.map(
      (vm) => transcriptEvents(`vfio/${vm}.qmp`, HOST, vm).length,
    ).reduce((a, b) => a + b);
    assert.deepEqual(report.events, {
      records: totalEvents + 1,
      distinct: totalEvents,
      duplicates: 1,
      undecodable: 0,
    });
    assert.equal(report.transitions.recomputed, published.length);
    assert.equal(report.transitions.matched, published.length);

    const table = await audit(fleet);
    assert.equal(table.status, 0);
    assert.match(table.stdout, /Clean: no differences\./);
    assert.match(table.stdout, new RegExp(`${published.length} recomputed`));
  });

  test('a dropped, a duplicated and a changed transition: exit 1, each named', async (t) => {
    const fleet = await fleetTopics(t);
    const published = all(fleet);
    const [droppedPartition, dropped] = published[1] as [number, TransitionRecord];
    const [twicePartition, twice] = published[4] as [number, TransitionRecord];
    const changedAt = published.findIndex(
      ([, r]) => r.type === 'prepare' && r.outcome === 'completed',
    );
    const [changedPartition, original] = published[changedAt] as [number, TransitionRecord];
    const changed = { ...original, outcome: 'failed' } as TransitionRecord;
    await publish(fleet, [
      ...published.filter((_, i) => i !== 1 && i !== changedAt),
      [changedPartition, changed],
      [twicePartition, twice],
    ]);

    const { status, report } = await auditJson(fleet);
    assert.equal(status, 1);
    assert.equal(report.clean, false);
    const named = (k: { partition: number; type: string; vm: string; startMicros: number }) => [
      k.partition,
      k.type,
      k.vm,
      k.startMicros,
    ];
    assert.deepEqual(report.transitions.missing.map(named), [
      [droppedPartition, dropped.type, dropped.vm, dropped.startMicros],
    ]);
    assert.deepEqual(report.transitions.duplicated.map(named), [
      [twicePartition, twice.type, twice.vm, twice.startMicros],
    ]);
    assert.deepEqual(report.transitions.mismatched.map(named), [
      [changedPartition, 'prepare', original.vm, original.startMicros],
    ]);
    assert.deepEqual(report.transitions.mismatched[0]?.differences, [
      { field: 'outcome', expected: 'completed', actual: 'failed' },
    ]);
    assert.deepEqual(report.transitions.unexpected, []);

    const table = await audit(fleet);
    assert.equal(table.status, 1);
    assert.match(table.stdout, /Missing \(recomputed, not in the topic\): 1/);
    assert.match(table.stdout, new RegExp(`${dropped.type} +${HOST} +${dropped.vm}`));
    assert.match(table.stdout, /Duplicated \(in the topic more than once\): 1/);
    assert.match(table.stdout, /outcome "completed" → "failed"/);
    assert.match(table.stdout, /Differences: 3\./);
  });

  test('--partitions and --since/--until limit what is reported, not what is recomputed', async (t) => {
    const fleet = await fleetTopics(t);
    const published = all(fleet);
    const [droppedPartition] = published[0] as [number, TransitionRecord];
    await publish(fleet, published.slice(1));
    const other = String(1 - droppedPartition);
    assert.equal((await audit(fleet, '--partitions', other)).status, 0);
    assert.equal((await audit(fleet, '--partitions', String(droppedPartition))).status, 1);

    // Every event was written before `after`: a range from then on reports nothing.
    const after = Date.now() + 1;
    await waitFor(() => Date.now() > after, { intervalMs: 1, description: 'the clock moving on' });
    assert.equal((await audit(fleet, '--since', String(after))).status, 0);
    const untilThen = await auditJson(fleet, '--until', new Date(after).toISOString());
    assert.equal(untilThen.status, 1);
    assert.equal(untilThen.report.transitions.missing.length, 1);
  });

  test('bad usage exits 2 and says why', async (t) => {
    const fleet = await fleetTopics(t);
    const beyond = await audit(fleet, '--partitions', '7');
    assert.equal(beyond.status, 2);
    assert.match(beyond.stderr, /partition 7 does not exist/);
    const badTime = await audit(fleet, '--since', 'yesterday');
    assert.equal(badTime.status, 2);
    assert.match(badTime.stderr, /"yesterday" is not a time/);
    const help = await runCli(['audit', '--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--since TEXT/);
  });
});
