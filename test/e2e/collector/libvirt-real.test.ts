/**
 * The collector's libvirt source against a real libvirtd (session daemon, test/helpers/libvirtd.ts)
 * and real QEMU domains. The witness is libvirt's own client: `virsh qemu-monitor-event --loop`
 * (WITHOUT --timestamp, which replaces it by virsh's own millisecond clock) prints every event
 * as `event STOP at SECONDS.MICROS for domain 'x': DATA`, QEMU's timestamp, so what it saw is
 * exactly what must arrive in Kafka, per domain, in order, with the same timestamps.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { startCollector, type RunningCollector } from '../../../services/collector/main.ts';
import { brokersFromEnv, uniqueTopic } from '../../helpers/kafka.ts';
import { startLibvirtd, type Libvirtd } from '../../helpers/libvirtd.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import {
  byVm,
  collectorConfig,
  consumeUntil,
  quietLogger,
  tempDir,
  type ConsumedRecord,
} from './collector-harness.ts';
import { fetchMetricsText, metricValue } from '../../helpers/metrics-text.ts';

const WATCHED = new Set(['VFIO_MIGRATION', 'MIGRATION', 'STOP', 'RESUME', 'SHUTDOWN']);

interface Seen {
  vm: string;
  event: string;
  ts: number;
}

/** `virsh qemu-monitor-event --loop` for every domain; stopped by PID. */
async function startWitness(t: TestContext, libvirtd: Libvirtd, probe: string): Promise<Seen[]> {
  // stdbuf: virsh's stdout is a pipe here, and block-buffered it would hold the lines back.
  const child = spawn(
    'stdbuf',
    ['-oL', 'virsh', '-c', libvirtd.uri, 'qemu-monitor-event', '--loop'],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  const seen: Seen[] = [];
  let buffer = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffer.indexOf('\n')) !== -1) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      const m = /^event (\S+) at (\d+)\.(\d{6}) for domain '([^']*)'/.exec(line);
      if (m !== null && WATCHED.has(m[1] as string)) {
        seen.push({
          vm: m[4] as string,
          event: m[1] as string,
          ts: Number(m[2]) * 1e6 + Number(m[3]),
        });
      }
    }
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null)
      process.kill(child.pid as number, 'SIGKILL');
  });
  // Ready once it saw an event of a throwaway domain, poked until then (registration is async).
  libvirtd.createDomain(probe);
  await waitFor(
    () => {
      if (seen.some((e) => e.vm === probe)) return true;
      libvirtd.virsh('suspend', probe);
      libvirtd.virsh('resume', probe);
      return false;
    },
    { description: 'the witness registered', timeoutMs: 30_000, intervalMs: 200 },
  );
  libvirtd.virsh('destroy', probe);
  return seen;
}

async function metric(collector: RunningCollector, name: string): Promise<number> {
  return metricValue(await fetchMetricsText(collector.http.url), name, {}, NaN);
}

async function startLibvirtCollector(
  t: TestContext,
  libvirtd: Libvirtd,
  topic: string,
): Promise<RunningCollector> {
  const collector = await startCollector(
    collectorConfig(brokersFromEnv(), topic, {
      libvirt: [libvirtd.uri],
      'spool-dir': tempDir(t, 'spool-'),
      'libvirt-keepalive-ms': '1000',
    }),
    quietLogger(),
  );
  t.after(() => collector.stop());
  await waitFor(
    async () => (await metric(collector, 'vfio_collector_libvirt_connections_up')) === 1,
    {
      description: 'the collector registered with libvirt',
      timeoutMs: 30_000,
    },
  );
  return collector;
}

function watched(records: readonly ConsumedRecord[], vm: string): ConsumedRecord[] {
  return (byVm(records).get(vm) ?? []).filter((r) => WATCHED.has(r.record.event));
}

/** Sessions in order, each with sequence 1..n and no gap. */
function sessionsOf(records: readonly ConsumedRecord[]): string[] {
  const sessions: string[] = [];
  let sequence = 0;
  for (const { record } of records) {
    if (record.sessionId !== sessions.at(-1)) {
      assert.ok(!sessions.includes(record.sessionId), 'a session does not come back');
      sessions.push(record.sessionId);
      sequence = 0;
    }
    assert.equal(record.sequence, ++sequence, `${record.vm}: sequence without gaps`);
  }
  return sessions;
}

