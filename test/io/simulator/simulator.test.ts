import assert from 'node:assert/strict';
import { readdir, readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { ReplaySession } from '../../../services/cli/replay/replay-session.ts';
import type { TransitionRecord } from '../../../services/shared/core/transition-record.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import {
  DEFAULT_FLEET_CONFIG,
  type FleetConfig,
} from '../../../services/simulator/core/fleet-config.ts';
import { createFleet } from '../../../services/simulator/core/fleet.ts';
import { formatQmpMessage } from '../../../services/simulator/core/qmp-json.ts';
import { renderEvent } from '../../../services/simulator/core/render-event.ts';
import { VmSchedule } from '../../../services/simulator/core/vm-schedule.ts';
import {
  startSimulator,
  type Simulator,
  type SimulatorOptions,
} from '../../../services/simulator/io/simulator.ts';
import { QmpTestClient, waitUntil } from './qmp-test-client.ts';

const quiet = createLogger({ write: () => undefined });

async function tempDir(t: TestContext, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function start(t: TestContext, options: Omit<SimulatorOptions, 'dir'>): Promise<Simulator> {
  const dir = await tempDir(t, 'sim-sockets-');
  const simulator = await startSimulator({ dir, logger: quiet, ...options });
  t.after(() => simulator.close());
  return simulator;
}

test('events due while no client is negotiated are dropped, never replayed', async (t) => {
  const fleet: Partial<FleetConfig> = { vms: 1, seed: 11, migrationsPerVmPerMinute: 600 };
  const anchor = 1_795_798_176_000_000;
  const simulator = await start(t, { fleet, speed: 200, clockAnchorMicros: anchor });
  const socket = simulator.sockets[0] as string;

  const client = await QmpTestClient.connect(socket);
  t.after(() => client.close());
  await client.waitFor(() => client.lines().length === 1, 'greeting');
  await waitUntil(() => simulator.stats().eventsDropped >= 3, 'events dropped before negotiation');
  assert.equal(client.lines().length, 1, 'only the greeting before negotiation');

  client.send('{"execute":"qmp_capabilities"}\n');
  await client.waitFor(() => client.events().length >= 5, 'events after negotiation');
  await simulator.close();
  await client.waitForEnd();

  const { eventsDropped, eventsSent } = simulator.stats();
  assert.equal(client.events().length, eventsSent);
  // The client got exactly the schedule's events after the dropped ones.
  const config = { ...DEFAULT_FLEET_CONFIG, ...fleet };
  const schedule = new VmSchedule(createFleet(config)[0]!, config);
  const expected: string[] = [];
  while (expected.length < eventsDropped + eventsSent) {
    for (const event of schedule.next().events) {
      expected.push(formatQmpMessage(renderEvent(event, anchor), false));
    }
  }
  const received = client
    .lines()
    .slice(2)
    .map((line) => line + '\r\n');
  assert.deepEqual(received, expected.slice(eventsDropped, eventsDropped + eventsSent));
  await assert.rejects(readFile(socket), { code: 'ENOENT' }, 'socket removed on close');
});

test('a seeded run at --speed max replays cleanly and matches the simulator’s own counts', async (t) => {
  const transcripts = await tempDir(t, 'sim-transcripts-');
  const simulator = await start(t, {
    fleet: { vms: 6, devicesPerVm: 3, seed: 42, failureRate: 0.2, prepareFailureRate: 0.15 },
    speed: 'max',
    maxMigrations: 120,
    transcriptsDir: transcripts,
    waitForClients: true,
  });
  const clients = await Promise.all(simulator.sockets.map((path) => QmpTestClient.connect(path)));
  for (const client of clients) {
    t.after(() => client.close());
    client.send('{"execute":"qmp_capabilities"}\r\n');
  }
  await simulator.done;
  await Promise.all(clients.map((client) => client.waitForEnd()));

  const stats = simulator.stats();
  assert.equal(stats.migrations, 120);
  assert.equal(stats.eventsDropped, 0);
  assert.ok(stats.preparesCompleted > 0 && stats.preparesFailed > 0, JSON.stringify(stats));

  const files = (await readdir(transcripts)).sort();
  assert.deepEqual(
    files,
    simulator.vms.map((vm) => `${vm}.qmp`),
  );
  const session = new ReplaySession();
  const records: TransitionRecord[] = [];
  for (const [i, vm] of simulator.vms.entries()) {
    const bytes = await readFile(join(transcripts, `${vm}.qmp`));
    assert.equal(bytes.toString('utf8'), clients[i]!.text, `${vm}: transcript = bytes read`);
    const replay = session.openTranscript(vm);
    records.push(...replay.push(bytes), ...replay.end());
    assert.deepEqual(
      simulator.commandsReceived(vm).map((c) => c.command),
      ['qmp_capabilities'],
    );
  }
  const end = session.finish();
  records.push(...end.records);
  assert.equal(end.summary.rejected, 0);
  assert.equal(end.summary.events, stats.eventsSent);
  const prepares = (outcome: string): number =>
    records.filter((r) => r.type === 'prepare' && r.outcome === outcome).length;
  assert.equal(prepares('completed'), stats.preparesCompleted);
  assert.equal(prepares('failed'), stats.preparesFailed);
  assert.equal(end.summary.prepares, stats.preparesCompleted + stats.preparesFailed);
  assert.equal(
    records.filter((r) => r.type === 'prepare' && r.outcome === 'failed' && r.next !== 'running')
      .length,
    0,
    'a failed prepare is followed by running (device reset)',
  );
});

test('TCP monitors are second monitors of the same VMs and get the same events', async (t) => {
  const simulator = await start(t, {
    fleet: { vms: 2, seed: 5 },
    speed: 'max',
    maxMigrations: 6,
    tcpPort: 0,
    waitForClients: true,
  });
  assert.equal(simulator.tcpAddresses.length, 2);
  const connectAll = (addresses: string[]): Promise<QmpTestClient[]> =>
    Promise.all(addresses.map((address) => QmpTestClient.connect(address)));
  const negotiate = async (clients: QmpTestClient[]): Promise<void> => {
    for (const client of clients) {
      t.after(() => client.close());
      client.send('{"execute":"qmp_capabilities"}');
    }
    await Promise.all(clients.map((c) => c.waitFor(() => c.lines().length >= 2, 'negotiation')));
  };
  // The schedule starts once every monitor, unix and TCP, has a negotiated client.
  const tcp = await connectAll(simulator.tcpAddresses);
  const unix = await connectAll(simulator.sockets);
  await Promise.all([negotiate(tcp), negotiate(unix)]);
  await simulator.done;
  await Promise.all([...unix, ...tcp].map((c) => c.waitForEnd()));
  for (const [i, client] of unix.entries()) {
    assert.ok(client.events().length > 0);
    assert.deepEqual(client.events(), tcp[i]!.events());
  }
});
