import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  PartitionProcessor,
  type EventInput,
  type PublishedTransition,
  type VmStateValue,
} from '../../../services/processor/core/partition-processor.ts';
import type { EventRecord } from '../../../services/shared/core/event-record.ts';

const T0 = 1_795_798_176_000_000;
const NOW = 1_800_000_000_000_000;

function vfio(
  sessionId: string,
  sequence: number,
  ms: number,
  state: string,
  device = 'vf0',
  vm = 'vm1',
): EventRecord {
  return {
    host: 'h1',
    vm,
    sessionId,
    sequence,
    qemuTimestampMicros: T0 + ms * 1000,
    receivedMicros: T0 + ms * 1000 + 50,
    event: 'VFIO_MIGRATION',
    qomPath: `/machine/peripheral/${device}`,
    deviceId: device,
    deviceState: state,
    migrationStatus: null,
    data: null,
  };
}

const inputs = (records: EventRecord[], from = 0): EventInput[] =>
  records.map((record, i) => ({ offset: from + i, record }));
const brief = (t: PublishedTransition): string =>
  `${t.type} ${t.type === 'prepare' ? `${t.target} ${t.outcome}` : `${t.state}->${t.next}`} ${t.sessionId}`;

describe('partition processor', () => {
  test('same session and sequence again is a redelivery; a new session aborts open prepares', () => {
    const p = new PartitionProcessor(0, { prepareTimeoutSeconds: 10 });
    const a = [vfio('s1', 1, 0, 'pre-copy'), vfio('s1', 2, 5, 'pre-copy-p2p-prepare')];
    const first = p.applyBatch(inputs(a), NOW);
    assert.equal(first.applied, 2);
    // The collector re-sent both after a crash (new offsets, same session and sequence).
    const again = p.applyBatch(inputs(a, 2), NOW);
    assert.equal(again.redeliveries, 2);
    assert.equal(again.applied, 0);
    const next = p.applyBatch(inputs([vfio('s2', 1, 100, 'running')], 4), NOW);
    assert.equal(next.newSessions, 1);
    assert.deepEqual(next.transitions.map(brief), ['prepare pre-copy-p2p aborted s1']);
    // A late record of the old session is stale, not a third session.
    const stale = p.applyBatch(inputs([vfio('s1', 3, 6, 'pre-copy-p2p')], 5), NOW);
    assert.equal(stale.redeliveries, 1);
    assert.equal(stale.newSessions, 0);
  });

  test('records at or below the applied offset are skipped', () => {
    const p = new PartitionProcessor(0, { prepareTimeoutSeconds: 10 });
    p.applyBatch(inputs([vfio('s1', 1, 0, 'running'), vfio('s1', 2, 1, 'stop')]), NOW);
    const again = p.applyBatch(inputs([vfio('s1', 9, 2, 'running')], 1), NOW);
    assert.equal(again.redeliveries, 1);
  });

  test('a VFIO record without qom-path is returned as invalid, others still apply', () => {
    const p = new PartitionProcessor(0, { prepareTimeoutSeconds: 10 });
    const bad = { ...vfio('s1', 1, 0, 'running'), qomPath: null };
    const outcome = p.applyBatch(inputs([bad, vfio('s1', 2, 1, 'running')]), NOW);
    assert.deepEqual(
      outcome.invalid.map((i) => [i.offset, i.reason]),
      [[0, 'bad_vfio_data']],
    );
    assert.equal(outcome.applied, 1);
  });

  test('a VM silent on the processor clock for longer than the timeout times out its prepares', () => {
    const p = new PartitionProcessor(0, { prepareTimeoutSeconds: 2 });
    p.applyBatch(inputs([vfio('s1', 1, 0, 'pre-copy-p2p-prepare')]), NOW);
    assert.deepEqual(p.expireSilent(NOW + 2_000_000), []);
    assert.deepEqual(p.expireSilent(NOW + 2_000_001).map(brief), [
      'prepare pre-copy-p2p timed_out s1',
    ]);
    assert.equal(p.stats().openPrepares, 0);
  });

  // The delivery guarantee in miniature: a crash at any batch boundary, between publishing and
  // saving state, or between saving state and committing, gives the same published transitions.
  test('crash and restore at any point: every transition published exactly once', () => {
    const walk = [
      'pre-copy',
      'pre-copy-p2p-prepare',
      'pre-copy-p2p',
      'stop-copy',
      'stop',
      'running',
    ];
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 30 }), fc.boolean()),
          {
            minLength: 5,
            maxLength: 60,
          },
        ),
        fc.integer({ min: 1, max: 7 }),
        fc.nat(),
        fc.constantFrom('after-publish', 'after-state', 'after-commit'),
        (steps, batchSize, crashSeed, crashPoint) => {
          const records: EventRecord[] = [];
          const position = [0, 0, 0, 0];
          let ms = 0;
          let seq = 0;
          for (const [device, gap, session2] of steps) {
            ms += gap;
            const i = position[device] as number;
            position[device] = (i + 1) % walk.length;
            seq++;
            records.push(
              vfio(session2 && seq > 20 ? 's2' : 's1', seq, ms, walk[i] as string, `vf${device}`),
            );
          }
          const all = inputs(records);
          const batches: EventInput[][] = [];
          for (let i = 0; i < all.length; i += batchSize) batches.push(all.slice(i, i + batchSize));

          const reference = new PartitionProcessor(0, { prepareTimeoutSeconds: 10 });
          const expected = batches.flatMap((b) => reference.applyBatch(b, NOW).transitions);

          // Run with durable "topics": published transitions, saved state, committed offset.
          const published: PublishedTransition[] = [];
          let saved: {
            values: Map<string, VmStateValue>;
            applied: number;
            publishedCount: number;
          } = {
            values: new Map(),
            applied: -1,
            publishedCount: 0,
          };
          let committed = 0;
          const crashAt = crashSeed % batches.length;
          let p = new PartitionProcessor(0, { prepareTimeoutSeconds: 10 });
          for (let b = 0; b < batches.length; b++) {
            const outcome = p.applyBatch(batches[b] as EventInput[], NOW);
            published.push(...outcome.transitions);
            if (b === crashAt && crashPoint === 'after-publish') break;
            const values = new Map(saved.values);
            for (const v of p.takeStateChanges()) values.set(`${v.host}/${v.vm}`, v);
            saved = { values, applied: p.lastAppliedOffset, publishedCount: published.length };
            if (b === crashAt && crashPoint === 'after-state') break;
            committed = p.lastAppliedOffset + 1;
          }
          // Restart: state from the changelog, transitions published since it, events from the commit.
          p = new PartitionProcessor(0, { prepareTimeoutSeconds: 10 });
          p.restore(
            JSON.parse(JSON.stringify([...saved.values.values()])) as VmStateValue[],
            saved.applied,
            published.slice(saved.publishedCount),
            NOW,
          );
          const rest = all.slice(committed);
          for (let i = 0; i < rest.length; i += batchSize) {
            published.push(...p.applyBatch(rest.slice(i, i + batchSize), NOW).transitions);
          }
          assert.deepEqual(published, expected);
        },
      ),
      { numRuns: 300 },
    );
  });
});