test(
  'libvirt: suspend, resume, save, restore and destroy arrive with QEMU timestamps; a domain started later too; nothing is tainted',
  { timeout: 90_000 },
  async (t) => {
    const libvirtd = await startLibvirtd(t);
    const topic = await uniqueTopic(t, 'collector-libvirt');
    libvirtd.createDomain('early');
    const seen = await startWitness(t, libvirtd, 'probe');
    await startLibvirtCollector(t, libvirtd, topic);

    const save = join(libvirtd.dir, 'early.save');
    libvirtd.virsh('suspend', 'early');
    libvirtd.virsh('resume', 'early');
    libvirtd.virsh('save', 'early', save);
    libvirtd.virsh('restore', save);
    libvirtd.createDomain('late');
    libvirtd.virsh('suspend', 'late');
    libvirtd.virsh('resume', 'late');
    const lateInfo = libvirtd.virsh('dominfo', 'late');
    libvirtd.virsh('destroy', 'early');
    libvirtd.virsh('destroy', 'late');
    await waitFor(
      () =>
        ['early', 'late'].every((vm) => seen.some((e) => e.vm === vm && e.event === 'SHUTDOWN')),
      {
        description: 'the witness saw both domains shut down',
        timeoutMs: 30_000,
      },
    );

    const expected = (vm: string): Seen[] => seen.filter((e) => e.vm === vm);
    assert.ok(
      expected('early').some((e) => e.event === 'MIGRATION'),
      'save migrates to a file',
    );
    const records = await consumeUntil(t, brokersFromEnv(), topic, (r) =>
      ['early', 'late'].every((vm) => watched(r, vm).length >= expected(vm).length),
    );
    for (const vm of ['early', 'late']) {
      const got = watched(records, vm);
      assert.deepEqual(
        got.map((r) => ({
          vm: r.record.vm,
          event: r.record.event,
          ts: r.record.qemuTimestampMicros,
        })),
        expected(vm),
        `${vm}: the events QEMU emitted, with its timestamps, in order`,
      );
      assert.ok(got.every((r) => r.key === `test-host/${vm}`));
    }
    // A session per (connection, domain id): restore starts the domain again under a new id.
    assert.equal(sessionsOf(byVm(records).get('early') ?? []).length, 2, 'early: saved, restored');
    assert.equal(sessionsOf(byVm(records).get('late') ?? []).length, 1);
    const migration = watched(records, 'early').find((r) => r.record.event === 'MIGRATION');
    assert.equal(migration?.record.migrationStatus, 'setup');

    // Not tainted: no message in dominfo, no "is tainted" line in the domain logs. The control
    // domain proves both checks see a taint: one monitor command taints it (custom-monitor).
    libvirtd.createDomain('control');
    libvirtd.virsh('qemu-monitor-command', 'control', '{"execute":"query-status"}');
    assert.match(libvirtd.virsh('dominfo', 'control'), /tainted/);
    assert.match(libvirtd.domainLog('control'), /is tainted: custom-monitor/);
    assert.doesNotMatch(lateInfo, /taint/i);
    for (const vm of ['early', 'late']) assert.doesNotMatch(libvirtd.domainLog(vm), /is tainted/);
  },
);

