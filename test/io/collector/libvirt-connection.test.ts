/**
 * The libvirt connection against a fake libvirtd (libvirt-fake-server.ts): what it sends (only
 * what registration needs), sessions per domain id and per connection, clear errors for refused
 * authentication and registration, keepalive, and — through the whole collector — hostile
 * frames that never stop it.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import fc from 'fast-check';
import { parseCollectorConfig } from '../../../services/collector/config.ts';
import {
  encodeMessage,
  encodeMonitorEventMessage,
  KEEPALIVE_PROC,
  KEEPALIVE_PROGRAM,
  MESSAGE_TYPE,
  QEMU_PROC,
  QEMU_PROGRAM,
  REMOTE_PROC,
  REMOTE_PROGRAM,
  XdrReader,
  encodeKeepalive,
} from '../../../services/collector/core/libvirt-protocol.ts';
import type { LibvirtTarget } from '../../../services/collector/core/libvirt-target.ts';
import { startCollector } from '../../../services/collector/main.ts';
import {
  LibvirtConnection,
  type LibvirtConnectionHandler,
} from '../../../services/collector/io/libvirt-connection.ts';
import type { QmpSession } from '../../../services/collector/io/qmp-connection.ts';
import type { QmpEvent } from '../../../services/shared/core/qmp-message.ts';
import { createEventCodec } from '../../../services/shared/io/avro-codec.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { startFakeQmpServer } from '../../helpers/qmp-server.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { ackAll, fakeKafka } from './fake-kafka-port.ts';
import { startFakeLibvirtd, type FakeLibvirtdOptions } from './libvirt-fake-server.ts';
import { fetchMetricsText, metricValue } from '../../helpers/metrics-text.ts';

function tempDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const D1 = { name: 'd1', uuid: '11111111-2222-3333-4444-555555555555', id: 1 };

interface Recorded {
  log: string[];
  events: { session: QmpSession; event: QmpEvent }[];
  failures: string[];
  handler: LibvirtConnectionHandler;
}

function recordingHandler(): Recorded {
  const r: Recorded = { log: [], events: [], failures: [], handler: undefined as never };
  r.handler = {
    connected: (_t, _s, reconnect) => r.log.push(`connected reconnect=${reconnect}`),
    disconnected: () => r.log.push('disconnected'),
    connectFailed: (_t, error) => r.failures.push(error instanceof Error ? error.message : ''),
    claim: () => true,
    release: () => {},
    sessionStarted: (s) => r.log.push(`start ${s.vm} ${s.sessionId}`),
    sessionEnded: (s, reason) => r.log.push(`end ${s.vm} ${s.sessionId} ${reason}`),
    event: (session, event) => r.events.push({ session, event }),
    rejected: (_vm, invalid) => r.log.push(`rejected ${invalid.reason}`),
  };
  return r;
}

async function connectTo(
  t: TestContext,
  options: FakeLibvirtdOptions = {},
  events = ['STOP', 'RESUME', 'SHUTDOWN'],
) {
  const path = join(tempDir(t, 'fake-libvirtd-'), 'libvirt-sock');
  const server = await startFakeLibvirtd(path, options);
  t.after(() => server.close());
  const recorded = recordingHandler();
  const target: LibvirtTarget = { text: 'qemu:///system', name: 'qemu:///system', sockets: [path] };
  const connection = new LibvirtConnection({
    target,
    events,
    vmName: 'name',
    backoff: { initialMs: 10, maxMs: 50, multiplier: 2 },
    keepaliveIntervalMs: 40,
    replyTimeoutMs: 2000,
    handler: recorded.handler,
  });
  connection.start();
  t.after(() => connection.stop());
  return { server, recorded, connection };
}

test('the collector sends libvirt nothing but what the registration needs', async (t) => {
  const { server, recorded } = await connectTo(t);
  await waitFor(() => recorded.log.includes('connected reconnect=false'));
  server.sendEvent({ domain: D1, event: 'STOP' });
  // The server pings; the collector answers. Then silence: the collector pings.
  server.sendRaw(encodeKeepalive(KEEPALIVE_PROC.PING));
  await waitFor(() =>
    server.received.some(
      (m) => m.header.prog === KEEPALIVE_PROGRAM && m.header.proc === KEEPALIVE_PROC.PING,
    ),
  );
  await waitFor(() => recorded.events.length === 1);

  const sent = server.received.map(({ header, body }) => {
    if (header.prog === KEEPALIVE_PROGRAM) {
      assert.equal(header.type, MESSAGE_TYPE.MESSAGE);
      assert.equal(body.length, 0);
      return header.proc === KEEPALIVE_PROC.PING ? 'PING' : 'PONG';
    }
    assert.equal(header.type, MESSAGE_TYPE.CALL);
    const r = new XdrReader(body);
    if (header.prog === REMOTE_PROGRAM && header.proc === REMOTE_PROC.AUTH_LIST) return 'AUTH_LIST';
    if (header.prog === REMOTE_PROGRAM && header.proc === REMOTE_PROC.CONNECT_OPEN) {
      return `OPEN ${r.optionalString()} flags=${r.uint()}`;
    }
    if (header.prog === QEMU_PROGRAM && header.proc === QEMU_PROC.MONITOR_EVENT_REGISTER) {
      return `REGISTER dom=${r.uint() === 0 ? 'NULL' : 'set'} ${r.optionalString()} flags=${r.uint()}`;
    }
    return `UNEXPECTED prog=${header.prog} proc=${header.proc}`;
  });
  const handshake = sent.filter((s) => s !== 'PING' && s !== 'PONG');
  assert.deepEqual(handshake, [
    'AUTH_LIST',
    'OPEN qemu:///system flags=0',
    'REGISTER dom=NULL STOP flags=0',
    'REGISTER dom=NULL RESUME flags=0',
    'REGISTER dom=NULL SHUTDOWN flags=0',
  ]);
  assert.ok(sent.includes('PONG'), 'the server ping was answered');
  assert.deepEqual(
    server.received.map((m) => m.header.serial).filter((s) => s > 0),
    [1, 2, 3, 4, 5],
    'serials 1, 2, 3 ...',
  );
});

test('a session per domain id and per connection', async (t) => {
  const { server, recorded } = await connectTo(t);
  await waitFor(() => server.registered() === 1);
  server.sendEvent({ domain: D1, event: 'STOP', micros: 1 });
  server.sendEvent({ domain: D1, event: 'RESUME', micros: 2 });
  server.sendEvent({ domain: { ...D1, id: 2 }, event: 'RESUME', micros: 3 });
  await waitFor(() => recorded.events.length === 3);
  server.dropClients();
  await waitFor(() => recorded.log.includes('connected reconnect=true'), { timeoutMs: 5000 });
  server.sendEvent({ domain: { ...D1, id: 2 }, event: 'STOP', micros: 4 });
  server.sendEvent({ domain: { ...D1, id: 2 }, event: 'SHUTDOWN', micros: 5 });
  server.sendEvent({ domain: { ...D1, id: 2 }, event: 'RESUME', micros: 6 });
  await waitFor(() => recorded.events.length === 6);

  const sessions = recorded.events.map((e) => e.session.sessionId);
  assert.equal(sessions[0], sessions[1]);
  assert.notEqual(sessions[1], sessions[2], 'a new domain id is a new session');
  assert.notEqual(sessions[2], sessions[3], 'a new connection is a new session');
  assert.equal(sessions[3], sessions[4]);
  assert.notEqual(sessions[4], sessions[5], 'SHUTDOWN ends the session');
  assert.deepEqual(
    recorded.events.map((e) => [e.session.vm, e.event.name, e.event.timestampMicros]),
    [
      ['d1', 'STOP', 1_796_000_000_000_001],
      ['d1', 'RESUME', 1_796_000_000_000_002],
      ['d1', 'RESUME', 1_796_000_000_000_003],
      ['d1', 'STOP', 1_796_000_000_000_004],
      ['d1', 'SHUTDOWN', 1_796_000_000_000_005],
      ['d1', 'RESUME', 1_796_000_000_000_006],
    ],
  );
  const ends = recorded.log.filter((l) => l.startsWith('end '));
  assert.match(ends[0] ?? '', /restarted \(id 2\)/);
  assert.match(ends[1] ?? '', /closed/);
  assert.match(ends[2] ?? '', /domain shut down/);
});

test('refused authentication or registration: a clear error, and retried', async (t) => {
  const cases: [FakeLibvirtdOptions, RegExp][] = [
    [{ authTypes: [1] }, /wants SASL authentication.*auth_unix_rw/],
    [
      { authTypes: [2], refuse: { auth_polkit: 'authentication failed: access denied by policy' } },
      /polkit.*access denied by policy/,
    ],
    [{ refuse: { open: 'access denied: connect' } }, /connection open.*access denied/],
    [
      { refuse: { register: 'operation forbidden: read only access prevents' } },
      /registration \(a read-only socket.*read only access/,
    ],
  ];
  for (const [options, message] of cases) {
    const { server, recorded } = await connectTo(t, options);
    await waitFor(() => recorded.failures.length >= 2 && server.connections() >= 2, {
      description: String(message),
    });
    assert.match(recorded.failures[0] ?? '', message);
    assert.equal(recorded.log.filter((l) => l.startsWith('connected')).length, 0);
  }
  // polkit that says yes: AUTH_POLKIT, then the same handshake.
  const { server, recorded } = await connectTo(t, { authTypes: [2] });
  await waitFor(() => recorded.log.includes('connected reconnect=false'));
  assert.ok(server.received.some((m) => m.header.proc === REMOTE_PROC.AUTH_POLKIT));
});

test('a libvirtd that stops answering keepalives is dropped and reconnected', async (t) => {
  const { server, recorded } = await connectTo(t, { answerPings: false });
  await waitFor(() => recorded.log.includes('disconnected'), { timeoutMs: 5000 });
  await waitFor(() => server.connections() >= 2, { timeoutMs: 5000 });
  await waitFor(() => recorded.log.includes('connected reconnect=true'), { timeoutMs: 5000 });
});

/** Frames a hostile libvirtd could send with intact framing: none of them is a valid event. */
const hostileFrame = fc.oneof(
  // Garbage under every header (a MONITOR_EVENT's body, replies nobody asked for, streams).
  fc
    .record({
      prog: fc.constantFrom(QEMU_PROGRAM, REMOTE_PROGRAM, KEEPALIVE_PROGRAM, 0, 0xffffffff),
      vers: fc.constantFrom(0, 1, 7),
      proc: fc.integer({ min: -3, max: 10 }),
      type: fc.integer({ min: -1, max: 6 }),
      serial: fc.nat({ max: 2 ** 32 - 1 }),
      status: fc.integer({ min: -1, max: 3 }),
      body: fc.uint8Array({ maxLength: 200 }),
    })
    .filter((f) => f.prog !== KEEPALIVE_PROGRAM || f.proc !== KEEPALIVE_PROC.PING)
    .map((f) => encodeMessage(f, Buffer.from(f.body))),
  // Well-formed events that QMP would reject.
  fc
    .record({
      name: fc.string({ maxLength: 20 }),
      micros: fc.integer({ min: 1_000_000, max: 2 ** 32 - 1 }),
      details: fc.option(fc.string({ maxLength: 40 }), { nil: null }),
    })
    .map((f) =>
      encodeMonitorEventMessage({
        callbackId: 1,
        domain: { ...D1, name: `h-${f.name}` },
        event: 'STOP',
        seconds: 1n,
        micros: f.micros,
        details: f.details,
      }),
    ),
  fc.constantFrom('[1]', '{"a":', '"x"', '\u0000', 'null').map((details) =>
    encodeMonitorEventMessage({
      callbackId: 1,
      domain: { ...D1, name: 'hostile' },
      event: 'STOP',
      seconds: 1n,
      micros: 0,
      details,
    }),
  ),
  // Events of a registration the collector never made.
  fc.integer({ min: 1000, max: 2 ** 31 - 1 }).map((callbackId) =>
    encodeMonitorEventMessage({
      callbackId,
      domain: { ...D1, name: 'foreign' },
      event: 'STOP',
      seconds: 1n,
      micros: 0,
      details: null,
    }),
  ),
);

