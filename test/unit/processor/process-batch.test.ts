/**
 * The processor's pure batch step against hostile input, decoded by the real Avro event codec:
 * arbitrary bytes, damaged frames (right header, garbage body; bit flips, truncation, trailing
 * bytes), and well-formed records with hostile values (huge strings, unknown states and events,
 * timestamps at the ends of the long range, receive times years away). `processBatch` never
 * throws; every record is accounted for (applied, identical, a redelivery, below `nextOffset`,
 * or a dead letter with a known reason); what it writes can be encoded (transitions) and read
 * back (the state changelog); and the number of VMs it holds is bounded by the VM retention
 * under a flood of distinct VMs.
 *
 * fast-check runs with a fixed seed, so CI sees the same cases every time. A longer run with
 * new cases, for developers: `FUZZ_RUNS=20000 FUZZ_SEED=$RANDOM node --import tsx --test
 * test/unit/processor/process-batch.test.ts` (a failure prints the seed and path to replay).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  DEFAULT_VM_RETENTION_MS,
  MAX_DEVICES_PER_VM,
  MAX_IDENTIFIER_LENGTH,
  PartitionProcessor,
} from '../../../services/processor/core/partition-processor.ts';
import { processBatch, type BatchRecord } from '../../../services/processor/core/process-batch.ts';
import type { PublishedTransition } from '../../../services/processor/core/published-transition.ts';
import {
  ChangelogFold,
  metaKey,
  parseVmState,
} from '../../../services/processor/core/state-changelog.ts';
import { SESSION_REJECT_REASONS } from '../../../services/processor/core/vm-sessions.ts';
import { AVRO_DECODE_INVALID_REASONS } from '../../../services/shared/core/avro/decode-reasons.ts';
import { SINGLE_OBJECT_HEADER_LENGTH } from '../../../services/shared/core/avro/single-object.ts';
import type { EventRecord } from '../../../services/shared/core/event-record.ts';
import {
  createEventCodec,
  createTransitionCodec,
  type AvroCodec,
} from '../../../services/shared/io/avro-codec.ts';
import { brokerTimeMs, eventRecord, T0 } from './processor-fixtures.ts';

const SEED = Number(process.env['FUZZ_SEED'] ?? 20261202);
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 300);

const eventCodec = createEventCodec();
const transitionCodec = createTransitionCodec() as unknown as AvroCodec<PublishedTransition>;
const decodeEvent = (value: Uint8Array) => eventCodec.decode(value);

/** Every reason a record may be dead-lettered for (the processor's telemetry labels). */
const DEAD_LETTER_REASONS = new Set<string>([
  'empty',
  ...AVRO_DECODE_INVALID_REASONS,
  'bad_timestamp',
  'bad_vfio_data',
  'too_large',
  ...SESSION_REJECT_REASONS,
]);

/** avsc's largest long (2^53 − 2); a damaged body reaches beyond it. */
const MAX_LONG = 9_007_199_254_740_990;
const header = eventCodec
  .encode(eventRecord({ seq: 1, ms: 0 }))
  .subarray(0, SINGLE_OBJECT_HEADER_LENGTH);

/** Strings from tame to hostile: QEMU's states, unknown ones, empty, control characters, huge. */
const hostileString = fc.oneof(
  fc.constantFrom('running', 'stop', 'pre-copy-p2p-prepare', 'stop-copy-prepare', '-prepare'),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('', '\u0000', '\u0000vm\u0000', '../../etc', '\ud800'),
  fc
    .integer({ min: MAX_IDENTIFIER_LENGTH - 2, max: MAX_IDENTIFIER_LENGTH + 2 })
    .map((n) => 'x'.repeat(n)),
  fc.constant('y'.repeat(300_000)),
);

