import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PartitionProcessor } from '../../../services/processor/core/partition-processor.ts';
import { processBatch, type BatchOutput } from '../../../services/processor/core/process-batch.ts';
import type { PublishedTransition } from '../../../services/processor/core/published-transition.ts';
import { batchOf, decodeEvent, type EventSpec } from './processor-fixtures.ts';

const brief = (t: PublishedTransition): string =>
  `${t.vm} ${t.type} ${t.type === 'prepare' ? `${t.target} ${t.outcome}` : `${t.state}->${t.next}`} ${t.sessionId}`;

/** One partition run through `processBatch` batch by batch, offsets continuing. */
function run(prepareTimeoutSeconds = 10) {
  const processor = new PartitionProcessor(0, { prepareTimeoutSeconds });
  const partitions = new Map([[0, processor]]);
  let offset = 0;
  return {
    processor,
    batch(specs: EventSpec[]): BatchOutput & { brief: string[] } {
      const out = processBatch(partitions, batchOf(specs, 0, offset), {
        groupId: 'g',
        decodeEvent,
      });
      offset += specs.length;
      return { ...out, brief: out.transitions.map((t) => brief(t.transition)) };
    },
  };
}

describe('partition processor: sessions', () => {
  test('same session and sequence again is a redelivery; a new session aborts open prepares', () => {
    const p = run();
    const a: EventSpec[] = [
      { seq: 1, ms: 0, state: 'pre-copy' },
      { seq: 2, ms: 5, state: 'pre-copy-p2p-prepare' },
    ];
    assert.equal(p.batch(a).counts.applied, 2);
    // The collector re-sent both after a crash (new offsets, same session and sequence).
    const again = p.batch(a);
    assert.equal(again.counts.redeliveries, 2);
    assert.equal(again.counts.applied, 0);
    const next = p.batch([{ session: 's2', seq: 1, ms: 100 }]);
    assert.equal(next.counts.newSessions, 1);
    assert.deepEqual(next.brief, ['vm1 prepare pre-copy-p2p aborted s1']);
    // A late record of the session just left is a re-send, not a third session.
    const stale = p.batch([{ seq: 3, ms: 6, state: 'pre-copy-p2p' }]);
    assert.equal(stale.counts.redeliveries, 1);
    assert.equal(stale.counts.newSessions, 0);
  });

  test('a sequence gap in a session is counted and ends open prepares like a new session', () => {
    const p = run();
    p.batch([
      { seq: 1, ms: 0, state: 'pre-copy' },
      { seq: 2, ms: 5, state: 'pre-copy-p2p-prepare' },
    ]);
    // Sequences 3 and 4 never reached Kafka: no transition may span them.
    const gap = p.batch([
      { seq: 5, ms: 50, state: 'stop' },
      { seq: 6, ms: 60, state: 'running' },
    ]);
    assert.equal(gap.counts.sequenceGaps, 1);
    assert.deepEqual(gap.gaps, [
      { partition: 0, host: 'h1', vm: 'vm1', sessionId: 's1', expected: 3, got: 5 },
    ]);
    assert.deepEqual(gap.brief, [
      'vm1 prepare pre-copy-p2p aborted s1',
      'vm1 dwell stop->running s1',
    ]);
  });

  test('an identical event still moves the sequence, and the moved sequence is saved', () => {
    const p = run();
    p.batch([{ seq: 1, ms: 0, state: 'running' }]);
    const dup = p.batch([{ seq: 2, ms: 0, state: 'running' }]);
    assert.equal(dup.counts.identical, 1);
    const saved = dup.changelog.find((e) => e.key === 'g\u0000vm\u0000h1\u0000vm1');
    assert.equal((JSON.parse(saved?.value ?? '{}') as { lastSequence: number }).lastSequence, 2);
    assert.equal(p.batch([{ seq: 3, ms: 10, state: 'stop' }]).counts.sequenceGaps, 0);
  });
});

