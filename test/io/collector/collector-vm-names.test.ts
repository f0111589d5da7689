/**
 * One VM name, one source, through the whole collector: sockets in the socket directory that
 * would yield the same VM name, and duplicate explicit targets at start.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { parseCollectorConfig } from '../../../services/collector/config.ts';
import { startCollector } from '../../../services/collector/main.ts';
import type { EventRecord } from '../../../services/shared/core/event-record.ts';
import { createEventCodec } from '../../../services/shared/io/avro-codec.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { runCli } from '../../helpers/cli.ts';
import { startFakeQmpServer } from '../../helpers/qmp-server.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { ackAll, fakeKafka } from './fake-kafka-port.ts';

function tempDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function startWatching(t: TestContext, socketDir: string) {
  const kafka = fakeKafka({ send: ackAll }, 1);
  const config = parseCollectorConfig('test-host', {
    env: {},
    flags: {
      'socket-dir': socketDir,
      'spool-dir': tempDir(t, 'vm-names-spool-'),
      'http-port': '0',
      brokers: ['127.0.0.1:9'],
      'rescan-interval-ms': '100',
    },
  });
  const logs: Record<string, unknown>[] = [];
  const collector = await startCollector(
    config,
    createLogger({
      level: 'info',
      write: (line) => logs.push(JSON.parse(line) as Record<string, unknown>),
    }),
    kafka.port,
  );
  t.after(() => collector.stop());
  const codec = createEventCodec();
  return {
    collector,
    logs,
    records: (): EventRecord[] =>
      kafka.stored.map(
        (r) => (codec.decode(r.value ?? Buffer.alloc(0)) as { value: EventRecord }).value,
      ),
    conflicts: async (): Promise<number> =>
      (await collector.registry.getSingleMetric('vfio_collector_vm_name_conflicts_total')?.get())
        ?.values[0]?.value ?? 0,
  };
}

function conflictLogs(logs: readonly Record<string, unknown>[]): Record<string, unknown>[] {
  return logs.filter((l) => l['msg'] === 'A source was refused: its VM name is taken.');
}

test('web-1.qmp and web-1.sock in the socket directory: one is refused naming both and counted, the other flows', async (t) => {
  const socketDir = tempDir(t, 'vm-names-dir-');
  const qmp = await startFakeQmpServer(join(socketDir, 'web-1.qmp'));
  const sock = await startFakeQmpServer(join(socketDir, 'web-1.sock'));
  t.after(() => Promise.all([qmp.close(), sock.close()]));
  const { logs, records, conflicts } = await startWatching(t, socketDir);

  await waitFor(() => qmp.negotiated || sock.negotiated, { description: 'one socket read' });
  assert.equal(await conflicts(), 1);
  const [winner, loser] = qmp.negotiated ? [qmp, sock] : [sock, qmp];
  assert.equal(loser.written.length, 0, 'the refused socket is never even connected');
  const [refused] = conflictLogs(logs);
  assert.ok(refused !== undefined, 'an error line');
  assert.equal(refused['level'], 'error');
  assert.equal(refused['vm'], 'web-1');
  assert.deepEqual(
    [refused['source'], refused['owner']].sort(),
    [qmp.path, sock.path].sort(),
    'the error names both sockets',
  );
  assert.match(String(refused['problem']), /web-1\.qmp/);
  assert.match(String(refused['problem']), /web-1\.sock/);

  winner.emit('STOP', { n: 1 });
  winner.emit('RESUME', { n: 2 });
  await waitFor(() => records().length === 2, { description: 'the events of the one kept' });
  assert.deepEqual(
    records().map((r) => [r.vm, r.sequence, r.event]),
    [
      ['web-1', 1, 'STOP'],
      ['web-1', 2, 'RESUME'],
    ],
  );
  assert.equal(new Set(records().map((r) => r.sessionId)).size, 1);
});

test('a socket that appears later with a taken name is refused, naming both; the first keeps flowing; once it is gone the refused one is read', async (t) => {
  const socketDir = tempDir(t, 'vm-names-dir-');
  const first = await startFakeQmpServer(join(socketDir, 'web-1.qmp'));
  t.after(() => first.close());
  const { logs, records, conflicts } = await startWatching(t, socketDir);
  await waitFor(() => first.negotiated, { description: 'the first socket read' });
  assert.equal(await conflicts(), 0);

  const second = await startFakeQmpServer(join(socketDir, 'web-1.sock'));
  t.after(() => second.close());
  await waitFor(async () => (await conflicts()) === 1, { description: 'the second refused' });
  const [refused] = conflictLogs(logs);
  assert.equal(refused?.['source'], second.path);
  assert.equal(refused?.['owner'], first.path);
  first.emit('STOP');
  await waitFor(() => records().length === 1, { description: 'the first VM still flows' });
  assert.equal(second.written.length, 0);

  // The owner goes away (QEMU exits, its socket file is removed): the refused one takes over.
  await first.close();
  await waitFor(() => second.negotiated, { description: 'the refused socket read at last' });
  second.emit('RESUME');
  await waitFor(() => records().length === 2, { description: 'its events flow' });
  const [before, after] = records();
  assert.equal(after?.vm, 'web-1');
  assert.equal(after?.event, 'RESUME');
  assert.notEqual(after?.sessionId, before?.sessionId, 'a new source is a new session');
  assert.equal(await conflicts(), 1, 'refused once, not once per rescan');
});

test('duplicate explicit --socket targets: the collector refuses to start, naming both (exit 2)', async (t) => {
  const dir = tempDir(t, 'vm-names-cli-');
  const { status, stderr, stdout } = await runCli([
    'collect',
    '--socket',
    `${join(dir, 'a', 'web-1.qmp')},${join(dir, 'b', 'web-1.sock')}`,
    '--spool-dir',
    join(dir, 'spool'),
    '--http-port',
    '0',
    '--brokers',
    '127.0.0.1:9',
  ]);
  assert.equal(status, 2, stderr);
  assert.equal(stdout, '');
  assert.match(stderr, /VM name "web-1"/);
  assert.ok(stderr.includes(join(dir, 'a', 'web-1.qmp')), stderr);
  assert.ok(stderr.includes(join(dir, 'b', 'web-1.sock')), stderr);
});

test('a tcp: target without a name is named HOST:PORT, and refused at start when another target has that name', () => {
  const required = { brokers: ['127.0.0.1:9'], 'spool-dir': '/nonexistent/spool' };
  const problems = (socket: string[]): string => {
    try {
      parseCollectorConfig('test-host', { env: {}, flags: { ...required, socket } });
    } catch (error) {
      assert.equal((error as { code?: string }).code, 'CONFIG_INVALID');
      return (error as Error).message;
    }
    return '';
  };
  const message = problems(['tcp:10.0.0.5:4444', '10.0.0.5:4444=/run/vms/a.qmp']);
  assert.match(message, /VM name "10\.0\.0\.5:4444"/);
  assert.ok(message.includes('tcp:10.0.0.5:4444') && message.includes('/run/vms/a.qmp'), message);
  assert.match(
    problems(['web=tcp:10.0.0.5:4444', 'web=/run/web.qmp']),
    /tcp:10\.0\.0\.5:4444.*\/run\/web\.qmp|\/run\/web\.qmp.*tcp:10\.0\.0\.5:4444/,
  );
  // The same target twice is one source, read once: not a conflict.
  assert.equal(problems(['tcp:10.0.0.5:4444', 'tcp:10.0.0.5:4444']), '');
});
