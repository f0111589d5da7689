/**
 * `auditTopics` over an in-memory port (the real broker is test/e2e/cli/audit.test.ts): what it
 * reads, how partitions pair up, undecodable records, and the time range on closing events.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { auditTopics } from '../../../../services/cli/audit/audit-topics.ts';
import { isTelemetryError } from '../../../../services/shared/core/errors.ts';
import type { TransitionRecord } from '../../../../services/shared/core/transition-record.ts';
import {
  createEventCodec,
  createTransitionCodec,
} from '../../../../services/shared/io/avro-codec.ts';
import type {
  ConsumedRecord,
  Isolation,
  KafkaPort,
  TopicDescription,
} from '../../../../services/shared/kafka/io/port.ts';
import { engineTransitions, transcriptEvents } from '../../../helpers/transcript-events.ts';

const eventCodec = createEventCodec();
const transitionCodec = createTransitionCodec();

/** Topics as arrays of (timestamp, value) per partition. */
type Topics = Map<string, { timestampMs: number; value: Buffer | null }[][]>;

function memoryPort(topics: Topics, isolations: Isolation[] = []) {
  const port: Pick<KafkaPort, 'describeTopics' | 'readToEnd'> = {
    describeTopics: (names) =>
      Promise.resolve(
        new Map(
          names.flatMap((name): [string, TopicDescription][] => {
            const partitions = topics.get(name);
            if (partitions === undefined) return [];
            return [
              [
                name,
                {
                  name,
                  partitions: partitions.length,
                  replicationFactor: 1,
                  configs: {},
                  leaders: partitions.map(() => 1),
                },
              ],
            ];
          }),
        ),
      ),
    readToEnd: (from, onRecord, isolation) => {
      isolations.push(isolation ?? 'read_committed');
      const ends = from.map(({ topic, partition, offset }) => {
        const records = topics.get(topic)?.[partition] ?? [];
        for (let i = Number(offset); i < records.length; i++) {
          const r = records[i] as { timestampMs: number; value: Buffer | null };
          const consumed: ConsumedRecord = {
            topic,
            partition,
            offset: BigInt(i),
            key: null,
            value: r.value,
            headers: [],
            timestampMs: r.timestampMs,
          };
          onRecord(consumed);
        }
        return { topic, partition, offset: BigInt(records.length) };
      });
      return Promise.resolve(ends);
    },
  };
  return port;
}

/** Two VMs on partition 0, one on partition 1; events written at 1000 + offset ms. */
function fleet() {
  const vms: [number, string, string][] = [
    [0, 'vfio/source-p2p-precopy.qmp', 'vm-a'],
    [0, 'vfio/failed-prepare-reset.qmp', 'vm-b'],
    [1, 'vfio/lifecycle.qmp', 'vm-c'],
  ];
  const events: { timestampMs: number; value: Buffer | null }[][] = [[], []];
  const transitions: [number, TransitionRecord][] = [];
  for (const [partition, path, vm] of vms) {
    const records = transcriptEvents(path, 'h1', vm);
    const list = events[partition] as { timestampMs: number; value: Buffer | null }[];
    for (const r of records)
      list.push({ timestampMs: 1000 + list.length, value: eventCodec.encode(r) });
    for (const t of engineTransitions(records)) transitions.push([partition, t]);
  }
  return { events, transitions };
}

function transitionsTopic(records: readonly [number, TransitionRecord][], timestampMs = 5000) {
  const out: { timestampMs: number; value: Buffer | null }[][] = [[], []];
  for (const [p, r] of records) out[p]?.push({ timestampMs, value: transitionCodec.encode(r) });
  return out;
}

test('the exact transitions are clean; both topics read read_committed from offset 0', async () => {
  const { events, transitions } = fleet();
  assert.ok(transitions.length > 5);
  const isolations: Isolation[] = [];
  const port = memoryPort(
    new Map([
      ['ev', events],
      ['tr', transitionsTopic(transitions)],
    ]),
    isolations,
  );
  const report = await auditTopics({
    port,
    eventsTopic: 'ev',
    transitionsTopic: 'tr',
    prepareTimeoutSeconds: 10,
  });
  assert.equal(
    report.clean,
    true,
    JSON.stringify(report.transitions, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)),
  );
  assert.deepEqual(report.partitions, [0, 1]);
  assert.equal(report.transitions.matched, transitions.length);
  assert.deepEqual(isolations, ['read_committed', 'read_committed']);
});

test('a transition on the wrong partition, a poison record: not clean, each reported', async () => {
  const { events, transitions } = fleet();
  const [p, moved] = transitions[0] as [number, TransitionRecord];
  const topic = transitionsTopic([[1 - p, moved], ...transitions.slice(1)]);
  topic[0]?.push({ timestampMs: 5000, value: Buffer.from('not avro') });
  const report = await auditTopics({
    port: memoryPort(
      new Map([
        ['ev', events],
        ['tr', topic],
      ]),
    ),
    eventsTopic: 'ev',
    transitionsTopic: 'tr',
    prepareTimeoutSeconds: 10,
  });
  assert.equal(report.clean, false);
  assert.deepEqual(
    report.transitions.missing.map((m) => m.partition),
    [p],
  );
  assert.deepEqual(
    report.transitions.unexpected.map((u) => u.partition),
    [1 - p],
  );
  assert.deepEqual(
    report.transitions.undecodable.map((u) => [u.partition, u.reason]),
    [[0, 'bad_marker']],
  );
});

test('a range reports by closing event; the recomputation still starts at offset 0', async () => {
  const { events, transitions } = fleet();
  const port = memoryPort(
    new Map([
      ['ev', events],
      ['tr', transitionsTopic([])],
    ]),
  );
  const all = await auditTopics({
    port,
    eventsTopic: 'ev',
    transitionsTopic: 'tr',
    prepareTimeoutSeconds: 10,
  });
  assert.equal(all.transitions.missing.length, transitions.length);
  // Partition 0's events are at 1000 + offset: a range over its second half finds the
  // transitions closed there, and they are the same as in the full recomputation.
  const half = Math.floor((events[0]?.length ?? 0) / 2);
  const ranged = await auditTopics({
    port,
    eventsTopic: 'ev',
    transitionsTopic: 'tr',
    prepareTimeoutSeconds: 10,
    partitions: [0],
    range: { sinceMs: 1000 + half, untilMs: null },
  });
  assert.ok(ranged.transitions.missing.length > 0);
  assert.ok(ranged.transitions.missing.length < transitions.filter(([p]) => p === 0).length);
  const full = new Set(all.transitions.missing.map((m) => JSON.stringify(m.expected)));
  for (const m of ranged.transitions.missing) assert.ok(full.has(JSON.stringify(m.expected)));
  assert.ok(ranged.events.records < all.events.records);
});

test('a topic or partition that does not exist is bad usage', async () => {
  const { events } = fleet();
  const port = memoryPort(
    new Map([
      ['ev', events],
      ['tr', transitionsTopic([])],
    ]),
  );
  await assert.rejects(
    auditTopics({ port, eventsTopic: 'ev', transitionsTopic: 'nope', prepareTimeoutSeconds: 10 }),
    (e: unknown) => isTelemetryError(e, 'USAGE') && /no such topic: nope/.test(e.message),
  );
  await assert.rejects(
    auditTopics({
      port,
      eventsTopic: 'ev',
      transitionsTopic: 'tr',
      prepareTimeoutSeconds: 10,
      partitions: [2],
    }),
    (e: unknown) => isTelemetryError(e, 'USAGE') && /partition 2 does not exist/.test(e.message),
  );
});
