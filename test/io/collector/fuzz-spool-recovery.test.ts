/**
 * The spool against damaged files: entries written over several segments, then random damage on
 * disk (flipped bytes, zeroed stretches, truncation, garbage appended, a damaged or missing ack
 * file) before the spool is opened again. Opening and draining never throw; what is read is the
 * written entries in their order with some left out (never one invented, never reordered); and
 * the spool's pending count agrees with what it reads. A flipped byte inside one entry's body
 * costs exactly that entry.
 *
 * Fixed seed in CI; `FUZZ_RUNS=2000 FUZZ_SEED=$RANDOM node --import tsx --test
 * test/io/collector/fuzz-spool-recovery.test.ts` for a longer hunt.
 */
import assert from 'node:assert/strict';
import {
  appendFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import type { SpoolEntry } from '../../../services/collector/core/spool-entry.ts';
import { Spool, type SpoolEvents } from '../../../services/collector/io/spool.ts';

const SEED = Number(process.env['FUZZ_SEED'] ?? 20261202);
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 120);
const ENTRIES = 120;

const entry = (i: number): SpoolEntry => ({
  receivedMicros: 1_000_000 + i,
  key: `h/vm-${i % 5}`,
  value: Buffer.alloc(60 + (i % 50), i % 251),
});

function open(dir: string, dropped: Record<string, number>): Spool {
  const events: SpoolEvents = {
    written: () => {},
    dropped: (reason, count) => (dropped[reason] = (dropped[reason] ?? 0) + count),
    recovered: () => {},
    tornTailTruncated: () => {},
    changed: () => {},
    ioFailed: () => {},
  };
  return Spool.open({
    dir,
    maxBytes: 1 << 20,
    segmentBytes: 4096,
    fsyncIntervalMs: 60_000,
    events,
  });
}

/** Writes ENTRIES entries (a few group commits per segment); acknowledges the first `acked`. */
function writeSpool(dir: string, acked: number): void {
  const spool = open(dir, {});
  for (let i = 0; i < ENTRIES; i++) {
    spool.append(entry(i));
    if (i % 7 === 6) spool.flush();
  }
  spool.flush();
  let left = acked;
  while (left > 0) {
    const batch = spool.readBatch(left);
    if (batch === null) break;
    spool.ack(batch);
    left -= batch.entries.length;
  }
  spool.close();
}

function drain(spool: Spool): number[] {
  const ids: number[] = [];
  for (;;) {
    const batch = spool.readBatch(37);
    if (batch === null) return ids;
    ids.push(...batch.entries.map((e) => e.receivedMicros - 1_000_000));
    spool.ack(batch);
  }
}

const damage = fc.oneof(
  fc.record({
    kind: fc.constant('flip' as const),
    at: fc.nat(),
    bits: fc.integer({ min: 1, max: 255 }),
  }),
  fc.record({
    kind: fc.constant('zero' as const),
    at: fc.nat(),
    length: fc.integer({ min: 1, max: 600 }),
  }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('append' as const),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 300 }),
  }),
  fc.record({ kind: fc.constant('ack' as const), text: fc.oneof(fc.string(), fc.json()) }),
  fc.record({ kind: fc.constant('no-ack' as const) }),
);

test('damaged spool files: open and drain never throw; what is read is what was written, in order', () => {
  fc.assert(
    fc.property(
      fc.nat(ENTRIES),
      fc.array(fc.tuple(fc.nat(), damage), { minLength: 1, maxLength: 4 }),
      (acked, damages) => {
        const dir = mkdtempSync(join(tmpdir(), 'fuzz-spool-'));
        try {
          writeSpool(dir, acked);
          const segments = readdirSync(dir)
            .filter((n) => n.endsWith('.seg'))
            .sort();
          for (const [pick, d] of damages) {
            const file = join(dir, segments[pick % segments.length] as string);
            if (d.kind === 'ack') writeFileSync(join(dir, 'ack'), d.text);
            else if (d.kind === 'no-ack') rmSync(join(dir, 'ack'), { force: true });
            else if (d.kind === 'append') appendFileSync(file, d.bytes);
            else {
              const bytes = readFileSync(file);
              if (bytes.length === 0) continue;
              const at = d.at % bytes.length;
              if (d.kind === 'truncate') truncateSync(file, at);
              else if (d.kind === 'flip') {
                bytes.writeUInt8(bytes.readUInt8(at) ^ d.bits, at);
                writeFileSync(file, bytes);
              } else {
                bytes.fill(0, at, Math.min(bytes.length, at + d.length));
                writeFileSync(file, bytes);
              }
            }
          }
          const dropped: Record<string, number> = {};
          const spool = open(dir, dropped);
          const pending = spool.pendingEvents;
          const ids = drain(spool);
          spool.close();
          assert.equal(ids.length, pending, 'pending counts what is read');
          for (let i = 1; i < ids.length; i++) {
            assert.ok((ids[i] as number) > (ids[i - 1] as number), `in order: ${ids.join(',')}`);
          }
          assert.ok(ids.every((id) => Number.isInteger(id) && id >= 0 && id < ENTRIES));
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    ),
    { seed: SEED, numRuns: RUNS },
  );
});

test('a flipped byte inside one entry body costs exactly that entry, wherever it is', () => {
  fc.assert(
    fc.property(fc.nat(ENTRIES - 2), fc.nat(40), (victim, offsetInValue) => {
      const dir = mkdtempSync(join(tmpdir(), 'fuzz-spool-'));
      try {
        writeSpool(dir, 0);
        // Find the victim's value bytes: entries are laid out in order over the segments.
        const segments = readdirSync(dir)
          .filter((n) => n.endsWith('.seg'))
          .sort();
        let index = 0;
        let done = false;
        for (const name of segments) {
          const file = join(dir, name);
          const bytes = readFileSync(file);
          for (let at = 0; at < bytes.length && !done; index++) {
            const bodyLength = bytes.readUInt32LE(at);
            if (index === victim) {
              const valueAt = at + bodyLength + 8 - (60 + (victim % 50)) + offsetInValue;
              bytes.writeUInt8(bytes.readUInt8(valueAt) ^ 0x5a, valueAt);
              writeFileSync(file, bytes);
              done = true;
            }
            at += 8 + bodyLength;
          }
          if (done) break;
        }
        assert.ok(done);
        // victim < ENTRIES - 1: damage to the very last entry is a torn tail, cut off instead.
        const dropped: Record<string, number> = {};
        const spool = open(dir, dropped);
        const ids = drain(spool);
        spool.close();
        assert.deepEqual(
          ids,
          [...Array(ENTRIES).keys()].filter((i) => i !== victim),
        );
        assert.deepEqual(dropped, { spool_corrupt: 1 });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }),
    { seed: SEED, numRuns: Math.ceil(RUNS / 2) },
  );
});

test('a whole segment deleted: the others are read, in order', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fuzz-spool-'));
  try {
    writeSpool(dir, 0);
    const segments = readdirSync(dir)
      .filter((n) => n.endsWith('.seg'))
      .sort();
    assert.ok(segments.length >= 3);
    unlinkSync(join(dir, segments[1] as string));
    const spool = open(dir, {});
    const ids = drain(spool);
    spool.close();
    assert.equal(ids[0], 0);
    for (let i = 1; i < ids.length; i++) assert.ok((ids[i] as number) > (ids[i - 1] as number));
    assert.equal(ids.at(-1), ENTRIES - 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
