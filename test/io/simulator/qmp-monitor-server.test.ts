import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { QmpDecoder } from '../../../services/shared/core/qmp-decoder.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { QmpMonitorServer } from '../../../services/simulator/io/qmp-monitor-server.ts';
import { QmpTestClient } from './qmp-test-client.ts';

const GREETING =
  '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 11}, "package": "vfio-telemetry-simulator"}, "capabilities": ["oob"]}}\r\n';
const STOP_EVENT = '{"timestamp": {"seconds": 1795798176, "microseconds": 5}, "event": "STOP"}\r\n';

async function startMonitor(
  t: TestContext,
  options: { pretty?: boolean; transcript?: boolean } = {},
): Promise<{ monitor: QmpMonitorServer; path: string; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'sim-monitor-'));
  const path = join(dir, 'vm-000.qmp');
  const monitor = new QmpMonitorServer({
    vm: 'vm-000',
    listen: { path },
    pretty: options.pretty ?? false,
    ...(options.transcript === true ? { transcriptPath: join(dir, 'transcript.qmp') } : {}),
    status: () => 'running',
    log: createLogger({ write: () => undefined }),
  });
  await monitor.start();
  t.after(async () => {
    await monitor.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { monitor, path, dir };
}

async function connect(t: TestContext, path: string): Promise<QmpTestClient> {
  const client = await QmpTestClient.connect(path);
  t.after(() => client.close());
  return client;
}

test('greets, refuses commands before negotiation, negotiates echoing id, answers like QEMU 7.2', async (t) => {
  const { monitor, path } = await startMonitor(t);
  const client = await connect(t, path);
  await client.waitFor(() => client.text === GREETING, 'greeting');

  client.send('{"execute":"query-status"}\n');
  const refused =
    '{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with \'qmp_capabilities\'"}}\r\n';
  await client.waitFor(() => client.text.endsWith(refused), 'refusal before negotiation');

  assert.equal(monitor.sendEvent(STOP_EVENT), false, 'no events before negotiation');

  // Split across writes: input is a JSON stream, not lines.
  client.send('{"execute":"qmp_capa');
  client.send('bilities","arguments":{"enable":["oob"]},"id":"neg"}');
  await client.waitFor(
    () => client.text.endsWith('{"return": {}, "id": "neg"}\r\n'),
    'negotiation',
  );

  client.send(
    '{"execute": "no-such-command", "id": 2}\n{"execute":"query-status","id":3}\n{"execute": }\n',
  );
  await client.waitFor(() => client.lines().length === 6, 'three answers');
  assert.deepEqual(client.lines().slice(3), [
    '{"id": 2, "error": {"class": "CommandNotFound", "desc": "The command no-such-command has not been found"}}',
    '{"return": {"status": "running", "running": true}, "id": 3}',
    '{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}',
  ]);

  assert.equal(monitor.sendEvent(STOP_EVENT), true);
  await client.waitFor(() => client.text.endsWith(STOP_EVENT), 'event after negotiation');
  assert.deepEqual(
    monitor.commands().map((c) => c.command),
    ['query-status', 'qmp_capabilities', 'no-such-command', 'query-status', null],
  );
});

test('serves one client at a time; the next one gets its own greeting when the first leaves', async (t) => {
  const { monitor, path } = await startMonitor(t);
  const first = await connect(t, path);
  await first.waitFor(() => first.text === GREETING, 'first greeting');
  const second = await connect(t, path);
  second.send('{"execute":"qmp_capabilities"}\n');
  // A round trip on the first client: by its end the server has seen the second connection.
  first.send('{"execute":"qmp_capabilities"}\n');
  await first.waitFor(() => first.lines().length === 2, 'first negotiation');
  monitor.sendEvent(STOP_EVENT);
  await first.waitFor(() => first.text.endsWith(STOP_EVENT), 'event on first');
  assert.equal(second.text, '', 'the waiting client reads nothing');

  await first.close();
  // The second client's queued command is read only now, after its greeting.
  await second.waitFor(() => second.text === GREETING + '{"return": {}}\r\n', 'second greeting');
  assert.deepEqual(
    monitor.commands().map((c) => [c.client, c.command]),
    [
      [1, 'qmp_capabilities'],
      [2, 'qmp_capabilities'],
    ],
  );
});

test('pretty=on writes multi-line JSON with 4-space indent and CRLF, as QEMU 7.2 does', async (t) => {
  const { monitor, path } = await startMonitor(t, { pretty: true });
  const client = await connect(t, path);
  const greeting = [
    '{',
    '    "QMP": {',
    '        "version": {',
    '            "qemu": {',
    '                "micro": 0,',
    '                "minor": 0,',
    '                "major": 11',
    '            },',
    '            "package": "vfio-telemetry-simulator"',
    '        },',
    '        "capabilities": [',
    '            "oob"',
    '        ]',
    '    }',
    '}',
    '',
  ].join('\r\n');
  await client.waitFor(() => client.text === greeting, 'pretty greeting');
  client.send('{"execute":"qmp_capabilities"}');
  await client.waitFor(
    () => client.text.endsWith('{\r\n    "return": {\r\n    }\r\n}\r\n'),
    'reply',
  );
  monitor.sendEvent('{\r\n    "event": "STOP"\r\n}\r\n');
  await client.waitFor(() => client.text.endsWith('"STOP"\r\n}\r\n'), 'event');
  const kinds = new QmpDecoder().push(Buffer.from(client.text)).map((m) => m.kind);
  assert.deepEqual(kinds.slice(0, 2), ['greeting', 'return']);
});

test('the transcript holds exactly the bytes the clients read', async (t) => {
  const { monitor, path, dir } = await startMonitor(t, { transcript: true });
  const first = await connect(t, path);
  first.send('{"execute":"qmp_capabilities","id":1}');
  await first.waitFor(() => first.lines().length === 2, 'negotiation');
  monitor.sendEvent(STOP_EVENT);
  await first.waitFor(() => first.text.endsWith(STOP_EVENT), 'event');
  await first.close();
  const second = await connect(t, path);
  await second.waitFor(() => second.text === GREETING, 'second greeting');
  await monitor.close();
  await second.waitForEnd();
  assert.equal(await readFile(join(dir, 'transcript.qmp'), 'utf8'), first.text + second.text);
});
