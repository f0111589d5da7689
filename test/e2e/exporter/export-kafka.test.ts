/**
 * The exporter against the real broker: Avro transition records (and poison) on a unique topic,
 * the exporter running in-process, then exact series on /metrics.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { isTelemetryError } from '../../../services/shared/core/errors.ts';
import { createTransitionCodec } from '../../../services/shared/io/avro-codec.ts';
import type { Isolation } from '../../../services/shared/kafka/io/port.ts';
import { uniqueTopic } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import {
  dwellRecord,
  prepareRecord,
  produce,
  scrape,
  series,
  startTestExporter,
  testPort,
} from './exporter-harness.ts';

const codec = createTransitionCodec();
const BOUNDS = [
  '0.001',
  '0.002',
  '0.005',
  '0.01',
  '0.015',
  '0.02',
  '0.025',
  '0.03',
  '0.04',
  '0.05',
  '0.06',
  '0.075',
  '0.1',
  '0.15',
  '0.2',
  '0.25',
  '0.35',
  '0.5',
  '0.75',
  '1',
  '2.5',
  '5',
  '10',
  '30',
  '+Inf',
];

/** Expected cumulative `_bucket` values of a histogram holding `values`. */
function cumulative(values: readonly number[]): Map<string, number> {
  return new Map(
    BOUNDS.map((le) => [le, values.filter((v) => le === '+Inf' || v <= Number(le)).length]),
  );
}

function assertHistogram(
  metrics: Map<string, number>,
  name: string,
  labels: Record<string, string>,
  values: readonly number[],
): void {
  for (const [le, count] of cumulative(values)) {
    assert.equal(
      metrics.get(series(`${name}_bucket`, { ...labels, le })),
      count,
      `${name} le=${le} ${JSON.stringify(labels)}`,
    );
  }
  assert.equal(metrics.get(series(`${name}_count`, labels)), values.length);
  assert.equal(
    metrics.get(series(`${name}_sum`, labels)),
    values.reduce((a, b) => a + b, 0),
  );
}

const poison = [
  Buffer.from('{"type":"prepare"}'), // JSON, not Avro: bad marker
  Buffer.from([0xc3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0x02]), // Avro framing, unknown schema
];