test('hostile frames from a fake libvirtd never stop the collector or its connection', async (t) => {
  const path = join(tempDir(t, 'fuzz-libvirtd-'), 'libvirt-sock');
  const server = await startFakeLibvirtd(path);
  t.after(() => server.close());
  const kafka = fakeKafka({ send: (records) => ackAll(records) }, 1);
  const config = parseCollectorConfig('test-host', {
    env: {},
    flags: {
      libvirt: [`qemu+unix:///system?socket=${path}`],
      'libvirt-event': ['*'],
      'spool-dir': tempDir(t, 'fuzz-spool-'),
      'http-port': '0',
      brokers: ['127.0.0.1:9'],
      'reconnect-initial-ms': '10',
      'reconnect-max-ms': '50',
    },
  });
  const collector = await startCollector(
    config,
    createLogger({ level: 'error', write: () => {} }),
    kafka.port,
  );
  t.after(() => collector.stop());
  await waitFor(() => server.registered() === 1);

  const codec = createEventCodec();
  const published = (): { vm: string; micros: number; session: string }[] =>
    kafka.stored.flatMap((r) => {
      const d = codec.decode(r.value ?? Buffer.alloc(0));
      return d.kind === 'record'
        ? [
            {
              vm: d.value.vm,
              micros: d.value.qemuTimestampMicros % 1e6,
              session: d.value.sessionId,
            },
          ]
        : [];
    });
  const hostile = fc.sample(hostileFrame, { numRuns: 400, seed: 10 });
  let valid = 0;
  for (const [i, frame] of hostile.entries()) {
    server.sendRaw(frame);
    if (i % 8 === 0) server.sendEvent({ domain: D1, event: 'STOP', micros: ++valid });
  }
  await waitFor(() => published().length === valid, { timeoutMs: 10_000 });
  const got = published();
  assert.deepEqual(
    got.map((r) => [r.vm, r.micros]),
    Array.from({ length: valid }, (_, i) => ['d1', i + 1]),
    'exactly the valid events, in order',
  );
  assert.equal(new Set(got.map((r) => r.session)).size, 1, 'one session: never reconnected');
  const metrics = await fetchMetricsText(collector.http.url);
  assert.equal(metricValue(metrics, 'vfio_collector_libvirt_reconnects_total', {}, NaN), 0);
  assert.ok(
    metricValue(metrics, 'vfio_collector_qmp_rejected_total', { reason: 'bad_timestamp' }) >= 1,
  );

  // A broken length word: the stream cannot be trusted after it, so the collector reconnects.
  const broken = Buffer.alloc(8);
  broken.writeUInt32BE(3, 0);
  server.sendRaw(broken);
  await waitFor(() => server.registered() === 2, { timeoutMs: 5000 });
  server.sendEvent({ domain: D1, event: 'RESUME', micros: 999 });
  await waitFor(() => published().length === valid + 1);
  assert.notEqual(published().at(-1)?.session, got[0]?.session, 'a new session after reconnect');
});