describe('partition processor: time is data (the partition clock)', () => {
  test('a VM silent on the partition clock for longer than the timeout times out its prepares', () => {
    const p = run(2);
    p.batch([{ vm: 'a', seq: 1, ms: 0, state: 'pre-copy-p2p-prepare' }]);
    // Another VM on the partition moves the clock; 2 s after a's last receive is not yet "more than".
    assert.deepEqual(p.batch([{ vm: 'b', seq: 1, ms: 2000 }]).brief, []);
    const later = p.batch([{ vm: 'b', seq: 2, ms: 2000, receivedMs: 2000.001, state: 'stop' }]);
    assert.deepEqual(later.brief, [
      'a prepare pre-copy-p2p timed_out s1',
      'b dwell running->stop s1',
    ]);
    assert.equal(later.counts.silentTimeouts, 1);
    assert.equal(p.processor.stats().openPrepares, 0);
  });

  test('nothing times out while nothing arrives: QEMU time alone closes the prepare later', () => {
    const p = run(2);
    p.batch([{ vm: 'a', seq: 1, ms: 0, state: 'pre-copy-p2p-prepare' }]);
    const late = p.batch([{ vm: 'a', seq: 2, ms: 1500, receivedMs: 9000, state: 'pre-copy-p2p' }]);
    // The record that comes 9 s later on the clock finds a silent: its prepare timed out first.
    assert.deepEqual(late.brief, ['a prepare pre-copy-p2p timed_out s1']);
  });

  test('a shut-down VM is forgotten once silent: its state record becomes a tombstone', () => {
    const p = run(1);
    p.batch([
      { vm: 'a', seq: 1, ms: 0, state: 'running' },
      { vm: 'a', seq: 2, ms: 10, event: 'SHUTDOWN' },
    ]);
    const out = p.batch([{ vm: 'b', seq: 1, ms: 5000 }]);
    assert.equal(out.counts.forgottenVms, 1);
    assert.deepEqual(
      out.changelog.map((e) => [e.key.replaceAll('\u0000', '/'), e.value === null]),
      [
        ['g/vm/h1/a', true],
        ['g/vm/h1/b', false],
        ['g/meta', false],
      ],
    );
    assert.equal(p.processor.stats().vms, 1);
  });
});

describe('processBatch', () => {
  test('meta and offset for every partition, dead letters, and the skip below nextOffset', () => {
    const partitions = new Map([
      [0, new PartitionProcessor(0, { prepareTimeoutSeconds: 10 })],
      [1, new PartitionProcessor(1, { prepareTimeoutSeconds: 10 })],
    ]);
    const records = [
      ...batchOf([{ seq: 1, ms: 0 }], 0, 7),
      { partition: 1, offset: 3n, key: Buffer.from('k'), value: null },
      { partition: 1, offset: 4n, key: null, value: Buffer.from('not json') },
    ];
    const out = processBatch(partitions, records, { groupId: 'g', decodeEvent });
    assert.deepEqual(out.offsets, [
      { partition: 0, nextOffset: 8 },
      { partition: 1, nextOffset: 5 },
    ]);
    assert.deepEqual(
      out.deadLetters.map((d) => [d.partition, d.offset, d.reason]),
      [
        [1, 3, 'empty'],
        [1, 4, 'bad_body'],
      ],
    );
    assert.deepEqual(
      out.changelog.filter((e) => e.key === 'g\u0000meta').map((e) => [e.partition, e.value]),
      [
        [0, JSON.stringify({ nextOffset: 8, clockMicros: 1_795_798_176_001_000 })],
        [1, JSON.stringify({ nextOffset: 5, clockMicros: 0 })],
      ],
    );
    // The same records again (a consumer that started from an older committed offset).
    const again = processBatch(partitions, records, { groupId: 'g', decodeEvent });
    assert.equal(again.counts.alreadyApplied, 3);
    assert.deepEqual(again.deadLetters, []);
    assert.deepEqual(again.offsets, out.offsets);
  });

  test('a VFIO record without qom-path is a dead letter; the others still apply', () => {
    const bad = batchOf([{ seq: 1, ms: 0 }])[0];
    const record = JSON.parse(bad?.value?.toString() ?? '') as Record<string, unknown>;
    record['qomPath'] = null;
    const out = processBatch(
      new Map([[0, new PartitionProcessor(0, { prepareTimeoutSeconds: 10 })]]),
      [
        { partition: 0, offset: 0, key: null, value: Buffer.from(JSON.stringify(record)) },
        ...batchOf([{ seq: 2, ms: 1 }], 0, 1),
      ],
      { groupId: 'g', decodeEvent },
    );
    assert.deepEqual(
      out.deadLetters.map((d) => [d.offset, d.reason]),
      [[0, 'bad_vfio_data']],
    );
    assert.equal(out.counts.applied, 1);
  });
});
