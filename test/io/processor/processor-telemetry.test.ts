import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import {
  createProcessorTelemetry,
  MAX_CLOCK_OFFSET_HOSTS,
} from '../../../services/processor/io/processor-telemetry.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { metricValue } from '../../helpers/metrics-text.ts';

test('host clock offsets: one series per host up to the cap, the least recently seen goes first; the histogram counts every host', async () => {
  const registry = new Registry();
  const lines: string[] = [];
  const telemetry = createProcessorTelemetry(
    registry,
    createLogger({ write: (l) => lines.push(l) }),
  );
  const hosts = Array.from({ length: MAX_CLOCK_OFFSET_HOSTS }, (_, i) => `h${i}`);
  telemetry.hostClockOffsets(new Map(hosts.map((h) => [h, -2000])));
  // h0 is seen again, so h1 is the least recently seen when one more host arrives.
  telemetry.hostClockOffsets(new Map([['h0', -1000]]));
  const YEAR_MICROS = 365 * 24 * 3600 * 1e6;
  telemetry.hostClockOffsets(new Map([['ahead', YEAR_MICROS]]));

  const gauge = (await registry.getSingleMetric('vfio_processor_host_clock_offset_seconds')?.get())
    ?.values;
  assert.equal(gauge?.length, MAX_CLOCK_OFFSET_HOSTS);
  const byHost = new Map(gauge?.map((v) => [v.labels['host'], v.value]));
  assert.equal(byHost.get('h0'), -0.001);
  assert.equal(byHost.has('h1'), false);
  assert.equal(byHost.get('ahead'), YEAR_MICROS / 1e6);

  assert.equal(
    metricValue(await registry.metrics(), 'vfio_processor_clock_offset_seconds_count'),
    MAX_CLOCK_OFFSET_HOSTS + 2,
  );
  // The host a year ahead is named in the log, once.
  const warned = lines.filter((l) => l.includes('"host":"ahead"'));
  assert.equal(warned.length, 1);
  assert.match(warned[0] ?? '', /more than a second/);
});
