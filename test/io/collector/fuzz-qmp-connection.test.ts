/**
 * Hostile QMP bytes against the whole collector (socket → connection handler → record builder →
 * spool → Kafka, with an in-memory Kafka): one VM's monitor sends generated hostile input
 * (test/helpers/fuzz-qmp.ts), another VM's monitor sends ordinary events. A bad input costs at
 * most that input: the process lives, no connection is dropped, the event after each hostile
 * piece (next line) gets through, the other VM's events all arrive in one session, every
 * rejection is counted, and the warning lines about rejections stay within one per reason per
 * 10 s rate window.
 *
 * Fixed seed in CI; `FUZZ_RUNS=500 FUZZ_SEED=$RANDOM node --import tsx --test
 * test/io/collector/fuzz-qmp-connection.test.ts` for a longer hunt.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import fc from 'fast-check';
import { parseCollectorConfig } from '../../../services/collector/config.ts';
import { startCollector } from '../../../services/collector/main.ts';
import type { EventRecord } from '../../../services/shared/core/event-record.ts';
import { REJECT_REASONS } from '../../../services/shared/core/qmp-message.ts';
import { createEventCodec } from '../../../services/shared/io/avro-codec.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { FUZZ_SEED, fuzzRuns, piece } from '../../helpers/fuzz-qmp.ts';
import { startFakeQmpServer } from '../../helpers/qmp-server.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { ackAll, fakeKafka } from './fake-kafka-port.ts';

function tempDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const sentinel = (n: number): string =>
  JSON.stringify({
    event: 'SENTINEL',
    timestamp: { seconds: 1_795_798_000 + n, microseconds: 0 },
    data: { n },
  }) + '\r\n';

test('hostile QMP bytes cost only themselves: the process, the connection, the next event and the other VM carry on', async (t) => {
  const vmDir = tempDir(t, 'fuzz-qmp-vm-');
  const hostile = await startFakeQmpServer(join(vmDir, 'hostile.qmp'));
  const calm = await startFakeQmpServer(join(vmDir, 'calm.qmp'));
  t.after(() => Promise.all([hostile.close(), calm.close()]));
  const kafka = fakeKafka({ send: ackAll }, 2);
  const config = parseCollectorConfig('test-host', {
    env: {},
    flags: {
      socket: [`hostile=${hostile.path}`, `calm=${calm.path}`],
      'spool-dir': join(tempDir(t, 'fuzz-qmp-spool-'), 'spool'),
      'http-port': '0',
      brokers: ['127.0.0.1:9'],
      'linger-ms': '0',
    },
  });
  const warnings: string[] = [];
  const collector = await startCollector(
    config,
    createLogger({
      level: 'warn',
      write: (line) => warnings.push((JSON.parse(line) as { msg: string }).msg),
    }),
    kafka.port,
  );
  t.after(() => collector.stop());
  await waitFor(() => hostile.negotiated && calm.negotiated, { description: 'negotiated' });
  const metric = async (name: string): Promise<number> =>
    ((await collector.registry.getSingleMetric(name)?.get())?.values ?? []).reduce(
      (sum, v) => sum + v.value,
      0,
    );
  const codec = createEventCodec();
  let decodedUpTo = 0;
  const records: EventRecord[] = [];
  const stored = (): EventRecord[] => {
    for (; decodedUpTo < kafka.stored.length; decodedUpTo++) {
      const value = kafka.stored[decodedUpTo]?.value ?? Buffer.alloc(0);
      records.push({ ...(codec.decode(value) as { value: EventRecord }).value });
    }
    return records;
  };
  const started = Date.now();

  let n = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(piece, { minLength: 1, maxLength: 4 }), async (pieces) => {
      const first = n + 1;
      for (const p of pieces) {
        n++;
        hostile.sendRaw(Buffer.concat([p, Buffer.from(`\r\n${sentinel(n)}`)]));
        calm.emit('STOP', { n });
      }
      const last = n;
      await waitFor(
        () => {
          const got = stored();
          const hostileSeen = new Set(
            got.filter((r) => r.vm === 'hostile' && r.event === 'SENTINEL').map((r) => r.data),
          );
          const calmSeen = new Set(got.filter((r) => r.vm === 'calm').map((r) => r.data));
          for (let i = first; i <= last; i++) {
            if (!hostileSeen.has(`{"n":${i}}`) || !calmSeen.has(`{"n":${i}}`)) return false;
          }
          return true;
        },
        { description: `events ${first}..${last} of both VMs`, timeoutMs: 30_000, intervalMs: 5 },
      );
    }),
    { seed: FUZZ_SEED, numRuns: fuzzRuns(25) },
  );

  const calmRecords = stored().filter((r) => r.vm === 'calm');
  assert.deepEqual(
    calmRecords.map((r) => r.data),
    Array.from({ length: n }, (_, i) => `{"n":${i + 1}}`),
    'the calm VM: every event, in order',
  );
  assert.equal(new Set(calmRecords.map((r) => r.sessionId)).size, 1, 'the calm VM: one session');
  assert.equal(await metric('vfio_collector_reconnects_total'), 0, 'no connection dropped');
  assert.equal(collector.telemetry.kafkaIsUp, true);
  const rejected = await metric('vfio_collector_qmp_rejected_total');
  assert.ok(rejected > 0, 'the hostile input was rejected, counted');
  const windows = Math.ceil((Date.now() - started) / 10_000) + 1;
  const lines = warnings.filter((w) => w === 'A QMP message was rejected.').length;
  assert.ok(
    lines <= REJECT_REASONS.length * windows,
    `${lines} warning lines for ${rejected} rejections: at most one per reason per window`,
  );
});