/** A collector with the given flags, a fake Kafka that acknowledges everything; stopped after. */
async function startWithFakeKafka(
  t: TestContext,
  flags: Record<string, string | string[]>,
): Promise<{
  collector: Awaited<ReturnType<typeof startCollector>>;
  kafka: ReturnType<typeof fakeKafka>;
}> {
  const kafka = fakeKafka({ send: (records) => ackAll(records) }, 1);
  const config = parseCollectorConfig('test-host', {
    env: {},
    flags: {
      ...flags,
      'spool-dir': tempDir(t, 'spool-'),
      'http-port': '0',
      brokers: ['127.0.0.1:9'],
    },
  });
  const collector = await startCollector(
    config,
    createLogger({ level: 'error', write: () => {} }),
    kafka.port,
  );
  t.after(() => collector.stop());
  return { collector, kafka };
}

/** The event records Kafka stored, as [vm, event, QEMU timestamp]. */
function storedEvents(kafka: ReturnType<typeof fakeKafka>): [string, string, number][] {
  const codec = createEventCodec();
  return kafka.stored.flatMap((r) => {
    const d = codec.decode(r.value ?? Buffer.alloc(0));
    return d.kind === 'record'
      ? [[d.value.vm, d.value.event, d.value.qemuTimestampMicros] as [string, string, number]]
      : [];
  });
}

