import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import {
  CAPABILITIES_COMMAND,
  QmpConnection,
  type QmpConnectionHandler,
  type QmpSession,
} from '../../../services/collector/io/qmp-connection.ts';
import { ReadBudget } from '../../../services/collector/io/read-budget.ts';
import type { QmpEvent, RejectReason } from '../../../services/shared/core/qmp-message.ts';
import { startFakeQmpServer, type FakeQmpServer } from '../../helpers/qmp-server.ts';

async function waitUntil(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Seen {
  sessions: { id: string; reconnect: boolean }[];
  ended: string[];
  events: { sessionId: string; sequence: number; name: string; ts: number }[];
  rejected: RejectReason[];
  connectFailures: number;
}

async function setup(
  t: TestContext,
  readBudget?: ReadBudget,
): Promise<{ server: FakeQmpServer; seen: Seen; connection: QmpConnection; path: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'qmp-'));
  const path = join(dir, 'vm-a.qmp');
  const server = await startFakeQmpServer(path);
  const seen: Seen = { sessions: [], ended: [], events: [], rejected: [], connectFailures: 0 };
  const handler: QmpConnectionHandler = {
    message: () => {},
    rejected: (_vm, invalid) => seen.rejected.push(invalid.reason),
    sessionStarted: (s, _g, reconnect) => seen.sessions.push({ id: s.sessionId, reconnect }),
    sessionEnded: (s: QmpSession) => seen.ended.push(s.sessionId),
    connectFailed: () => seen.connectFailures++,
    event: (s: QmpSession, e: QmpEvent) => {
      s.sequence++;
      seen.events.push({
        sessionId: s.sessionId,
        sequence: s.sequence,
        name: e.name,
        ts: e.timestampMicros,
      });
    },
  };
  const connection = new QmpConnection({
    target: { vm: 'vm-a', address: { kind: 'unix', path } },
    backoff: { initialMs: 10, maxMs: 50, multiplier: 2 },
    greetingTimeoutMs: 300,
    handler,
    ...(readBudget === undefined ? {} : { readBudget }),
  });
  t.after(async () => {
    await connection.stop();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { server, seen, connection, path };
}

/** Every connection wrote exactly the capabilities command and nothing else. */
function assertOnlyCapabilities(server: FakeQmpServer): void {
  assert.ok(server.written.length > 0);
  for (const bytes of server.written) assert.equal(bytes.toString('utf8'), CAPABILITIES_COMMAND);
}

test('negotiates: greeting, then qmp_capabilities, then events with sequence from 1', async (t) => {
  const { server, seen, connection } = await setup(t);
  connection.start();
  await waitUntil(() => server.negotiated && seen.sessions.length === 1, 'negotiation');
  const ts = [
    server.emit('STOP'),
    server.emit('RESUME'),
    server.emit('MIGRATION', { status: 'setup' }),
  ];
  await waitUntil(() => seen.events.length === 3, 'three events');
  assert.deepEqual(
    seen.events.map((e) => [e.sequence, e.name, e.ts]),
    [
      [1, 'STOP', ts[0]],
      [2, 'RESUME', ts[1]],
      [3, 'MIGRATION', ts[2]],
    ],
  );
  assert.equal(connection.connected, true);
  assertOnlyCapabilities(server);
});

test('a reconnect starts a new session whose sequence restarts at 1', async (t) => {
  const { server, seen, connection } = await setup(t);
  connection.start();
  await waitUntil(() => seen.sessions.length === 1, 'first session');
  server.emit('STOP');
  server.emit('RESUME');
  await waitUntil(() => seen.events.length === 2, 'events of the first session');
  server.dropClient();
  await waitUntil(() => seen.sessions.length === 2, 'second session');
  server.emit('STOP');
  await waitUntil(() => seen.events.length === 3, 'event of the second session');
  const [first, second] = seen.sessions;
  assert.ok(first && second);
  assert.notEqual(first.id, second.id);
  assert.deepEqual([first.reconnect, second.reconnect], [false, true]);
  assert.deepEqual(seen.ended, [first.id]);
  assert.deepEqual(seen.events[2], {
    sessionId: second.id,
    sequence: 1,
    name: 'STOP',
    ts: seen.events[2]?.ts,
  });
  assert.equal(server.written.length, 2);
  assertOnlyCapabilities(server);
});

test('malformed QMP is counted and never fatal', async (t) => {
  const { server, seen, connection } = await setup(t);
  connection.start();
  await waitUntil(() => seen.sessions.length === 1, 'session');
  server.sendRaw('garbage line\r\n');
  server.sendRaw('[1, 2]\r\n');
  server.sendRaw('{"event": "STOP", "timestamp": {"seconds": -1, "microseconds": -1}}\r\n');
  server.sendRaw('{"unknown": true}\r\n');
  server.sendRaw(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d, 0x0d, 0x0a]));
  server.sendRaw('{"event": "STOP", "timestamp": {"seconds": 1, "micro');
  server.sendRaw('\r\n');
  const ts = server.emit('RESUME');
  await waitUntil(() => seen.events.length === 1, 'the valid event after the garbage');
  assert.deepEqual(seen.rejected, [
    'not_json',
    'not_object',
    'bad_timestamp',
    'not_qmp',
    'invalid_utf8',
    'not_json',
  ]);
  assert.deepEqual(
    seen.events.map((e) => [e.sequence, e.name, e.ts]),
    [[1, 'RESUME', ts]],
  );
  assert.equal(seen.sessions.length, 1, 'no reconnect was needed');
  assertOnlyCapabilities(server);
});

