import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startPipeline } from '../../../services/cli/demo/pipeline.ts';
import {
  DURATION_BUCKETS_SECONDS,
  bucketIndex,
} from '../../../services/shared/core/bucket-policy.ts';
import { brokersFromEnv } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { quietLogger, tempDir } from '../collector/collector-harness.ts';
import { counterValue, pipelineTopics, replayRecords } from './pipeline-harness.ts';

interface Expected {
  count: number;
  sum: number;
  buckets: number[];
}

/** Parses the exporter's histogram samples, summed over hosts, keyed by the other labels. */
function histograms(metrics: string, name: string, keyLabels: string[]): Map<string, Expected> {
  const out = new Map<string, Expected>();
  const get = (key: string): Expected => {
    let e = out.get(key);
    if (e === undefined) {
      e = { count: 0, sum: 0, buckets: new Array<number>(DURATION_BUCKETS_SECONDS.length).fill(0) };
      out.set(key, e);
    }
    return e;
  };
  for (const line of metrics.split('\n')) {
    const m = new RegExp(`^${name}_(bucket|sum|count)\\{([^}]*)\\} (\\S+)$`).exec(line);
    if (m === null) continue;
    const labels = Object.fromEntries(
      [...(m[2] as string).matchAll(/(\w+)="([^"]*)"/g)].map((x) => [
        x[1] as string,
        x[2] as string,
      ]),
    );
    const e = get(keyLabels.map((l) => labels[l]).join(' '));
    const value = Number(m[3]);
    if (m[1] === 'count') e.count += value;
    else if (m[1] === 'sum') e.sum += value;
    else if (labels['le'] !== '+Inf')
      e.buckets[DURATION_BUCKETS_SECONDS.indexOf(Number(labels['le']))]! += value;
  }
  return out;
}

function expectFrom(values: Map<string, number[]>): Map<string, Expected> {
  const out = new Map<string, Expected>();
  for (const [key, list] of values) {
    const buckets = new Array<number>(DURATION_BUCKETS_SECONDS.length).fill(0);
    for (const v of list) {
      // Cumulative (le) buckets, as Prometheus exposes them.
      for (let i = bucketIndex(DURATION_BUCKETS_SECONDS, v); i < buckets.length; i++) buckets[i]!++;
    }
    out.set(key, { count: list.length, sum: list.reduce((a, b) => a + b, 0), buckets });
  }
  return out;
}

function assertSameHistograms(
  actual: Map<string, Expected>,
  expected: Map<string, Expected>,
  what: string,
): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: label sets`);
  for (const [key, e] of expected) {
    const a = actual.get(key) as Expected;
    assert.equal(a.count, e.count, `${what} ${key}: count`);
    assert.deepEqual(a.buckets, e.buckets, `${what} ${key}: buckets`);
    assert.ok(
      Math.abs(a.sum - e.sum) <= 1e-9 * Math.max(1, e.count),
      `${what} ${key}: sum ${a.sum} vs ${e.sum}`,
    );
  }
}

test('whole pipeline: the exporter histograms equal exactly what replay computes from the transcripts', async (t) => {
  const brokers = brokersFromEnv();
  const topics = await pipelineTopics(t, brokers);
  const transcripts = tempDir(t, 'full-pipeline-transcripts-');
  const pipeline = await startPipeline({
    brokers,
    topics,
    fleet: {
      vms: 12,
      devicesPerVm: 2,
      migrationsPerVmPerMinute: 30,
      failureRate: 0.1,
      prepareFailureRate: 0.1,
      seed: 21,
    },
    speed: 'max',
    maxMigrations: 120,
    transcriptsDir: transcripts,
    exporterPort: 0,
    groupSuffix: `-${Date.now()}`,
    logger: quietLogger(),
  });
  t.after(() => pipeline.stop());
  await pipeline.simulator.done;

  const records = replayRecords(transcripts).filter(
    (r) => !(r.type === 'prepare' && r.outcome === 'unfinished'),
  );
  const prepareValues = new Map<string, number[]>();
  const dwellValues = new Map<string, number[]>();
  const outcomeCounts = new Map<string, number>();
  for (const r of records) {
    if (r.type === 'prepare') {
      outcomeCounts.set(
        `${r.target} ${r.outcome}`,
        (outcomeCounts.get(`${r.target} ${r.outcome}`) ?? 0) + 1,
      );
      if (r.seconds === null) continue;
      const key = `${r.target} ${r.outcome}`;
      prepareValues.set(key, [...(prepareValues.get(key) ?? []), r.seconds]);
    } else {
      const key = `${r.state} ${r.next}`;
      dwellValues.set(key, [...(dwellValues.get(key) ?? []), r.seconds]);
    }
  }
  assert.ok((outcomeCounts.get('pre-copy-p2p failed') ?? 0) > 0, 'the fleet has failed prepares');

  const url = `${pipeline.exporter.http.url}/metrics`;
  const metrics = await waitFor(
    async () => {
      const text = await (await fetch(url)).text();
      return counterValue(text, 'vfio_exporter_records_consumed_total') >= records.length
        ? text
        : null;
    },
    {
      timeoutMs: 90_000,
      intervalMs: 200,
      description: `${records.length} transitions in the exporter`,
    },
  );
  assert.equal(counterValue(metrics, 'vfio_exporter_records_consumed_total'), records.length);
  assertSameHistograms(
    histograms(metrics, 'vfio_prepare_duration_seconds', ['target', 'outcome']),
    expectFrom(prepareValues),
    'prepare',
  );
  assertSameHistograms(
    histograms(metrics, 'vfio_state_dwell_seconds', ['state', 'next']),
    expectFrom(dwellValues),
    'dwell',
  );
  for (const [key, count] of outcomeCounts) {
    const [target, outcome] = key.split(' ');
    const total = metrics
      .split('\n')
      .filter(
        (l) =>
          l.startsWith('vfio_prepare_outcomes_total{') &&
          l.includes(`target="${target}"`) &&
          l.includes(`outcome="${outcome}"`),
      )
      .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
    assert.equal(total, count, `outcomes ${key}`);
  }
});