test('a QMP socket and a libvirt domain never share a VM name: the later one is refused', async (t) => {
  const dir = tempDir(t, 'both-sources-');
  const qmp = await startFakeQmpServer(join(dir, 'd1.qmp'));
  t.after(() => qmp.close());
  const libvirtd = await startFakeLibvirtd(join(dir, 'libvirt-sock'));
  t.after(() => libvirtd.close());
  const { collector, kafka } = await startWithFakeKafka(t, {
    socket: [qmp.path],
    libvirt: [libvirtd.path],
  });
  await waitFor(() => qmp.negotiated && libvirtd.registered() === 1);

  qmp.emit('STOP', {}, 1_796_000_000_000_001);
  await waitFor(() => kafka.stored.length === 1);
  libvirtd.sendEvent({ domain: D1, event: 'STOP', micros: 2 });
  libvirtd.sendEvent({ domain: { ...D1, name: 'd2' }, event: 'STOP', micros: 3 });
  await waitFor(() => kafka.stored.length === 2);
  qmp.emit('RESUME', {}, 1_796_000_000_000_004);
  await waitFor(() => kafka.stored.length === 3);

  assert.deepEqual(storedEvents(kafka), [
    ['d1', 'STOP', 1_796_000_000_000_001],
    ['d2', 'STOP', 1_796_000_000_000_003],
    ['d1', 'RESUME', 1_796_000_000_000_004],
  ]);
  const metrics = await fetchMetricsText(collector.http.url);
  assert.equal(metricValue(metrics, 'vfio_collector_vm_name_conflicts_total'), 1);
  assert.deepEqual(collector.vms().sort(), ['d1', 'd2']);
});

