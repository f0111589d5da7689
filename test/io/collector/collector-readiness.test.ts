/**
 * /readyz of the whole collector against an in-memory Kafka whose produce calls fail: spooling
 * alone keeps it ready, a spool that makes no progress for stallTimeoutMs does not.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { parseCollectorConfig } from '../../../services/collector/config.ts';
import { startCollector } from '../../../services/collector/main.ts';
import { TelemetryError } from '../../../services/shared/core/errors.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { startFakeQmpServer } from '../../helpers/qmp-server.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { ackAll, fakeKafka } from './fake-kafka-port.ts';

function tempDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('/readyz fails with the reason while the spool holds events and Kafka stores none', async (t) => {
  const server = await startFakeQmpServer(join(tempDir(t, 'readiness-vm-'), 'vm-1.qmp'));
  t.after(() => server.close());
  let failing = true;
  const kafka = fakeKafka(
    {
      send: (records) =>
        failing
          ? new TelemetryError('KAFKA_PUBLISH_FAILED', 'NOT_ENOUGH_REPLICAS', {
              details: { written: [] },
            })
          : ackAll(records),
    },
    1,
  );
  const config = parseCollectorConfig('test-host', {
    env: {},
    flags: {
      socket: [`vm-1=${server.path}`],
      'spool-dir': tempDir(t, 'readiness-spool-'),
      'http-port': '0',
      brokers: ['127.0.0.1:9'],
      'kafka-retry-max-ms': '50',
      'stall-timeout-ms': '500',
    },
  });
  const collector = await startCollector(
    config,
    createLogger({ level: 'error', write: () => {} }),
    kafka.port,
  );
  t.after(() => collector.stop());
  const readyz = async (): Promise<{ status: number; body: string }> => {
    const response = await fetch(`${collector.http.url}/readyz`);
    return { status: response.status, body: await response.text() };
  };
  await waitFor(() => server.negotiated, { description: 'negotiated' });
  assert.equal((await readyz()).status, 200, 'nothing to send is not a stall');

  server.emit('STOP');
  await waitFor(() => kafka.calls.length > 0, { description: 'a produce call' });
  const stalled = await waitFor(
    async () => {
      const r = await readyz();
      return r.status === 503 ? r : null;
    },
    { description: '/readyz 503' },
  );
  assert.match(
    stalled.body,
    /kafka: no event acknowledged for \d+ s while 1 wait in the spool \(last error: KAFKA_PUBLISH_FAILED: .*\)/,
  );

  failing = false;
  await waitFor(async () => (await readyz()).status === 200, { description: 'ready again' });
  assert.equal(kafka.stored.length, 1);
});