/** Longs from plausible to the ends of what Avro and JavaScript can carry. */
const hostileLong = fc.oneof(
  fc.integer({ min: 0, max: 60_000_000 }).map((d) => T0 + d),
  fc.constantFrom(0, -1, 1, MAX_LONG, -MAX_LONG, 5_000_000_000_000_000, T0 - 3_600_000_000),
  fc.maxSafeInteger().map((n) => Math.max(-MAX_LONG, Math.min(MAX_LONG, n))),
);

/** Mostly the tame value, sometimes a hostile one. */
const mostly = <T>(tame: fc.Arbitrary<T>, hostile: fc.Arbitrary<T>): fc.Arbitrary<T> =>
  fc.oneof({ weight: 12, arbitrary: tame }, { weight: 1, arbitrary: hostile });

/**
 * Well-formed records of a few VMs whose devices walk through QEMU's states (so prepares open,
 * complete and time out), each field now and then replaced by a hostile value. Sequence and
 * times are left null when tame: `inOrder` fills them in as a collector would.
 */
type HostileRecord = Omit<EventRecord, 'sequence' | 'qemuTimestampMicros' | 'receivedMicros'> & {
  sequence: number | null;
  qemuTimestampMicros: number | null;
  receivedMicros: number | null;
  /** Time since the previous record, when the times are tame. */
  stepMs: number;
  receivedLagMs: number;
};

const hostileRecord: fc.Arbitrary<HostileRecord> = fc
  .record({
    vm: mostly(fc.constantFrom('vm1', 'vm2', 'vm3'), hostileString),
    host: mostly(fc.constant('h1'), hostileString),
    sessionId: mostly(fc.constant('s1'), fc.oneof(fc.constant('s2'), hostileString)),
    sequence: mostly(fc.constant(null), fc.oneof(fc.integer({ min: 1, max: 8 }), hostileLong)),
    stepMs: fc.integer({ min: 0, max: 1500 }),
    qemuTimestampMicros: mostly(fc.constant(null), hostileLong),
    receivedLagMs: fc.integer({ min: 0, max: 50 }),
    receivedMicros: mostly(fc.constant(null), hostileLong),
    event: mostly(
      fc.constantFrom(
        'VFIO_MIGRATION',
        'VFIO_MIGRATION',
        'VFIO_MIGRATION',
        'VFIO_MIGRATION',
        'STOP',
      ),
      fc.oneof(fc.constant('SHUTDOWN'), hostileString),
    ),
    qomPath: mostly(
      fc.constantFrom('/machine/peripheral/vf0', '/machine/peripheral/vf1'),
      fc.option(hostileString),
    ),
    deviceId: mostly(fc.constantFrom('vf0', ''), fc.option(hostileString)),
    deviceState: mostly(
      fc.constantFrom(
        'running',
        'pre-copy',
        'pre-copy-p2p-prepare',
        'pre-copy-p2p',
        'stop-copy-prepare',
        'stop-copy',
        'stop',
      ),
      fc.option(hostileString),
    ),
    migrationStatus: fc.option(hostileString),
    data: fc.option(hostileString),
  })
  .map((r): HostileRecord => {
    const vfio = r.event === 'VFIO_MIGRATION';
    return {
      ...r,
      qomPath: vfio ? r.qomPath : null,
      deviceId: vfio ? r.deviceId : null,
      deviceState: vfio ? r.deviceState : null,
    };
  });

/**
 * Fills in what is tame as a collector would: the next sequence number of the record's (host,
 * VM, session), QEMU time moving on by `stepMs`, received `receivedLagMs` later.
 */
function inOrder(): (r: HostileRecord) => EventRecord {
  const last = new Map<string, number>();
  let ms = 0;
  return ({ stepMs, receivedLagMs, ...r }) => {
    ms += stepMs;
    const key = JSON.stringify([r.host, r.vm, r.sessionId]);
    const sequence = r.sequence ?? (last.get(key) ?? 0) + 1;
    last.set(key, Math.min(sequence, MAX_LONG - 1));
    const qemuTimestampMicros = r.qemuTimestampMicros ?? T0 + ms * 1000;
    return {
      ...r,
      sequence,
      qemuTimestampMicros,
      receivedMicros: r.receivedMicros ?? T0 + (ms + receivedLagMs) * 1000,
    };
  };
}