test('a socket refused because a libvirt domain holds its name is read once the domain shuts down', async (t) => {
  const dir = tempDir(t, 'name-back-');
  const libvirtd = await startFakeLibvirtd(join(dir, 'libvirt-sock'));
  t.after(() => libvirtd.close());
  const sockets = tempDir(t, 'name-back-vms-');
  const { collector, kafka } = await startWithFakeKafka(t, {
    'socket-dir': sockets,
    'rescan-interval-ms': '100',
    libvirt: [libvirtd.path],
  });
  await waitFor(() => libvirtd.registered() === 1);
  libvirtd.sendEvent({ domain: D1, event: 'RESUME', micros: 1 });
  await waitFor(() => kafka.stored.length === 1);

  // d1.qmp appears while the domain d1 holds the name: refused, never connected.
  const qmp = await startFakeQmpServer(join(sockets, 'd1.qmp'));
  t.after(() => qmp.close());
  const conflicts = async (): Promise<string> =>
    (await (await fetch(`${collector.http.url}/metrics`)).text()).match(
      /^vfio_collector_vm_name_conflicts_total (\d+)$/m,
    )?.[1] ?? '';
  await waitFor(async () => (await conflicts()) === '1');
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(qmp.negotiated, false, 'the refused socket is not read while the domain holds d1');

  // The domain shuts down: the name is free, and the socket is read from then on.
  libvirtd.sendEvent({ domain: D1, event: 'SHUTDOWN', micros: 2 });
  await waitFor(() => qmp.negotiated);
  qmp.emit('STOP', {}, 1_796_000_000_000_003);
  await waitFor(() => kafka.stored.length === 3);
  assert.deepEqual(
    storedEvents(kafka).map(([vm, event]) => [vm, event]),
    [
      ['d1', 'RESUME'],
      ['d1', 'SHUTDOWN'],
      ['d1', 'STOP'],
    ],
  );
  assert.equal(await conflicts(), '1', 'the conflict counted once');
});

test('/readyz fails, naming the daemon, while a libvirt connection is refused; passes once it registers', async (t) => {
  const dir = tempDir(t, 'ready-');
  const path = join(dir, 'libvirt-sock');
  let libvirtd = await startFakeLibvirtd(path, { refuse: { open: 'access denied: connect' } });
  t.after(() => libvirtd.close());
  const { collector } = await startWithFakeKafka(t, {
    libvirt: [path],
    'libvirt-keepalive-ms': '200',
    'reconnect-initial-ms': '20',
    'reconnect-max-ms': '100',
  });
  const readyz = async (): Promise<{ status: number; body: string }> => {
    const response = await fetch(`${collector.http.url}/readyz`);
    return { status: response.status, body: await response.text() };
  };
  await waitFor(() => libvirtd.connections() >= 2);
  const refused = await readyz();
  assert.equal(refused.status, 503);
  assert.ok(refused.body.includes(`libvirt: ${path} not connected`), refused.body);

  await libvirtd.close();
  libvirtd = await startFakeLibvirtd(path);
  await waitFor(() => libvirtd.registered() === 1);
  await waitFor(async () => (await readyz()).status === 200, {
    description: '/readyz 200 once the daemon registers us',
  });
});