test('a socket that never greets (another client holds the monitor) is retried after a timeout', async (t) => {
  const { server, seen, connection, path } = await setup(t);
  // Hold the monitor with another client, as a second collector or a human with socat would.
  const { createConnection } = await import('node:net');
  const holder = createConnection({ path });
  t.after(() => holder.destroy());
  await waitUntil(() => server.written.length === 1, 'the holder to be served');
  connection.start();
  await waitUntil(() => seen.connectFailures >= 1, 'a greeting timeout');
  assert.equal(seen.sessions.length, 0);
  holder.destroy();
  await waitUntil(() => seen.sessions.length === 1, 'a session once the holder left');
  assert.equal(server.written[0]?.length, 0, 'the holder wrote nothing');
  for (const bytes of server.written.slice(1)) {
    assert.ok(bytes.length === 0 || bytes.toString() === CAPABILITIES_COMMAND);
  }
});

test('a missing socket is retried with backoff until it appears', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'qmp-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'late.qmp');
  let failures = 0;
  let started = 0;
  const connection = new QmpConnection({
    target: { vm: 'late', address: { kind: 'unix', path } },
    backoff: { initialMs: 5, maxMs: 20, multiplier: 2 },
    greetingTimeoutMs: 1000,
    handler: {
      message: () => {},
      rejected: () => {},
      sessionStarted: () => started++,
      sessionEnded: () => {},
      connectFailed: () => failures++,
      event: () => {},
    },
  });
  t.after(() => connection.stop());
  connection.start();
  await waitUntil(() => failures >= 3, 'three failed attempts');
  const server = await startFakeQmpServer(path);
  t.after(() => server.close());
  await waitUntil(() => started === 1, 'a session');
});

test('regression: a retired connection (socket file gone) still reads what QEMU wrote before it exited', async (t) => {
  const { server, seen, connection } = await setup(t);
  connection.start();
  await waitUntil(() => server.negotiated && seen.sessions.length === 1, 'negotiation');
  // QEMU writes its last events and exits; the directory watcher sees the socket vanish before
  // the client has read them. Retiring (not stopping) must still deliver every one.
  const ts = Array.from({ length: 50 }, (_, i) => server.emit('MIGRATION_PASS', { pass: i + 1 }));
  server.dropClient();
  await connection.retire();
  assert.deepEqual(
    seen.events.map((e) => e.ts),
    ts,
  );
  assert.equal(seen.sessions.length, 1, 'no reconnect after retiring');
});

test('with a read budget smaller than any chunk (every chunk after the first of a turn waits, its socket paused), events arrive complete and in order', async (t) => {
  const budget = new ReadBudget(1);
  const { server, seen, connection } = await setup(t, budget);
  connection.start();
  await waitUntil(() => server.negotiated && seen.sessions.length === 1, 'negotiation');
  const ts: number[] = [];
  for (let i = 0; i < 3000; i++) {
    ts.push(server.emit('MIGRATION_PASS', { pass: i + 1 }));
    // Several writes, so that chunks queue up in the socket behind a paused reader.
    if (i % 500 === 499) await new Promise((r) => setImmediate(r));
  }
  await waitUntil(() => seen.events.length === ts.length, 'every event', 10_000);
  assert.deepEqual(
    seen.events.map((e) => e.ts),
    ts,
  );
  assert.deepEqual(
    seen.events.map((e) => e.sequence),
    ts.map((_, i) => i + 1),
  );
  assert.equal(budget.pending, 0);
});

test('with a read budget, a retired connection still decodes the chunks that waited for their turn before the socket closed', async (t) => {
  const budget = new ReadBudget(1);
  const { server, seen, connection } = await setup(t, budget);
  connection.start();
  await waitUntil(() => server.negotiated && seen.sessions.length === 1, 'negotiation');
  // Few enough bytes for the kernel's socket buffers: the fake's destroy drops what is not there.
  const ts = Array.from({ length: 1000 }, (_, i) => server.emit('MIGRATION_PASS', { pass: i + 1 }));
  await new Promise((r) => setTimeout(r, 20));
  server.dropClient();
  await connection.retire();
  assert.deepEqual(
    seen.events.map((e) => e.ts),
    ts,
  );
  assert.equal(budget.pending, 0);
});
