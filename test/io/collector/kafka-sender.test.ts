/**
 * The sender against an in-memory fake of the Kafka port's Producer (STYLE.md rule 4; the real
 * adapter is exercised by test/e2e/collector/*): what Kafka acknowledged is exactly what leaves
 * the spool.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Registry } from 'prom-client';
import { partitionFor } from '../../../services/collector/core/partitioner.ts';
import { createCollectorTelemetry } from '../../../services/collector/io/collector-telemetry.ts';
import { KafkaSender } from '../../../services/collector/io/kafka-sender.ts';
import { RejectedRecordFile } from '../../../services/collector/io/rejected-record-file.ts';
import { Spool } from '../../../services/collector/io/spool.ts';
import { TelemetryError } from '../../../services/shared/core/errors.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { ackAll, fakeKafka, type SendBehaviour } from './fake-kafka-port.ts';

const TOPIC = 'events';
const PARTITIONS = 2;

/** Two keys, one per partition of a two-partition topic. */
const KEY_P0 = ['h/a', 'h/b', 'h/c', 'h/d'].find(
  (k) => partitionFor(k, PARTITIONS) === 0,
) as string;
const KEY_P1 = ['h/a', 'h/b', 'h/c', 'h/d'].find(
  (k) => partitionFor(k, PARTITIONS) === 1,
) as string;