test('of the candidate sockets, the first that exists is used (virtqemud-sock or libvirt-sock)', async (t) => {
  const dir = tempDir(t, 'candidates-');
  const server = await startFakeLibvirtd(join(dir, 'libvirt-sock'));
  t.after(() => server.close());
  const recorded = recordingHandler();
  const connection = new LibvirtConnection({
    target: {
      text: 'qemu:///system',
      name: 'qemu:///system',
      sockets: [join(dir, 'virtqemud-sock'), join(dir, 'libvirt-sock')],
    },
    events: [],
    vmName: 'uuid',
    backoff: { initialMs: 10, maxMs: 50, multiplier: 2 },
    keepaliveIntervalMs: 1000,
    replyTimeoutMs: 2000,
    handler: recorded.handler,
  });
  connection.start();
  t.after(() => connection.stop());
  await waitFor(() => recorded.log.includes('connected reconnect=false'));
  assert.deepEqual(recorded.failures, [], 'no failed attempt on the missing socket');
  server.sendEvent({ domain: D1, event: 'ANY_EVENT' });
  await waitFor(() => recorded.events.length === 1);
  assert.equal(recorded.events[0]?.session.vm, D1.uuid, 'named by UUID');
});

test('--libvirt-glob: a launcher daemon that appears after start is read; one that goes is let go, its VM name freed', async (t) => {
  const pods = tempDir(t, 'pods-');
  const tail = 'volumes/kubernetes.io~empty-dir/libvirt-runtime/virtqemud-sock';
  const { collector, kafka } = await startWithFakeKafka(t, {
    'libvirt-glob': `${pods}/*/${tail}`,
    'libvirt-glob-interval-ms': '100',
    'libvirt-event': 'STOP,RESUME,SHUTDOWN',
  });
  const metric = async (name: string): Promise<number | undefined> =>
    metricValue(await fetchMetricsText(collector.http.url), name);
  /** /metrics is cached for a moment: wait for the value rather than read it once. */
  const metricReaches = (name: string, value: number): Promise<unknown> =>
    waitFor(async () => (await metric(name)) === value, { description: `${name} = ${value}` });
  assert.equal((await fetch(`${collector.http.url}/readyz`)).status, 200, 'nothing to read yet');
  assert.equal(await metric('vfio_collector_libvirt_glob_sockets'), 0);

  const socketOf = (pod: string): string => join(pods, pod, tail);
  mkdirSync(join(socketOf('pod-a'), '..'), { recursive: true });
  const a = await startFakeLibvirtd(socketOf('pod-a'));
  t.after(() => a.close());
  await waitFor(() => a.registered() === 1, { description: 'pod-a registered through the glob' });
  a.sendEvent({ domain: D1, event: 'STOP', micros: 1 });
  await waitFor(() => storedEvents(kafka).length === 1);
  assert.deepEqual(storedEvents(kafka)[0]?.slice(0, 2), ['d1', 'STOP']);
  await metricReaches('vfio_collector_libvirt_glob_sockets', 1);
  await metricReaches('vfio_collector_libvirt_connections_up', 1);

  // The pod is deleted: its daemon and socket go. The VM runs on as another pod's domain (a
  // migration back to this node): the name must be free for it.
  await a.close();
  rmSync(join(pods, 'pod-a'), { recursive: true, force: true });
  await metricReaches('vfio_collector_libvirt_glob_sockets', 0);
  mkdirSync(join(socketOf('pod-b'), '..'), { recursive: true });
  const b = await startFakeLibvirtd(socketOf('pod-b'));
  t.after(() => b.close());
  await waitFor(() => b.registered() === 1, { description: 'pod-b registered through the glob' });
  b.sendEvent({ domain: { ...D1, id: 7 }, event: 'RESUME', micros: 2 });
  await waitFor(() => storedEvents(kafka).length === 2);
  assert.deepEqual(storedEvents(kafka)[1]?.slice(0, 2), ['d1', 'RESUME']);
  await metricReaches('vfio_collector_libvirt_connections_up', 1);
  // A connection still dialling the gone socket would be listed as not connected.
  const ready = await fetch(`${collector.http.url}/readyz`);
  assert.equal(ready.status, 200, await ready.text());
});

test('--libvirt-glob whose fixed directory is missing: /readyz names the pattern', async (t) => {
  const base = tempDir(t, 'no-pods-');
  const pattern = `${base}/missing/*/virtqemud-sock`;
  const { collector } = await startWithFakeKafka(t, { 'libvirt-glob': pattern });
  const response = await fetch(`${collector.http.url}/readyz`);
  assert.equal(response.status, 503);
  assert.ok((await response.text()).includes(`libvirt-glob: ${pattern} cannot be listed`));
});
