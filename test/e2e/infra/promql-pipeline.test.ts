/**
 * The shipped rules and dashboards against the real thing: a running pipeline (simulated fleet →
 * collector → Kafka → processor → exporter, in-process) scraped by a real Prometheus 2.42 and 3
 * side by side. The services must expose exactly the documented metric names, and every dashboard
 * and recording-rule expression must parse and return series from what the services really
 * export, on both versions. (Which alerts can fire is checked against deliberately troubled
 * stand-ins in promql.test.ts.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startPipeline } from '../../../services/cli/demo/pipeline.ts';
import { documentedMetricNames } from '../../helpers/metrics-doc.ts';
import { brokersFromEnv, testKafkaPort } from '../../helpers/kafka.ts';
import {
  pollUntil,
  repoExpressions,
  repoRuleFiles,
  PROMETHEUS_VERSIONS,
  startPrometheus,
} from '../../helpers/prometheus.ts';
import { quietLogger } from '../collector/collector-harness.ts';
import { pipelineTopics } from '../pipeline/pipeline-harness.ts';

test('a running pipeline scraped by Prometheus 2.42 and 3: documented names, and every panel and recording rule returns series', async (t) => {
  const brokers = brokersFromEnv();
  const topics = await pipelineTopics(t, brokers);
  const pipeline = await startPipeline({
    brokers,
    topics,
    fleet: {
      vms: 6,
      devicesPerVm: 2,
      migrationsPerVmPerMinute: 6,
      failureRate: 0.2,
      prepareFailureRate: 0.2,
      seed: 5,
    },
    speed: 10,
    exporterPort: 0,
    groupSuffix: `-${Date.now()}`,
    logger: quietLogger(),
  });
  t.after(() => pipeline.stop());
  // One poison record, so the dead-letter series exist as they would in a real fleet's life.
  const port = testKafkaPort(t, brokers);
  const producer = await port.producer();
  const sent = await producer.send([
    { topic: topics.events, partition: 0, key: Buffer.from('x/y'), value: Buffer.from('not avro') },
  ]);
  assert.deepEqual(sent.refused, []);
  await producer.close();

  const documented = await documentedMetricNames({ scrapedOnly: true });
  const served = new Set<string>();
  for (const registry of [
    pipeline.collector.registry,
    pipeline.processor.registry,
    pipeline.exporter.registry,
  ]) {
    for (const m of await registry.getMetricsAsJSON()) {
      if (!/_(process|nodejs)_/.test(m.name)) served.add(m.name);
    }
  }
  assert.deepEqual(
    [...served].sort(),
    [...documented].sort(),
    'services expose exactly docs/metrics.md',
  );

  const address = (url: string): string => url.replace(/^http:\/\//, '');
  const ruleFiles = await repoRuleFiles();
  // Prometheus 2.42 and 3 scrape the same pipeline side by side: one pipeline, both versions.
  const prometheuses = await Promise.all(
    PROMETHEUS_VERSIONS.map(async (version) => ({
      version,
      prometheus: await startPrometheus({
        binary: version.prometheus,
        t,
        targets: {
          'vfio-collector': [address(pipeline.collector.http.url)],
          'vfio-processor': [address(pipeline.processor.http.url)],
          'vfio-exporter': [address(pipeline.exporter.http.url)],
        },
        ruleFiles,
      }),
    })),
  );

  const expressions = await repoExpressions({ withAlerts: false });
  assert.ok(expressions.length >= 40, `only ${expressions.length} expressions`);
  const empty: string[] = [];
  const pending = new Set(
    prometheuses.flatMap(({ version, prometheus }) =>
      expressions.map((source) => ({ version, prometheus, source })),
    ),
  );
  await pollUntil(
    'every expression to return series',
    async () => {
      for (const item of [...pending]) {
        const { prometheus, source } = item;
        const response = await prometheus.query(source.expr);
        assert.equal(
          response.status,
          'success',
          `${item.version.name} ${source.where}: ${response.error ?? ''}\n${source.expr}`,
        );
        if (((response.data as { result: unknown[] }).result ?? []).length > 0)
          pending.delete(item);
      }
      return pending.size === 0 ? true : undefined;
    },
    90_000,
    1000,
  ).catch(() => {
    for (const { version, source } of pending) {
      empty.push(`${version.name} ${source.where}: ${source.expr}`);
    }
  });
  assert.deepEqual(
    empty,
    [],
    `expressions without series on a running pipeline:\n${empty.join('\n')}`,
  );
});