function setUp(t: TestContext, send: SendBehaviour, stallTimeoutMs = 60_000) {
  const dir = mkdtempSync(join(tmpdir(), 'sender-'));
  const registry = new Registry();
  const telemetry = createCollectorTelemetry(
    registry,
    createLogger({ level: 'error', write: () => {} }),
  );
  const spool = Spool.open({
    dir,
    maxBytes: 1 << 20,
    segmentBytes: 64 * 1024,
    fsyncIntervalMs: 50,
    events: {
      written: () => {},
      dropped: () => {},
      recovered: () => {},
      tornTailTruncated: () => {},
      changed: (events, bytes) => telemetry.spoolChanged(events, bytes),
    },
  });
  const behaviour = { send };
  const kafka = fakeKafka(behaviour, PARTITIONS);
  const rejected = new RejectedRecordFile(dir, (value) => {
    const [sessionId, sequence] = Buffer.from(value).toString().split('#');
    return sessionId === undefined ? null : { sessionId, sequence: Number(sequence) };
  });
  const sender = new KafkaSender({
    kafka: kafka.port,
    spool,
    rejected,
    topic: TOPIC,
    batchMaxEvents: 100,
    lingerMs: 0,
    retry: { initialMs: 5, maxMs: 20, multiplier: 2 },
    stallTimeoutMs,
    telemetry,
  });
  t.after(async () => {
    await sender.stop();
    spool.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const metric = async (name: string, labels: Record<string, string> = {}): Promise<number> => {
    const values = (await registry.getSingleMetric(name)?.get())?.values ?? [];
    return values
      .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
      .reduce((sum, v) => sum + v.value, 0);
  };
  /** Appends `value` (its text is `session#sequence`) under `key` and writes it. */
  const append = (key: string, value: string): void => {
    assert.equal(
      spool.append({ receivedMicros: Date.now() * 1000, key, value: Buffer.from(value) }),
      true,
    );
  };
  return { dir, spool, sender, kafka, behaviour, rejected, metric, append };
}

test('partition 1 fails in a call: only the stored prefix is acknowledged; only partition 1 is sent again', async (t) => {
  let call = 0;
  const s = setUp(t, (records) => {
    if (call++ > 0) return ackAll(records);
    const p0 = records.filter((r) => r.partition === 0).length;
    return new TelemetryError('KAFKA_PUBLISH_FAILED', 'partition 1: NOT_LEADER_OR_FOLLOWER', {
      details: { written: [{ topic: TOPIC, partition: 0, baseOffset: 0n, count: p0 }] },
    });
  });
  for (const [key, value] of [
    [KEY_P0, 'a#1'],
    [KEY_P1, 'b#1'],
    [KEY_P0, 'a#2'],
    [KEY_P1, 'b#2'],
    [KEY_P0, 'a#3'],
  ] as const) {
    s.append(key, value);
  }
  s.spool.flush();
  s.sender.start();
  await waitFor(() => s.spool.pendingEvents === 0, { description: 'spool drained' });
  assert.deepEqual(s.kafka.calls, [
    ['a#1', 'b#1', 'a#2', 'b#2', 'a#3'],
    ['b#1', 'b#2'],
  ]);
  assert.deepEqual(
    s.kafka.log,
    [
      ['a#1', 'a#2', 'a#3'],
      ['b#1', 'b#2'],
    ],
    'each record once',
  );
  assert.equal(await s.metric('vfio_collector_records_resent_total'), 2);
  assert.equal(await s.metric('vfio_collector_events_published_total'), 5);
});

test('a failed call leaves the spool where it was until Kafka acknowledges', async (t) => {
  let fail = true;
  const s = setUp(t, (records) =>
    fail ? new TelemetryError('KAFKA_PUBLISH_FAILED', 'broker gone') : ackAll(records),
  );
  for (let i = 1; i <= 3; i++) s.append(KEY_P1, `b#${i}`);
  s.spool.flush();
  s.sender.start();
  await waitFor(() => s.kafka.calls.length >= 3, { description: 'retries' });
  assert.equal(s.spool.pendingEvents, 3);
  fail = false;
  await waitFor(() => s.spool.pendingEvents === 0, { description: 'spool drained' });
  assert.deepEqual(s.kafka.log[1], ['b#1', 'b#2', 'b#3']);
  assert.ok((await s.metric('vfio_collector_records_resent_total')) >= 6);
});

test('a send that resolves with fewer acknowledgements than records is not taken as delivered (kafkajs#1303)', async (t) => {
  let call = 0;
  const s = setUp(t, (records) => {
    const result = ackAll(records);
    // First call: partition 1's acknowledgement is missing although the promise resolved.
    return call++ === 0
      ? { ...result, acks: result.acks.filter((a) => a.partition === 0) }
      : result;
  });
  s.append(KEY_P1, 'b#1');
  s.append(KEY_P0, 'a#1');
  s.spool.flush();
  s.sender.start();
  await waitFor(() => s.spool.pendingEvents === 0, { description: 'spool drained' });
  assert.deepEqual(s.kafka.calls, [['b#1', 'a#1'], ['b#1']]);
  assert.deepEqual(s.kafka.log, [['a#1'], ['b#1']]);
});

test('a record Kafka refuses goes to rejected.jsonl, is counted, and does not block the spool', async (t) => {
  const s = setUp(t, (records) =>
    ackAll(records, new Set(records.flatMap((r, i) => ((r.value?.length ?? 0) > 100 ? [i] : [])))),
  );
  const big = `b#2#${'x'.repeat(200)}`;
  s.append(KEY_P1, 'b#1');
  s.append(KEY_P1, big);
  s.append(KEY_P1, 'b#3');
  s.append(KEY_P0, 'a#1');
  s.spool.flush();
  s.sender.start();
  await waitFor(() => s.spool.pendingEvents === 0, { description: 'spool drained' });
  assert.deepEqual(s.kafka.log, [['a#1'], ['b#1', 'b#3']]);
  const lines = readFileSync(s.rejected.path, 'utf8').trim().split('\n');
  assert.equal(lines.length, 1);
  const line = JSON.parse(lines[0] as string) as Record<string, unknown>;
  assert.equal(line['reason'], 'MESSAGE_TOO_LARGE');
  assert.equal(line['key'], KEY_P1);
  assert.equal(line['bytes'], big.length);
  assert.equal(line['sessionId'], 'b');
  assert.equal(line['sequence'], 2);
  assert.equal(Buffer.from(line['value'] as string, 'base64').toString(), big);
  assert.ok(!Number.isNaN(Date.parse(line['time'] as string)));
  assert.equal(
    await s.metric('vfio_collector_records_rejected_total', { reason: 'MESSAGE_TOO_LARGE' }),
    1,
  );
  assert.equal(await s.metric('vfio_collector_events_published_total'), 3);
  assert.equal(await s.metric('vfio_collector_records_resent_total'), 0);
});

test('stall(): reported once a non-empty spool made no progress for stallTimeoutMs, with the last error', async (t) => {
  let fail = true;
  const s = setUp(
    t,
    (records) =>
      fail ? new TelemetryError('KAFKA_PUBLISH_FAILED', 'broker gone') : ackAll(records),
    300,
  );
  s.sender.start();
  // Kafka failing while there is nothing to send is not a stall.
  await waitFor(() => s.kafka.calls.length === 0 && s.sender.connected, { description: 'idle' });
  s.append(KEY_P0, 'a#1');
  s.spool.flush();
  assert.equal(s.sender.stall(), null, 'fresh work is not a stall');
  const stall = await waitFor(() => s.sender.stall(), { description: 'stall reported' });
  assert.ok(stall.sinceMs >= 300);
  assert.equal(stall.pendingEvents, 1);
  assert.match(stall.lastError ?? '', /^KAFKA_PUBLISH_FAILED: broker gone/);
  fail = false;
  await waitFor(() => s.spool.pendingEvents === 0, { description: 'spool drained' });
  assert.equal(s.sender.stall(), null);
});

test('read-ahead: a backlog goes out in full batches in spool order; a failed call drops the batch read behind it, which is read again from the acknowledged position', async (t) => {
  let call = 0;
  const s = setUp(t, (records) => {
    if (call++ === 1) return new TelemetryError('KAFKA_PUBLISH_FAILED', 'broker went away');
    return ackAll(records);
  });
  const values = Array.from({ length: 350 }, (_, i) => `s#${i + 1}`);
  values.forEach((value, i) => s.append(i % 2 === 0 ? KEY_P0 : KEY_P1, value));
  s.spool.flush();
  s.sender.start();
  await waitFor(() => s.spool.pendingEvents === 0, { description: 'spool drained' });
  const range = (from: number, to: number): string[] => values.slice(from, to);
  assert.deepEqual(s.kafka.calls, [
    range(0, 100),
    range(100, 200),
    range(100, 200),
    range(200, 300),
    range(300, 350),
  ]);
  assert.deepEqual(
    s.kafka.log,
    [values.filter((_, i) => i % 2 === 0), values.filter((_, i) => i % 2 === 1)],
    'each partition holds its records once, in order',
  );
  assert.equal(await s.metric('vfio_collector_records_resent_total'), 100);
});
