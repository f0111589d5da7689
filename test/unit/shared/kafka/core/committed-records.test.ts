/**
 * `committedRecords`: what a reader sees of one partition's fetched batches, `read_committed` or
 * not. Batches are built as @platformatic/kafka parses them (protocol/records.js).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RecordsBatch } from '@platformatic/kafka';
import { committedRecords } from '../../../../../services/shared/kafka/core/committed-records.ts';

const TRANSACTIONAL = 1 << 4;
const CONTROL = 1 << 5;

function batch(
  firstOffset: bigint,
  values: string[],
  producerId = -1n,
  attributes = 0,
): RecordsBatch {
  return {
    firstOffset,
    length: 0,
    partitionLeaderEpoch: 0,
    magic: 2,
    crc: 0,
    attributes,
    lastOffsetDelta: values.length - 1,
    firstTimestamp: 1_700_000_000_000n,
    maxTimestamp: 1_700_000_000_000n,
    producerId,
    producerEpoch: 0,
    firstSequence: 0,
    records: values.map((value, i) => ({
      length: 0,
      attributes: 0,
      timestampDelta: BigInt(i),
      offsetDelta: i,
      key: null,
      value: Buffer.from(value),
      headers: [[Buffer.from('h'), Buffer.from(value)]],
    })),
  };
}

/** A COMMIT (type 1) or ABORT (type 0) marker: key = version int16, type int16. */
function marker(offset: bigint, producerId: bigint, type: 0 | 1): RecordsBatch {
  const control = batch(offset, ['-'], producerId, TRANSACTIONAL | CONTROL);
  const key = Buffer.alloc(4);
  key.writeInt16BE(0, 0);
  key.writeInt16BE(type, 2);
  control.records[0] = { ...control.records[0]!, key, value: Buffer.alloc(6) };
  return control;
}

function partition(
  records: RecordsBatch[],
  aborted: { producerId: bigint; firstOffset: bigint }[] = [],
) {
  return {
    partitionIndex: 3,
    errorCode: 0,
    highWatermark: 100n,
    lastStableOffset: 100n,
    logStartOffset: 0n,
    abortedTransactions: aborted,
    preferredReadReplica: -1,
    records,
  };
}

const valuesOf = (decoded: ReturnType<typeof committedRecords>): string[] =>
  decoded.records.map((r) => r.value?.toString() ?? 'null');

test('records from the fetch offset on, with offsets, headers and timestamps; position past the last batch', () => {
  const decoded = committedRecords(
    't',
    partition([batch(10n, ['a', 'b', 'c']), batch(13n, ['d'])]),
    11n,
    'read_committed',
  );
  assert.deepEqual(valuesOf(decoded), ['b', 'c', 'd']);
  assert.deepEqual(
    decoded.records.map((r) => [r.topic, r.partition, r.offset, r.timestampMs]),
    [
      ['t', 3, 11n, 1_700_000_000_001],
      ['t', 3, 12n, 1_700_000_000_002],
      ['t', 3, 13n, 1_700_000_000_000],
    ],
  );
  assert.deepEqual(
    decoded.records[0]!.headers.map((h) => [h.key, h.value.toString()]),
    [['h', 'b']],
  );
  assert.equal(decoded.nextOffset, 14n);
});

test('nothing fetched: the position stays', () => {
  assert.deepEqual(committedRecords('t', partition([]), 7n, 'read_committed'), {
    records: [],
    nextOffset: 7n,
  });
});

test('control batches are never handed over, but the position moves past them', () => {
  const decoded = committedRecords(
    't',
    partition([batch(0n, ['x'], 5n, TRANSACTIONAL), marker(1n, 5n, 1)]),
    0n,
    'read_committed',
  );
  assert.deepEqual(valuesOf(decoded), ['x']);
  assert.equal(decoded.nextOffset, 2n);
});

test('regression: two aborted transactions of one producer around a committed one are both skipped', () => {
  // Producer 7: aborted [0,1] (marker 2), committed [3] (marker 4), aborted [5] (marker 6).
  // @platformatic/kafka keeps one aborted range per producer (consumer.js #filterUncommittedMessages)
  // and would hand over offsets 0 and 1.
  const batches = [
    batch(0n, ['aborted-1', 'aborted-2'], 7n, TRANSACTIONAL),
    marker(2n, 7n, 0),
    batch(3n, ['committed'], 7n, TRANSACTIONAL),
    marker(4n, 7n, 1),
    batch(5n, ['aborted-3'], 7n, TRANSACTIONAL),
    marker(6n, 7n, 0),
  ];
  // The broker lists them by first offset; out of order here to check that they are sorted.
  const aborted = [
    { producerId: 7n, firstOffset: 5n },
    { producerId: 7n, firstOffset: 0n },
  ];
  const committed = committedRecords('t', partition(batches, aborted), 0n, 'read_committed');
  assert.deepEqual(valuesOf(committed), ['committed']);
  assert.equal(committed.nextOffset, 7n);
  const uncommitted = committedRecords('t', partition(batches, aborted), 0n, 'read_uncommitted');
  assert.deepEqual(valuesOf(uncommitted), ['aborted-1', 'aborted-2', 'committed', 'aborted-3']);
});

test('regression: an aborted transaction whose ABORT marker is beyond this response stays hidden', () => {
  // The response was cut by maxBytes before the marker; the broker still lists the transaction.
  const decoded = committedRecords(
    't',
    partition(
      [batch(0n, ['plain']), batch(1n, ['aborted'], 9n, TRANSACTIONAL)],
      [{ producerId: 9n, firstOffset: 1n }],
    ),
    0n,
    'read_committed',
  );
  assert.deepEqual(valuesOf(decoded), ['plain']);
  assert.equal(decoded.nextOffset, 2n);
});

test('an aborted producer does not hide another producer’s records, nor its own non-transactional ones', () => {
  const decoded = committedRecords(
    't',
    partition(
      [
        batch(0n, ['aborted'], 9n, TRANSACTIONAL),
        batch(1n, ['other'], 8n, TRANSACTIONAL),
        batch(2n, ['idempotent'], 9n),
        marker(3n, 9n, 0),
        marker(4n, 8n, 1),
      ],
      [{ producerId: 9n, firstOffset: 0n }],
    ),
    0n,
    'read_committed',
  );
  assert.deepEqual(valuesOf(decoded), ['other', 'idempotent']);
});

test('regression: a later aborted transaction with only its ABORT marker does not hide the committed one before it', () => {
  // The fault matrix's case (docs/decisions.md, read_committed): producer 7 aborted [0], committed
  // [2], then a transaction whose produce failed left only an ABORT marker at 4. A filter that ends
  // the producer's aborted range at its last ABORT marker in the response hides offset 2.
  const decoded = committedRecords(
    't',
    partition(
      [
        batch(0n, ['aborted'], 7n, TRANSACTIONAL),
        marker(1n, 7n, 0),
        batch(2n, ['committed'], 7n, TRANSACTIONAL),
        marker(3n, 7n, 1),
        marker(4n, 7n, 0),
      ],
      [
        { producerId: 7n, firstOffset: 0n },
        { producerId: 7n, firstOffset: 4n },
      ],
    ),
    0n,
    'read_committed',
  );
  assert.deepEqual(valuesOf(decoded), ['committed']);
  assert.equal(decoded.nextOffset, 5n);
});