describe('vfio-telemetry export against Kafka', { timeout: 120_000 }, () => {
  test('exact histograms and counters per label set; poison counted, never fatal', async (t) => {
    const topic = await uniqueTopic(t, 'exporter', { numPartitions: 2 });
    const h1Completed = [0.0078125, 0.015625, 0.015625, 0.03125, 0.25];
    const h2Completed = [0.5, 1.5];
    const values = [
      ...h1Completed.map((s) => codec.encode(prepareRecord('h1', 'completed', s))),
      poison[0] as Buffer,
      ...h2Completed.map((s) => codec.encode(prepareRecord('h2', 'completed', s))),
      codec.encode(prepareRecord('h1', 'failed', 0.0625)),
      codec.encode(prepareRecord('h1', 'timed_out', null)),
      codec.encode(prepareRecord('h1', 'aborted', null)),
      codec.encode(prepareRecord('h2', 'unfinished', null, 'stop-copy')),
      poison[1] as Buffer,
      codec.encode(dwellRecord('h1', 'running', 'pre-copy-p2p-prepare', 2)),
      codec.encode(dwellRecord('h2', 'running', 'pre-copy-p2p-prepare', 0.125)),
      null,
    ];
    await produce(t, topic, values, 2);

    const exporter = await startTestExporter(t, topic);
    const metrics = await waitFor(
      async () => {
        const m = await scrape(exporter.http.url);
        return m.get(series('vfio_exporter_records_consumed_total')) === values.length && m;
      },
      { timeoutMs: 60_000, description: `all ${values.length} records consumed` },
    );
    await waitFor(async () => (await fetch(`${exporter.http.url}/readyz`)).status === 200, {
      description: 'ready',
    });

    const prepare = (host: string, outcome: string, target = 'pre-copy-p2p') => ({
      target,
      outcome,
      host,
    });
    assertHistogram(
      metrics,
      'vfio_prepare_duration_seconds',
      prepare('h1', 'completed'),
      h1Completed,
    );
    assertHistogram(
      metrics,
      'vfio_prepare_duration_seconds',
      prepare('h2', 'completed'),
      h2Completed,
    );
    assertHistogram(metrics, 'vfio_prepare_duration_seconds', prepare('h1', 'failed'), [0.0625]);
    for (const outcome of ['timed_out', 'aborted']) {
      assert.equal(
        metrics.get(series('vfio_prepare_duration_seconds_count', prepare('h1', outcome))),
        undefined,
      );
    }

    const outcomes: [Record<string, string>, number][] = [
      [prepare('h1', 'completed'), 5],
      [prepare('h2', 'completed'), 2],
      [prepare('h1', 'failed'), 1],
      [prepare('h1', 'timed_out'), 1],
      [prepare('h1', 'aborted'), 1],
      [prepare('h2', 'unfinished', 'stop-copy'), 1],
    ];
    for (const [labels, n] of outcomes) {
      assert.equal(
        metrics.get(series('vfio_prepare_outcomes_total', labels)),
        n,
        JSON.stringify(labels),
      );
    }
    const outcomeSeries = [...metrics.keys()].filter((k) =>
      k.startsWith('vfio_prepare_outcomes_total{'),
    );
    assert.equal(outcomeSeries.length, outcomes.length, outcomeSeries.join('\n'));

    assertHistogram(
      metrics,
      'vfio_state_dwell_seconds',
      { state: 'running', next: 'pre-copy-p2p-prepare' },
      [2, 0.125],
    );
    // Every record that decoded is observed for lag: all but the three poison ones.
    assert.equal(
      metrics.get(series('vfio_transition_delivery_lag_seconds_count')),
      values.length - 3,
    );
    assert.equal(
      metrics.get(series('vfio_exporter_records_invalid_total', { reason: 'bad_marker' })),
      1,
    );
    assert.equal(
      metrics.get(series('vfio_exporter_records_invalid_total', { reason: 'unknown_schema' })),
      1,
    );
    assert.equal(
      metrics.get(series('vfio_exporter_records_invalid_total', { reason: 'empty_value' })),
      1,
    );
    assert.equal(
      metrics.get(series('vfio_exporter_records_invalid_total', { reason: 'bad_body' })),
      0,
    );
    assert.ok((metrics.get(series('vfio_exporter_process_resident_memory_bytes')) ?? 0) > 0);
    await exporter.stop();
  });

  test('--no-host-label: one series per target and outcome; unknown targets fold into "other"', async (t) => {
    const topic = await uniqueTopic(t, 'exporter-nohost');
    await produce(t, topic, [
      codec.encode(prepareRecord('h1', 'completed', 0.03125)),
      codec.encode(prepareRecord('h2', 'completed', 0.0078125)),
      codec.encode(prepareRecord('h3', 'completed', 0.0078125, 'odd-state-a')),
      codec.encode(prepareRecord('h3', 'completed', 0.0078125, 'odd-state-b')),
    ]);
    const exporter = await startTestExporter(t, topic, {
      'host-label': false,
      'max-label-values': '1',
    });
    const metrics = await waitFor(
      async () => {
        const m = await scrape(exporter.http.url);
        return m.get(series('vfio_exporter_records_consumed_total')) === 4 && m;
      },
      { timeoutMs: 60_000, description: 'all 4 records consumed' },
    );
    assertHistogram(
      metrics,
      'vfio_prepare_duration_seconds',
      { target: 'pre-copy-p2p', outcome: 'completed' },
      [0.03125, 0.0078125],
    );
    assert.equal(
      metrics.get(
        series('vfio_prepare_duration_seconds_count', {
          target: 'odd-state-a',
          outcome: 'completed',
        }),
      ),
      1,
    );
    assert.equal(
      metrics.get(
        series('vfio_prepare_duration_seconds_count', { target: 'other', outcome: 'completed' }),
      ),
      1,
    );
    assert.equal(
      metrics.get(series('vfio_exporter_label_values_folded_total', { label: 'target' })),
      1,
    );
    assert.ok(![...metrics.keys()].some((k) => k.includes('host=')), 'no host label anywhere');
    await exporter.stop();
  });

  test('offsets are committed: a restarted exporter in the group reads only new records', async (t) => {
    const topic = await uniqueTopic(t, 'exporter-commit');
    const groupId = `exporter-commit-${Date.now()}`;
    await produce(t, topic, [codec.encode(prepareRecord('h1', 'completed', 0.25))]);
    const first = await startTestExporter(t, topic, {}, groupId);
    await waitFor(
      async () =>
        (await scrape(first.http.url)).get(series('vfio_exporter_records_consumed_total')) === 1,
      { timeoutMs: 60_000, description: 'first record consumed' },
    );
    await first.stop();

    await produce(t, topic, [codec.encode(prepareRecord('h1', 'failed', 0.5))]);
    const second = await startTestExporter(t, topic, {}, groupId);
    const metrics = await waitFor(
      async () => {
        const m = await scrape(second.http.url);
        return m.get(series('vfio_exporter_records_consumed_total')) === 1 && m;
      },
      { timeoutMs: 60_000, description: 'the new record consumed' },
    );
    // Counters restart at zero (Prometheus semantics) and the old record is not read again.
    const labels = { target: 'pre-copy-p2p', host: 'h1' };
    assert.equal(
      metrics.get(series('vfio_prepare_outcomes_total', { ...labels, outcome: 'failed' })),
      1,
    );
    assert.equal(
      metrics.get(series('vfio_prepare_outcomes_total', { ...labels, outcome: 'completed' })),
      undefined,
    );
    await second.stop();
  });
  test('records of an aborted transaction are never observed (read_committed)', async (t) => {
    const topic = await uniqueTopic(t, 'exporter-aborted');
    const port = testPort(t);
    await produce(t, topic, [codec.encode(prepareRecord('h1', 'completed', 0.25))]);

    // A processor that lost its partition (a stale generation of a group) tries to commit a
    // transaction: the broker fences its offset commit and the transaction is aborted, after its
    // records were written to the log.
    const zombie = await port.producer({ transactionalId: `zombie-${randomUUID()}` });
    t.after(() => zombie.close());
    await assert.rejects(
      zombie.commitTransaction({
        records: [
          {
            topic,
            partition: 0,
            key: null,
            value: codec.encode(prepareRecord('h1', 'failed', 0.5)),
          },
        ],
        offsets: [{ topic, partition: 0, offset: 1n }],
        membership: {
          groupId: `stale-${randomUUID()}`,
          generationId: 7,
          memberId: 'zombie',
          assigned: [{ topic, partition: 0 }],
        },
      }),
      (error: unknown) => isTelemetryError(error),
    );
    await produce(t, topic, [codec.encode(prepareRecord('h1', 'completed', 0.5))]);

    // The aborted record is in the log (read_uncommitted sees it), so the check below means
    // something.
    const outcomes = async (isolation: Isolation): Promise<string[]> => {
      const seen: string[] = [];
      await port.readToEnd(
        [{ topic, partition: 0, offset: 0n }],
        (r) => {
          const decoded = r.value === null ? null : codec.decode(r.value);
          if (decoded?.kind === 'record' && decoded.value.type === 'prepare') {
            seen.push(decoded.value.outcome);
          }
        },
        isolation,
      );
      return seen;
    };
    assert.deepEqual(await outcomes('read_uncommitted'), ['completed', 'failed', 'completed']);
    // The abort's marker is written after EndTxn answers, so the last stable offset may still
    // stop before the aborted record for a moment: read_committed reaches the last record once
    // the marker is in, and never shows the aborted one on the way.
    await waitFor(
      async () => {
        const committed = await outcomes('read_committed');
        assert.ok(
          !committed.includes('failed'),
          `an aborted record was read: ${committed.join(', ')}`,
        );
        return committed.length === 2;
      },
      { timeoutMs: 30_000, description: 'read_committed past the abort marker' },
    );
    assert.deepEqual(await outcomes('read_committed'), ['completed', 'completed']);

    const exporter = await startTestExporter(t, topic);
    const metrics = await waitFor(
      async () => {
        const m = await scrape(exporter.http.url);
        return m.get(series('vfio_exporter_records_consumed_total')) === 2 && m;
      },
      { timeoutMs: 60_000, description: 'both committed records consumed' },
    );
    const labels = { target: 'pre-copy-p2p', host: 'h1' };
    assert.equal(
      metrics.get(series('vfio_prepare_outcomes_total', { ...labels, outcome: 'completed' })),
      2,
    );
    assert.equal(
      metrics.get(series('vfio_prepare_outcomes_total', { ...labels, outcome: 'failed' })),
      undefined,
    );
    await exporter.stop();
  });
});
