import { test } from 'node:test';
import { startPipeline } from '../../../services/cli/demo/pipeline.ts';
import { brokersFromEnv } from '../../helpers/kafka.ts';
import { quietLogger, tempDir } from '../collector/collector-harness.ts';
import { assertExporterMatchesReplay, pipelineTopics } from './pipeline-harness.ts';

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

  const url = `${pipeline.exporter.http.url}/metrics`;
  await assertExporterMatchesReplay(url, transcripts);
});
