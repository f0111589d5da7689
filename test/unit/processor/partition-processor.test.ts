import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  MAX_DEVICES_PER_VM,
  MAX_IDENTIFIER_LENGTH,
  PartitionProcessor,
} from '../../../services/processor/core/partition-processor.ts';
import { processBatch, type BatchOutput } from '../../../services/processor/core/process-batch.ts';
import type { PublishedTransition } from '../../../services/processor/core/published-transition.ts';
import {
  ChangelogFold,
  type ChangelogEntry,
} from '../../../services/processor/core/state-changelog.ts';
import {
  appendedAfterReceipt,
  batchOf,
  brokerTimeMs,
  decodeEvent,
  encodeEvent,
  eventRecord,
  T0,
  type EventSpec,
} from './processor-fixtures.ts';
import { formatSessionId } from '../../../services/shared/core/session-id.ts';

const brief = (t: PublishedTransition): string =>
  `${t.vm} ${t.type} ${t.type === 'prepare' ? `${t.target} ${t.outcome}` : `${t.state}->${t.next}`} ${t.sessionId}`;

/** One partition run through `processBatch` batch by batch, offsets continuing. */
function run(prepareTimeoutSeconds = 10, vmRetentionMs?: number) {
  const options = {
    prepareTimeoutSeconds,
    ...(vmRetentionMs === undefined ? {} : { vmRetentionMs }),
  };
  let processor = new PartitionProcessor(0, options);
  let offset = 0;
  /** Everything written to the state topic so far, in order. */
  const changelog: ChangelogEntry[] = [];
  return {
    get processor() {
      return processor;
    },
    changelog,
    batch(specs: EventSpec[]): BatchOutput & { brief: string[] } {
      const out = processBatch(new Map([[0, processor]]), batchOf(specs, 0, offset), {
        groupId: 'g',
        decodeEvent,
      });
      offset += specs.length;
      for (const { key, value } of out.changelog) changelog.push({ key, value });
      return { ...out, brief: out.transitions.map((t) => brief(t.transition)) };
    },
    /** A new processor restored from the state topic (as after a crash or a rebalance). */
    restore(): string[] {
      const fold = new ChangelogFold('g');
      for (const e of changelog) fold.add(e.key, e.value);
      const { vms, meta } = fold.result();
      processor = new PartitionProcessor(0, options);
      processor.restore(vms, meta);
      return vms.map((v) => v.vm).sort();
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
    // A late record of the session just left, up to where it was, is a re-send, not a third
    // session.
    const stale = p.batch([{ seq: 2, ms: 5, state: 'pre-copy-p2p-prepare' }]);
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
      { partition: 1, offset: 3n, key: Buffer.from('k'), value: null, timestampMs: 0 },
      { partition: 1, offset: 4n, key: null, value: Buffer.from('not json'), timestampMs: 0 },
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
        [0, JSON.stringify({ nextOffset: 8, clockMicros: brokerTimeMs(0) * 1000 })],
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
        {
          partition: 0,
          offset: 0,
          key: null,
          value: Buffer.from(JSON.stringify(record)),
          timestampMs: brokerTimeMs(0),
        },
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

describe('partition processor: VM retention (the partition clock, never wall time)', () => {
  const MINUTE = 60_000;
  const tombstoned = (out: BatchOutput): string[] =>
    out.changelog.filter((e) => e.value === null).map((e) => e.key.split('\u0000').at(-1) ?? '');

  test('a VM with devices silent for longer than the retention is freed and tombstoned in the same output', () => {
    const p = run(2, 10 * MINUTE);
    p.batch([
      { vm: 'a', seq: 1, ms: 0, state: 'running' },
      { vm: 'b', seq: 1, ms: 0, state: 'running' },
    ]);
    // b keeps talking; a says nothing. Exactly the retention later is not yet "longer than".
    const atRetention = p.batch([{ vm: 'b', seq: 2, ms: 10 * MINUTE, state: 'stop' }]);
    assert.equal(atRetention.counts.expiredVms, 0);
    assert.equal(p.processor.stats().vms, 2);
    const past = p.batch([{ vm: 'b', seq: 3, ms: 10 * MINUTE + 1, state: 'running' }]);
    assert.equal(past.counts.expiredVms, 1);
    assert.equal(past.counts.forgottenVms, 0);
    assert.deepEqual(tombstoned(past), ['a']);
    assert.deepEqual(p.processor.stats(), { vms: 1, devices: 1, openPrepares: 0 });
    // The compacted state topic forgets it too: a restore does not bring it back.
    assert.deepEqual(p.restore(), ['b']);
  });

  test('a VM with an open prepare times out first, then expires at the retention (and only then)', () => {
    const p = run(2, 10 * MINUTE);
    p.batch([{ vm: 'a', seq: 1, ms: 0, state: 'pre-copy-p2p-prepare' }]);
    const timedOut = p.batch([{ vm: 'b', seq: 1, ms: 3000 }]);
    assert.deepEqual(timedOut.brief, ['a prepare pre-copy-p2p timed_out s1']);
    assert.equal(timedOut.counts.expiredVms, 0);
    // Nothing but the clock moves a towards its retention; the sweep must still come.
    const b = [4, 5, 6, 7, 8, 9].map((m, i) => ({ vm: 'b', seq: i + 2, ms: m * MINUTE }));
    assert.equal(p.batch(b).counts.expiredVms, 0);
    const expired = p.batch([{ vm: 'b', seq: 8, ms: 10 * MINUTE + 1 }]);
    assert.equal(expired.counts.expiredVms, 1);
    assert.deepEqual(tombstoned(expired), ['a']);
  });

  test('restored or not, a VM expires on the same record, even when only the clock moves', () => {
    // a times out and later expires while only records that apply nothing move the clock
    // (dead letters: a VFIO event without qom-path); then a speaks again. Whether the processor
    // was restored in between (a restore looks at every VM) or not, a has expired by then.
    const invalid = (seq: number, ms: number): Buffer =>
      encodeEvent({ ...eventRecord({ vm: 'z', seq, ms }), qomPath: null });
    const values = [
      encodeEvent(eventRecord({ vm: 'a', seq: 1, ms: 0, state: 'running' })),
      encodeEvent(eventRecord({ vm: 'a', seq: 2, ms: 1, state: 'pre-copy-p2p-prepare' })),
      invalid(1, 3000),
      invalid(2, 10 * MINUTE + 2),
      invalid(3, 10 * MINUTE + 3),
      encodeEvent(eventRecord({ vm: 'a', seq: 3, ms: 10 * MINUTE + 4, state: 'stop' })),
    ];
    const runFrom = (cut: number): string[] => {
      const processor = () =>
        new PartitionProcessor(0, { prepareTimeoutSeconds: 2, vmRetentionMs: 10 * MINUTE });
      let partitions = new Map([[0, processor()]]);
      const changelog: ChangelogEntry[] = [];
      const seen: string[] = [];
      values.forEach((value, offset) => {
        if (offset === cut) {
          const fold = new ChangelogFold('g');
          for (const e of changelog) fold.add(e.key, e.value);
          const { vms, meta } = fold.result();
          partitions = new Map([[0, processor()]]);
          partitions.get(0)?.restore(vms, meta);
        }
        const timestampMs = appendedAfterReceipt(value);
        const out = processBatch(
          partitions,
          [{ partition: 0, offset, key: null, value, timestampMs }],
          {
            groupId: 'g',
            decodeEvent,
          },
        );
        for (const { key, value } of out.changelog) changelog.push({ key, value });
        seen.push(
          [
            ...out.transitions.map((t) => brief(t.transition)),
            ...(out.counts.expiredVms > 0 ? [`expired ${out.counts.expiredVms}`] : []),
          ].join(', '),
        );
      });
      return seen;
    };
    const expected = runFrom(-1);
    assert.deepEqual(expected, [
      '',
      '',
      'a prepare pre-copy-p2p timed_out s1',
      'expired 1',
      '',
      '',
    ]);
    for (let cut = 1; cut < values.length; cut++) {
      assert.deepEqual(runFrom(cut), expected, `restored before record ${cut}`);
    }
  });

  test('a VM that speaks again after it expired starts over as a new VM', () => {
    const p = run(2, MINUTE);
    p.batch([{ vm: 'a', seq: 1, ms: 0, state: 'running' }]);
    p.batch([{ vm: 'b', seq: 1, ms: 2 * MINUTE }]);
    const back = p.batch([{ vm: 'a', seq: 2, ms: 2 * MINUTE + 10, state: 'stop' }]);
    // No dwell across the silence: the state a was in is not known any more.
    assert.deepEqual(back.brief, []);
    assert.equal(back.counts.sequenceGaps, 0);
    assert.equal(p.processor.stats().vms, 2);
    assert.deepEqual(tombstoned(back), []);
  });

  test('the retention must be longer than the prepare timeout', () => {
    assert.throws(
      () => new PartitionProcessor(0, { prepareTimeoutSeconds: 10, vmRetentionMs: 10_000 }),
      RangeError,
    );
    assert.ok(new PartitionProcessor(0, { prepareTimeoutSeconds: 10, vmRetentionMs: 10_001 }));
  });
});

describe('partition processor: hostile but well-formed records', () => {
  /** One record with the receive time given outright (µs), QEMU time `ms` after T0. */
  function skewed(vm: string, seq: number, ms: number, receivedMicros: number): Buffer {
    return encodeEvent({ ...eventRecord({ vm, seq, ms }), receivedMicros });
  }

  test('one record with a receive time in 2127 neither times out nor frees the other VMs', () => {
    const processor = new PartitionProcessor(0, { prepareTimeoutSeconds: 2 });
    const partitions = new Map([[0, processor]]);
    const first = processBatch(
      partitions,
      batchOf([
        { vm: 'a', seq: 1, ms: 0, state: 'pre-copy-p2p-prepare' },
        { vm: 'c', seq: 1, ms: 0, event: 'SHUTDOWN' },
      ]),
      { groupId: 'g', decodeEvent },
    );
    assert.equal(first.counts.applied, 2);
    const year2127 = 5_000_000_000_000_000;
    const out = processBatch(
      partitions,
      [
        {
          partition: 0,
          offset: 2,
          key: null,
          value: skewed('b', 1, 10, year2127),
          timestampMs: brokerTimeMs(10),
        },
        ...batchOf([{ vm: 'a', seq: 2, ms: 20, state: 'pre-copy-p2p' }], 0, 3),
      ],
      { groupId: 'g', decodeEvent },
    );
    // a's prepare completes normally, 20 ms, instead of timing out on a clock 100 years ahead.
    assert.deepEqual(
      out.transitions.map((t) => brief(t.transition)),
      ['a prepare pre-copy-p2p completed s1'],
    );
    assert.equal(out.counts.untrustedReceiveTimes, 1);
    assert.equal(out.counts.applied, 2);
    assert.equal(out.counts.forgottenVms, 0);
    const meta = out.changelog.find((e) => e.key === 'g\u0000meta');
    assert.ok((JSON.parse(meta?.value ?? '{}') as { clockMicros: number }).clockMicros < year2127);
    assert.equal(processor.stats().vms, 3);
  });

  test('a receive time far behind its QEMU timestamp does not make its VM look silent', () => {
    const p = run(2);
    p.batch([{ vm: 'b', seq: 1, ms: 0 }]);
    const processor = p.processor;
    const out = processBatch(
      new Map([[0, processor]]),
      [
        {
          partition: 0,
          offset: 1,
          key: null,
          value: encodeEvent({
            ...eventRecord({ vm: 'a', seq: 1, ms: 1000, state: 'pre-copy-p2p-prepare' }),
            receivedMicros: 0,
          }),
          timestampMs: brokerTimeMs(1000),
        },
        ...batchOf([{ vm: 'b', seq: 2, ms: 1500 }], 0, 2),
      ],
      { groupId: 'g', decodeEvent },
    );
    assert.deepEqual(out.transitions, []);
    assert.equal(out.counts.untrustedReceiveTimes, 1);
    assert.equal(processor.stats().openPrepares, 1);
  });

  test('a host whose clock is a year ahead, QEMU and collector alike, times out no other host', () => {
    // Before issue 18 the partition clock was the newest receive time: this host's first record
    // timed out b's prepare and forgot the shut-down VM c, and every later prepare of b with it.
    const YEAR_MS = 365 * 24 * 3600 * 1000;
    const processor = new PartitionProcessor(0, { prepareTimeoutSeconds: 2 });
    const partitions = new Map([[0, processor]]);
    processBatch(
      partitions,
      batchOf([
        { vm: 'b', seq: 1, ms: 0, state: 'pre-copy-p2p-prepare' },
        { vm: 'c', seq: 1, ms: 0, event: 'SHUTDOWN' },
      ]),
      { groupId: 'g', decodeEvent },
    );
    const ahead = (seq: number, ms: number, state: string) => ({
      partition: 0,
      offset: seq + 1,
      key: null,
      value: encodeEvent({
        ...eventRecord({ vm: 'fast', seq, ms: ms + YEAR_MS, state }),
        host: 'h-ahead',
      }),
      timestampMs: brokerTimeMs(ms),
    });
    const out = processBatch(
      partitions,
      [
        ahead(1, 5, 'pre-copy-p2p-prepare'),
        ahead(2, 35, 'pre-copy-p2p'),
        ...batchOf([{ vm: 'b', seq: 2, ms: 40, state: 'pre-copy-p2p' }], 0, 4),
      ],
      { groupId: 'g', decodeEvent },
    );
    // Both prepares complete; the host ahead's in 30 ms of its own (QEMU) time.
    assert.deepEqual(
      out.transitions
        .filter((t) => t.transition.type === 'prepare')
        .map((t) => [
          t.transition.vm,
          t.transition.type === 'prepare' ? t.transition.outcome : '',
          t.transition.type === 'prepare' ? t.transition.seconds : 0,
        ]),
      [
        ['fast', 'completed', 0.03],
        ['b', 'completed', 0.04],
      ],
    );
    assert.equal(out.counts.silentTimeouts, 0);
    assert.equal(out.counts.forgottenVms, 0);
    assert.equal(out.counts.untrustedReceiveTimes, 0, 'the host is self-consistent');
    assert.equal(processor.meta().clockMicros, brokerTimeMs(40) * 1000);
    // Its clock offset, receive time − broker time, is reported per host: a year, to the ms.
    assert.equal(out.hostClockOffsets.get('h-ahead'), YEAR_MS * 1000 - 1000);
    assert.equal(out.hostClockOffsets.get('h1'), -1000);
  });

  test('the partition clock is broker time: silence is measured by it, not by receive times', () => {
    const p = run(2);
    p.batch([{ vm: 'a', seq: 1, ms: 0, state: 'pre-copy-p2p-prepare' }]);
    // b's collector clock stands still; the broker's moves on 3 s: a falls silent.
    const out = p.batch([{ vm: 'b', seq: 1, ms: 0, receivedMs: 0, brokerMs: 3000 }]);
    assert.deepEqual(out.brief, ['a prepare pre-copy-p2p timed_out s1']);
    // A record whose broker time is behind the clock (a new leader a little behind) does not
    // move it back.
    const before = p.processor.meta().clockMicros;
    p.batch([{ vm: 'b', seq: 2, ms: 1, brokerMs: 2000 }]);
    assert.equal(p.processor.meta().clockMicros, before);
  });

  test('identifiers over the length limit are dead letters (too_large); the next record applies', () => {
    const long = 'x'.repeat(MAX_IDENTIFIER_LENGTH + 1);
    const ok = 'y'.repeat(MAX_IDENTIFIER_LENGTH);
    const records = [
      encodeEvent({ ...eventRecord({ seq: 1, ms: 0 }), vm: long }),
      encodeEvent({ ...eventRecord({ seq: 1, ms: 0 }), qomPath: long }),
      encodeEvent({ ...eventRecord({ seq: 1, ms: 0 }), deviceState: long }),
      encodeEvent({ ...eventRecord({ seq: 1, ms: 0 }), host: ok }),
    ].map((value, offset) => ({
      partition: 0,
      offset,
      key: null,
      value,
      timestampMs: brokerTimeMs(0),
    }));
    const out = processBatch(
      new Map([[0, new PartitionProcessor(0, { prepareTimeoutSeconds: 2 })]]),
      records,
      { groupId: 'g', decodeEvent },
    );
    assert.deepEqual(
      out.deadLetters.map((d) => [d.offset, d.reason, d.detail.split(' ')[0]]),
      [
        [0, 'too_large', 'vm'],
        [1, 'too_large', 'qomPath'],
        [2, 'too_large', 'deviceState'],
      ],
    );
    assert.equal(out.counts.applied, 1);
  });

  test('a VM holds at most MAX_DEVICES_PER_VM devices: a new one beyond is a dead letter, known ones apply', () => {
    const p = run(10);
    const devices = Array.from({ length: MAX_DEVICES_PER_VM + 1 }, (_, i) => ({
      seq: i + 1,
      ms: i,
      device: `vf${i}`,
    }));
    const out = p.batch(devices);
    assert.deepEqual(
      out.deadLetters.map((d) => [d.offset, d.reason]),
      [[MAX_DEVICES_PER_VM, 'too_large']],
    );
    assert.equal(out.counts.applied, MAX_DEVICES_PER_VM);
    assert.equal(p.processor.stats().devices, MAX_DEVICES_PER_VM);
    // The session goes on (no gap) and a known device still changes state.
    const next = p.batch([{ seq: MAX_DEVICES_PER_VM + 2, ms: 1000, device: 'vf0', state: 'stop' }]);
    assert.equal(next.counts.sequenceGaps, 0);
    assert.deepEqual(next.brief, ['vm1 dwell running->stop s1']);
    // After SHUTDOWN the VM starts over with room for new devices.
    const after = p.batch([
      { seq: MAX_DEVICES_PER_VM + 3, ms: 2000, event: 'SHUTDOWN' },
      { seq: MAX_DEVICES_PER_VM + 4, ms: 3000, device: 'vf-new' },
    ]);
    assert.deepEqual(after.deadLetters, []);
    assert.equal(p.processor.stats().devices, 1);
  });
});

describe('partition processor: forged records and two writers of one VM', () => {
  /** A collector's session id (UUIDv7) made `ms` after T0. */
  const session = (ms: number, counter = 0): string =>
    formatSessionId({ ms: T0 / 1000 + ms, counter }, new Uint8Array(8).fill(0x5a));

  test('regression: a forged huge sequence is dead-lettered and the real events that follow still count', () => {
    const p = run();
    const real = session(0);
    p.batch([
      { session: real, seq: 1, ms: 0, state: 'pre-copy' },
      { session: real, seq: 2, ms: 5, state: 'pre-copy-p2p-prepare' },
    ]);
    const forged = p.batch([
      { session: real, seq: Number.MAX_SAFE_INTEGER, ms: 6, state: 'running' },
      { session: real, seq: 2 ** 53, ms: 6, state: 'running' },
      { session: real, seq: 0, ms: 6, state: 'running' },
    ]);
    assert.deepEqual(
      forged.deadLetters.map((d) => d.reason),
      ['sequence_jump', 'bad_sequence', 'bad_sequence'],
    );
    assert.equal(forged.counts.applied, 0);
    assert.deepEqual(forged.transitions, []);
    const next = p.batch([{ session: real, seq: 3, ms: 30, state: 'pre-copy-p2p' }]);
    assert.equal(next.counts.applied, 1, 'not a "redelivery" behind the forged sequence');
    assert.equal(next.counts.redeliveries, 0);
    assert.deepEqual(next.brief, [
      `vm1 prepare pre-copy-p2p completed ${real}`,
      `vm1 dwell pre-copy->pre-copy-p2p ${real}`,
    ]);
  });

  test('regression: a forged newer session cannot silently demote the real one; one from the future is dead-lettered', () => {
    const p = run();
    const real = session(0);
    p.batch([{ session: real, seq: 1, ms: 0, state: 'pre-copy' }]);
    const future = formatSessionId({ ms: T0 / 1000 + 3_600_000, counter: 0 }, new Uint8Array(8));
    const fromFuture = p.batch([{ session: future, seq: 1, ms: 1 }]);
    assert.deepEqual(
      fromFuture.deadLetters.map((d) => d.reason),
      ['future_session'],
    );
    assert.equal(p.batch([{ session: real, seq: 2, ms: 2 }]).counts.applied, 1);

    const forged = session(10);
    assert.equal(p.batch([{ session: forged, seq: 1, ms: 11 }]).counts.newSessions, 1);
    // The real session goes on: not silently ignored as a "redelivery", but reported.
    const after = p.batch([
      { session: real, seq: 3, ms: 20 },
      { session: real, seq: 4, ms: 21 },
    ]);
    assert.equal(after.counts.redeliveries, 0);
    assert.equal(after.counts.duplicateWriterEvents, 2);
    assert.deepEqual(
      after.duplicateWriters.map((w) => [
        w.host,
        w.vm,
        w.sessionId,
        w.sequence,
        w.currentSessionId,
      ]),
      [
        ['h1', 'vm1', real, 3, forged],
        ['h1', 'vm1', real, 4, forged],
      ],
    );
  });

  test('two collectors with the same --host and VM: the interleaving sessions are detected and counted', () => {
    const p = run();
    const x = session(0);
    const y = session(5);
    const out = p.batch([
      { session: x, seq: 1, ms: 0 },
      { session: x, seq: 2, ms: 1 },
      { session: y, seq: 1, ms: 6 },
      { session: x, seq: 3, ms: 7 },
      { session: y, seq: 2, ms: 8 },
      { session: x, seq: 4, ms: 9 },
      { session: y, seq: 3, ms: 10 },
    ]);
    assert.equal(out.counts.newSessions, 1);
    assert.equal(out.counts.duplicateWriterEvents, 2);
    assert.deepEqual(
      out.duplicateWriters.map((w) => `${w.host}/${w.vm} ${w.sequence}`),
      ['h1/vm1 3', 'h1/vm1 4'],
    );
    // The detection survives a restore (earlier sessions keep their sequences in the state).
    p.restore();
    const later = p.batch([
      { session: x, seq: 5, ms: 11 },
      { session: y, seq: 4, ms: 12 },
    ]);
    assert.equal(later.counts.duplicateWriterEvents, 1);
    assert.equal(later.counts.applied + later.counts.identical, 1);

    // A second writer whose older session was never seen is stale: it cannot demote y.
    const z = session(1);
    const stale = p.batch([{ session: z, seq: 1, ms: 13 }]);
    assert.equal(stale.counts.staleSessions, 1);
    assert.equal(stale.counts.newSessions, 0);
  });

  test('regression: a resend spanning more than the sessions kept does not start the VM over', () => {
    const p = run();
    const ids = [0, 1, 2, 3, 4, 5].map((i) => session(i * 10));
    ids.forEach((id, i) => p.batch([{ session: id, seq: 1, ms: i * 10 + 1 }]));
    // The collector crashed and re-sends from the oldest session on (more than four back).
    const resend = p.batch(ids.map((id, i) => ({ session: id, seq: 1, ms: i * 10 + 1 })));
    assert.equal(resend.counts.newSessions, 0);
    assert.equal(resend.counts.staleSessions, 1);
    assert.equal(resend.counts.redeliveries, 5);
  });
});
