import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRecordsBatch, type MessageRecord } from '@platformatic/kafka';
import {
  RECORD_BATCH_OVERHEAD,
  planProduceRequests,
  recordBytes,
  varintBytes,
  type RecordSize,
} from '../../../../../services/shared/kafka/core/produce-requests.ts';

const rec = (partition: number, valueBytes: number, topic = 't'): RecordSize => ({
  topic,
  partition,
  keyBytes: null,
  valueBytes,
  headers: [],
});

const limits = (maxBatchBytes: number, maxRequestBytes = 1 << 30) => ({
  maxBatchBytes: () => maxBatchBytes,
  maxRequestBytes,
});

test('varintBytes: zig-zag varint lengths at their boundaries', () => {
  const cases: [number, number][] = [
    [0, 1],
    [-1, 1],
    [63, 1],
    [64, 2],
    [-64, 1],
    [-65, 2],
    [8191, 2],
    [8192, 3],
    [1_048_575, 3],
    [1_048_576, 4],
    [2 ** 30, 5],
  ];
  for (const [value, bytes] of cases) assert.equal(varintBytes(value), bytes, `varint(${value})`);
});

test('the estimate is never below what the client encodes, and at most the timestamp slack above', () => {
  const records = [
    { key: undefined, value: Buffer.alloc(10) },
    { key: Buffer.from('key'), value: Buffer.alloc(300) },
    { key: Buffer.alloc(0), value: undefined },
    {
      key: Buffer.from('k'),
      value: Buffer.alloc(70_000),
      headers: new Map([
        [Buffer.from('h1'), Buffer.from('v1')],
        [Buffer.from('h2'), Buffer.alloc(200)],
      ]),
    },
  ];
  const sizes: RecordSize[] = records.map((r) => ({
    topic: 't',
    partition: 0,
    keyBytes: r.key === undefined ? null : r.key.length,
    valueBytes: r.value === undefined ? null : r.value.length,
    headers: [...(r.headers ?? new Map<Buffer, Buffer>())].map(([k, v]) => ({
      keyBytes: k.length,
      valueBytes: v.length,
    })),
  }));
  // The client's encoder writes a missing key or value as null (length -1); its type wants both.
  const messages = records.map((r) => ({
    ...r,
    topic: 't',
    partition: 0,
    timestamp: 1_700_000_000_000n,
  }));
  const encoded = createRecordsBatch(messages as unknown as MessageRecord[], {
    compression: 'none',
  }).length;
  const estimated =
    RECORD_BATCH_OVERHEAD + sizes.reduce((sum, size, i) => sum + recordBytes(size, i), 0);
  assert.ok(estimated >= encoded, `estimate ${estimated} < encoded ${encoded}`);
  assert.ok(estimated - encoded <= 9 * records.length, `estimate ${estimated} vs ${encoded}`);
});

test('a record whose batch is exactly the limit is sent; one byte over is refused and never sent', () => {
  const single = RECORD_BATCH_OVERHEAD + recordBytes(rec(0, 1000), 0);
  const fits = planProduceRequests([rec(0, 1000)], limits(single));
  assert.deepEqual(fits, { requests: [[0]], refused: [] });

  const over = planProduceRequests([rec(0, 5), rec(0, 1000), rec(0, 6)], limits(single - 1));
  assert.deepEqual(over.requests, [[0, 2]]);
  assert.deepEqual(
    over.refused.map((r) => [r.index, r.reason]),
    [[1, 'MESSAGE_TOO_LARGE']],
  );
  assert.match(over.refused[0]!.detail, new RegExp(`${single}-byte batch`));
});

test('records of one partition share a batch up to the limit, then the next request carries the rest', () => {
  const two = RECORD_BATCH_OVERHEAD + recordBytes(rec(0, 100), 0) + recordBytes(rec(0, 100), 1);
  assert.deepEqual(planProduceRequests([rec(0, 100), rec(0, 100)], limits(two)).requests, [[0, 1]]);
  assert.deepEqual(planProduceRequests([rec(0, 100), rec(0, 100)], limits(two - 1)).requests, [
    [0],
    [1],
  ]);
});

test('per-partition order holds across requests; request k carries batch k of every partition', () => {
  // Each batch holds two 100-byte records; partition 0 has five records, partition 1 three.
  const limit = RECORD_BATCH_OVERHEAD + recordBytes(rec(0, 100), 0) + recordBytes(rec(0, 100), 1);
  const input = [0, 1, 0, 0, 1, 0, 1, 0].map((p) => rec(p, 100));
  const { requests, refused } = planProduceRequests(input, limits(limit));
  assert.deepEqual(refused, []);
  assert.deepEqual(requests, [[0, 2, 1, 4], [3, 5, 6], [7]]);
  const seen = requests.flat();
  assert.deepEqual(
    [...seen].sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
  for (const partition of [0, 1]) {
    const order = seen.filter((i) => input[i]!.partition === partition);
    assert.deepEqual(
      order,
      [...order].sort((a, b) => a - b),
    );
  }
});

test('each topic has its own limit, and the same partition number of two topics are two batches', () => {
  const small = RECORD_BATCH_OVERHEAD + recordBytes(rec(0, 100), 0);
  const plan = planProduceRequests([rec(0, 100, 'a'), rec(0, 100, 'b'), rec(0, 100, 'a')], {
    maxBatchBytes: (topic) => (topic === 'a' ? small : 1_000_000),
    maxRequestBytes: 1 << 30,
  });
  assert.deepEqual(plan.requests, [[0, 1], [2]]);
});

test('a request over maxRequestBytes is cut between partitions, never inside a batch', () => {
  const batch = RECORD_BATCH_OVERHEAD + recordBytes(rec(0, 100), 0) + recordBytes(rec(0, 100), 1);
  const input = [0, 0, 1, 1, 2, 2].map((p) => rec(p, 100));
  const plan = planProduceRequests(input, limits(10_000, batch * 2));
  assert.deepEqual(plan.requests, [
    [0, 1, 2, 3],
    [4, 5],
  ]);
});

test('nothing to send, nothing planned', () => {
  assert.deepEqual(planProduceRequests([], limits(1000)), { requests: [], refused: [] });
});