type TopicValue = { record: HostileRecord } | { bytes: Buffer | null };

/** One value of the events topic: a hostile record, damaged frames, garbage or nothing. */
const topicValue: fc.Arbitrary<TopicValue> = fc.oneof(
  { weight: 10, arbitrary: hostileRecord.map((record) => ({ record })) },
  {
    weight: 1,
    arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => ({ bytes: Buffer.from(b) })),
  },
  {
    weight: 2,
    arbitrary: fc.uint8Array({ maxLength: 80 }).map((b) => ({ bytes: Buffer.concat([header, b]) })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        hostileRecord,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 4 }),
        fc.integer({ min: -8, max: 8 }),
      )
      .map(([r, flips, cut]) => {
        const frame = Buffer.from(eventCodec.encode(inOrder()(r)));
        for (const [at, mask] of flips) {
          const i = at % frame.length;
          frame[i] = (frame[i] ?? 0) ^ mask;
        }
        return {
          bytes:
            cut < 0
              ? frame.subarray(0, Math.max(0, frame.length + cut))
              : Buffer.concat([frame, Buffer.alloc(cut, 7)]),
        };
      }),
  },
  { weight: 1, arbitrary: fc.constant({ bytes: null }) },
);

describe('processBatch under hostile input (fast-check, fixed seed)', () => {
  test('never throws; every record is accounted for; bad records are dead letters with a known reason', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 1 }), topicValue), {
          minLength: 10,
          maxLength: 80,
        }),
        fc.integer({ min: 1, max: 7 }),
        (values, batchSize) => {
          const partitions = new Map(
            [0, 1].map((p) => [p, new PartitionProcessor(p, { prepareTimeoutSeconds: 2 })]),
          );
          const next = [0, 0];
          const fill = inOrder();
          const records: BatchRecord[] = values.map(([partition, value]) => {
            const offset = next[partition] ?? 0;
            next[partition] = offset + 1;
            const bytes = 'record' in value ? eventCodec.encode(fill(value.record)) : value.bytes;
            return {
              partition,
              offset,
              key: null,
              value: bytes,
              timestampMs: brokerTimeMs(offset),
            };
          });
          const changelog = new Map([0, 1].map((p) => [p, new ChangelogFold('g')]));
          for (let i = 0; i < records.length; i += batchSize) {
            const batch = records.slice(i, i + batchSize);
            const out = processBatch(partitions, batch, { groupId: 'g', decodeEvent });
            const { counts } = out;
            assert.equal(counts.consumed, batch.length);
            assert.equal(
              counts.alreadyApplied +
                out.deadLetters.length +
                counts.redeliveries +
                counts.staleSessions +
                counts.duplicateWriterEvents +
                counts.applied +
                counts.identical,
              batch.length,
              'a record neither applied, ignored as seen, nor dead-lettered',
            );
            for (const d of out.deadLetters) {
              assert.ok(DEAD_LETTER_REASONS.has(d.reason), `unknown reason ${d.reason}`);
              assert.equal(
                d.value,
                batch.find((r) => Number(r.offset) === d.offset && r.partition === d.partition)
                  ?.value,
              );
            }
            for (const { transition } of out.transitions) {
              // The transaction encodes every transition: one it cannot encode would fail the
              // transaction again and again.
              transitionCodec.encode(transition);
              for (const s of [transition.host, transition.vm, transition.qomPath]) {
                assert.ok(s.length <= MAX_IDENTIFIER_LENGTH);
              }
            }
            for (const { partition, key, value } of out.changelog) {
              if (value !== null && key !== metaKey('g')) {
                assert.notEqual(parseVmState(value), null, 'a state value restore cannot read');
              }
              changelog.get(partition)?.add(key, value);
            }
            for (const { partition, nextOffset } of out.offsets) {
              const last = Math.max(
                ...batch.filter((r) => r.partition === partition).map((r) => Number(r.offset)),
              );
              assert.equal(nextOffset, last + 1);
            }
          }
          // What the changelog holds restores to what the processor holds.
          for (const [p, fold] of changelog) {
            const { vms, invalid } = fold.result();
            assert.equal(invalid, 0);
            assert.equal(vms.length, partitions.get(p)?.stats().vms);
          }
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
  });
});