test(
  'libvirt: libvirtd killed and restarted mid-stream → a new session, nothing after the restart lost',
  { timeout: 90_000 },
  async (t) => {
    const libvirtd = await startLibvirtd(t);
    const topic = await uniqueTopic(t, 'collector-libvirt-restart');
    libvirtd.createDomain('d1');
    const before = await startWitness(t, libvirtd, 'probe-1');
    const collector = await startLibvirtCollector(t, libvirtd, topic);
    libvirtd.virsh('suspend', 'd1');
    libvirtd.virsh('resume', 'd1');
    await waitFor(() => before.filter((e) => e.vm === 'd1').length >= 2, {
      description: 'the witness saw STOP, RESUME',
    });

    await libvirtd.restart();
    await waitFor(
      async () => (await metric(collector, 'vfio_collector_libvirt_reconnects_total')) === 1,
      {
        description: 'the collector registered again after the restart',
        timeoutMs: 30_000,
      },
    );
    const after = await startWitness(t, libvirtd, 'probe-2');
    for (let i = 0; i < 3; i++) {
      libvirtd.virsh('suspend', 'd1');
      libvirtd.virsh('resume', 'd1');
    }
    libvirtd.virsh('destroy', 'd1');
    await waitFor(() => after.some((e) => e.vm === 'd1' && e.event === 'SHUTDOWN'), {
      description: 'the witness saw d1 shut down',
      timeoutMs: 30_000,
    });
    const afterD1 = after.filter((e) => e.vm === 'd1');
    const beforeD1 = before.filter((e) => e.vm === 'd1');
    assert.equal(afterD1.length, 7);

    const records = await consumeUntil(
      t,
      brokersFromEnv(),
      topic,
      (r) => watched(r, 'd1').length >= beforeD1.length + afterD1.length,
    );
    const d1 = byVm(records).get('d1') ?? [];
    const sessions = sessionsOf(d1);
    assert.equal(sessions.length, 2, 'one session per libvirt connection');
    const bySession = (s: string | undefined): Seen[] =>
      d1
        .filter((r) => r.record.sessionId === s && WATCHED.has(r.record.event))
        .map((r) => ({ vm: r.record.vm, event: r.record.event, ts: r.record.qemuTimestampMicros }));
    assert.deepEqual(bySession(sessions[0]), beforeD1);
    assert.deepEqual(bySession(sessions[1]), afterD1, 'every event after the restart, in order');
    assert.equal(await metric(collector, 'vfio_collector_libvirt_connections_up'), 1);
  },
);

test(
  '--libvirt-glob: a libvirt daemon that starts after the collector, found by its socket path, is read (KubeVirt launchers)',
  { timeout: 90_000 },
  async (t) => {
    // Like /var/lib/kubelet/pods: one directory per daemon, made after the collector started.
    const pods = tempDir(t, 'pods-');
    chmodSync(pods, 0o755);
    const topic = await uniqueTopic(t, 'collector-libvirt-glob');
    const collector = await startCollector(
      collectorConfig(brokersFromEnv(), topic, {
        // A session daemon, as KubeVirt's launchers run one as the qemu user.
        'libvirt-glob': `qemu+unix:///session?socket=${pods}/libvirtd-*/run/libvirt/libvirt-sock`,
        'libvirt-glob-interval-ms': '200',
        'spool-dir': tempDir(t, 'spool-'),
      }),
      quietLogger(),
    );
    t.after(() => collector.stop());
    assert.equal(await metric(collector, 'vfio_collector_libvirt_glob_sockets'), 0);

    const libvirtd = await startLibvirtd(t, pods);
    await waitFor(
      async () => (await metric(collector, 'vfio_collector_libvirt_glob_sockets')) === 1,
      { description: "the collector found the daemon's socket", timeoutMs: 30_000 },
    );
    await waitFor(
      async () => (await metric(collector, 'vfio_collector_libvirt_connections_up')) === 1,
      { description: 'the collector found the daemon and registered', timeoutMs: 30_000 },
    );
    const seen = await startWitness(t, libvirtd, 'probe');
    libvirtd.createDomain('launched');
    libvirtd.virsh('suspend', 'launched');
    libvirtd.virsh('resume', 'launched');
    libvirtd.virsh('destroy', 'launched');
    await waitFor(() => seen.some((e) => e.vm === 'launched' && e.event === 'SHUTDOWN'), {
      description: 'the witness saw the domain shut down',
      timeoutMs: 30_000,
    });
    const expected = seen.filter((e) => e.vm === 'launched');
    const records = await consumeUntil(
      t,
      brokersFromEnv(),
      topic,
      (r) => watched(r, 'launched').length >= expected.length,
    );
    assert.deepEqual(
      watched(records, 'launched').map((r) => ({
        vm: r.record.vm,
        event: r.record.event,
        ts: r.record.qemuTimestampMicros,
      })),
      expected,
      'the events QEMU emitted, with its timestamps, in order',
    );
    assert.equal(await metric(collector, 'vfio_collector_libvirt_glob_sockets'), 1);
  },
);
