import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PartitionProcessor } from '../../../services/processor/core/partition-processor.ts';
import { processBatch, type BatchRecord } from '../../../services/processor/core/process-batch.ts';
import type { PublishedTransition } from '../../../services/processor/core/published-transition.ts';
import { recomputePartition } from '../../../services/processor/core/recompute-partition.ts';
import {
  ChangelogFold,
  type ChangelogEntry,
} from '../../../services/processor/core/state-changelog.ts';
import { brokerTimeMs, decodeEvent, encodeEvent, eventRecord } from './processor-fixtures.ts';

const TIMEOUT_SECONDS = 2;
/** Short enough that VMs expire within a run (steps are up to 2.5 s apart). */
const VM_RETENTION_MS = 8000;
const OPTIONS = { prepareTimeoutSeconds: TIMEOUT_SECONDS, vmRetentionMs: VM_RETENTION_MS };
const WALK = [
  'running',
  'pre-copy',
  'pre-copy-p2p-prepare',
  'pre-copy-p2p',
  'stop-copy-prepare',
  'stop-copy',
  'stop',
];

type Step = [vm: number, device: number, state: number, gapMs: number, kind: number];

/**
 * Events topic partitions from generated steps: VMs 0..5 on partition vm % partitions, with
 * collector re-sends, sequence gaps, new sessions, SHUTDOWNs, poison records, receive-time
 * jumps (so VMs fall silent on the partition clock, and expire), a lagging collector clock and
 * receive times too far ahead to trust.
 */
function partitionsFrom(steps: readonly Step[], count: number): BatchRecord[][] {
  const partitions: BatchRecord[][] = Array.from({ length: count }, () => []);
  const vms = new Map<number, { session: number; seq: number; sent: Buffer[] }>();
  let ms = 0;
  for (const [vm, device, state, gapMs, kind] of steps) {
    ms += gapMs;
    const log = partitions[vm % count] as BatchRecord[];
    const push = (value: Buffer | null, atMs = ms): void => {
      log.push({
        partition: vm % count,
        offset: log.length,
        key: null,
        value,
        timestampMs: brokerTimeMs(atMs),
      });
    };
    const v = vms.get(vm) ?? { session: 1, seq: 0, sent: [] };
    vms.set(vm, v);
    if (kind === 0 && v.sent.length > 0) {
      for (const value of v.sent.slice(-2)) push(value); // collector re-send
      continue;
    }
    if (kind === 1) push(Buffer.from('poison'));
    if (kind === 7) {
      // A dead letter that still moves the partition clock (a VFIO event without qom-path, of
      // another host): time passes with nothing applied.
      const record = eventRecord({ vm: 'broken', seq: 1, ms: ms + 4000 });
      push(encodeEvent({ ...record, host: 'h2', qomPath: null }), ms + 4000);
      continue;
    }
    if (kind === 2) v.seq += 2; // the spool dropped two events
    if (kind === 3) {
      v.session++;
      v.seq = 0;
      v.sent = [];
    }
    v.seq++;
    const value = encodeEvent(
      eventRecord({
        vm: `vm${vm}`,
        session: `s${v.session}`,
        seq: v.seq,
        ms,
        // kind 5: a collector clock that lags; kind 6: a receive time an hour ahead of QEMU's.
        // Neither moves the partition clock, which is broker time.
        receivedMs: kind === 5 ? ms - 3000 : kind === 6 ? ms + 3_600_000 : ms,
        device: `vf${device}`,
        state: WALK[state % WALK.length] as string,
        ...(kind === 4 ? { event: 'SHUTDOWN' } : {}),
      }),
    );
    v.sent.push(value);
    push(value);
  }
  return partitions;
}

/** Committed Kafka: what read_committed readers see after every committed transaction. */
interface Durable {
  changelog: ChangelogEntry[][];
  transitions: PublishedTransition[][];
  committed: number[];
  /** Every offset ever committed per partition: a new owner may start from a stale one. */
  history: number[][];
}

function restore(durable: Durable, partition: number): PartitionProcessor {
  const fold = new ChangelogFold('g');
  for (const e of durable.changelog[partition] ?? []) fold.add(e.key, e.value);
  const { vms, meta, invalid } = fold.result();
  assert.equal(invalid, 0);
  const processor = new PartitionProcessor(partition, OPTIONS);
  processor.restore(vms, meta);
  return processor;
}