describe('bounded memory under a flood of distinct VMs', () => {
  /** `count` VMs, one event each, 10 ms of receive time apart, through processBatch. */
  function flood(count: number, vmRetentionMs?: number) {
    const processor = new PartitionProcessor(0, {
      prepareTimeoutSeconds: 2,
      ...(vmRetentionMs === undefined ? {} : { vmRetentionMs }),
    });
    const partitions = new Map([[0, processor]]);
    const fold = new ChangelogFold('g');
    let maxTracked = 0;
    let expired = 0;
    const BATCH = 500;
    for (let start = 0; start < count; start += BATCH) {
      const batch: BatchRecord[] = [];
      for (let i = start; i < Math.min(count, start + BATCH); i++) {
        batch.push({
          partition: 0,
          offset: i,
          key: null,
          value: eventCodec.encode(
            eventRecord({ vm: `flood-${i}`, seq: 1, ms: i * 10, state: 'running' }),
          ),
          timestampMs: brokerTimeMs(i * 10),
        });
      }
      const out = processBatch(partitions, batch, { groupId: 'g', decodeEvent });
      expired += out.counts.expiredVms;
      for (const e of out.changelog) fold.add(e.key, e.value);
      maxTracked = Math.max(maxTracked, processor.stats().vms);
    }
    return { maxTracked, expired, compacted: fold.result().vms.length, now: processor.stats().vms };
  }

  test('the VMs held, in memory and in the compacted state topic, are bounded by the retention', () => {
    const COUNT = 30_000;
    // 60 s of retention at one new VM per 10 ms: at most 6,000 VMs (plus one batch in flight).
    const bounded = flood(COUNT, 60_000);
    const bound = 60_000 / 10 + 500;
    assert.ok(bounded.maxTracked <= bound, `${bounded.maxTracked} VMs held`);
    assert.ok(bounded.compacted <= bound, `${bounded.compacted} VMs in the state topic`);
    assert.equal(bounded.expired + bounded.now, COUNT, 'every VM is either held or expired');
    // The default (7 days) holds them all: the bound above is the retention's doing.
    const unbounded = flood(COUNT);
    assert.equal(unbounded.maxTracked, COUNT);
    assert.ok(DEFAULT_VM_RETENTION_MS > COUNT * 10);
  });

  test('a flood of distinct devices in one VM holds at most MAX_DEVICES_PER_VM, and its state record stays small', () => {
    const processor = new PartitionProcessor(0, { prepareTimeoutSeconds: 2 });
    const records: BatchRecord[] = Array.from({ length: 5000 }, (_, i) => ({
      partition: 0,
      offset: i,
      key: null,
      value: eventCodec.encode(
        eventRecord({ seq: i + 1, ms: i, device: `${'d'.repeat(200)}-${i}`, state: 'running' }),
      ),
      timestampMs: brokerTimeMs(i),
    }));
    const out = processBatch(new Map([[0, processor]]), records, { groupId: 'g', decodeEvent });
    assert.equal(processor.stats().devices, MAX_DEVICES_PER_VM);
    assert.equal(out.deadLetters.length, 5000 - MAX_DEVICES_PER_VM);
    // Well under Kafka's default 1 MiB record limit, so a restore gets the VM back.
    const state = out.changelog.find((e) => e.value !== null && e.key !== metaKey('g'));
    assert.ok((state?.value?.length ?? 0) < 256 * 1024, `${state?.value?.length} bytes`);
  });
});