test('crash anywhere, restore from what committed transactions wrote, go on: output equals a run without crashes', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(
          fc.integer({ min: 0, max: 5 }),
          fc.integer({ min: 0, max: 1 }),
          fc.nat(),
          fc.integer({ min: 0, max: 2500 }),
          fc.integer({ min: 0, max: 12 }),
        ),
        { minLength: 5, maxLength: 120 },
      ),
      fc.integer({ min: 1, max: 3 }),
      fc.array(
        fc.record({
          take: fc.integer({ min: 1, max: 9 }),
          fate: fc.constantFrom('commit', 'commit', 'commit', 'crash-before', 'crash-after'),
          stale: fc.boolean(),
        }),
        { minLength: 1, maxLength: 40 },
      ),
      (steps, partitionCount, plan) => {
        const logs = partitionsFrom(steps, partitionCount);
        const expected = logs.map((log) => recomputePartition(log, { decodeEvent, ...OPTIONS }));

        const durable: Durable = {
          changelog: logs.map(() => []),
          transitions: logs.map(() => []),
          committed: logs.map(() => 0),
          history: logs.map(() => [0]),
        };
        let memory = new Map<number, PartitionProcessor>();
        let position = [...durable.committed];
        const done = (): boolean => position.every((p, i) => p >= (logs[i]?.length ?? 0));
        for (let turn = 0; !done() || memory.size > 0; turn++) {
          // The plan's faults once, then a fault-free run to the end.
          const { take, fate, stale } = plan[turn] ?? { take: 5, fate: 'commit', stale: false };
          // Fetch: up to `take` records per partition from the consumer position.
          const records: BatchRecord[] = [];
          for (const [p, log] of logs.entries()) {
            records.push(...log.slice(position[p], (position[p] as number) + take));
          }
          if (records.length === 0) break;
          for (const r of records) {
            if (!memory.has(r.partition)) memory.set(r.partition, restore(durable, r.partition));
          }
          const out = processBatch(memory, records, { groupId: 'g', decodeEvent });
          for (const r of records) position[r.partition] = Number(r.offset) + 1;
          if (fate !== 'crash-before') {
            for (const { partition, transition } of out.transitions) {
              durable.transitions[partition]?.push(transition);
            }
            for (const { partition, ...entry } of out.changelog)
              durable.changelog[partition]?.push(entry);
            for (const { partition, nextOffset } of out.offsets) {
              durable.committed[partition] = nextOffset;
              durable.history[partition]?.push(nextOffset);
            }
          }
          if (fate !== 'commit') {
            // The process dies: memory is gone; the next owner starts from the committed
            // offsets, or (a pending transaction it could not see) from an older one.
            memory = new Map();
            position = durable.committed.map((c, p) => {
              const history = durable.history[p] as number[];
              return stale ? (history[Math.max(0, history.length - 3)] as number) : c;
            });
          } else if (done()) {
            memory = new Map();
          }
        }
        assert.deepEqual(durable.transitions, expected);
      },
    ),
    { numRuns: 1000 },
  );
});

test('recomputation does not depend on batch boundaries', () => {
  let expired = 0;
  let untrusted = 0;
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(
          fc.integer({ min: 0, max: 3 }),
          fc.integer({ min: 0, max: 1 }),
          fc.nat(),
          fc.integer({ min: 0, max: 2500 }),
          fc.integer({ min: 0, max: 12 }),
        ),
        { minLength: 1, maxLength: 80 },
      ),
      fc.integer({ min: 1, max: 10 }),
      (steps, size) => {
        const [log] = partitionsFrom(steps, 1) as [BatchRecord[]];
        const whole = recomputePartition(log, { decodeEvent, ...OPTIONS });
        const processor = new PartitionProcessor(0, OPTIONS);
        const partitions = new Map([[0, processor]]);
        const batched: PublishedTransition[] = [];
        for (let i = 0; i < log.length; i += size) {
          const out = processBatch(partitions, log.slice(i, i + size), {
            groupId: 'g',
            decodeEvent,
          });
          batched.push(...out.transitions.map((t) => t.transition));
          expired += out.counts.expiredVms;
          untrusted += out.counts.untrustedReceiveTimes;
        }
        assert.deepEqual(batched, whole);
      },
    ),
    { numRuns: 300 },
  );
  // The runs exercised the retention and the trust rule, not only the rest.
  assert.ok(expired > 0, 'no VM expired in any run');
  assert.ok(untrusted > 0, 'no untrusted receive time in any run');
});
