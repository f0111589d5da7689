/**
 * Shared pieces of the collector end-to-end tests: a fleet of fake QMP servers that remembers
 * what each VM emitted, a consumer that reads a topic back and decodes every record, and the
 * checks every test makes (exact contents, per-VM order, one partition per VM).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { parseCollectorConfig, type CollectorConfig } from '../../../services/collector/config.ts';
import type { EventRecord } from '../../../services/shared/core/event-record.ts';
import { createEventCodec } from '../../../services/shared/io/avro-codec.ts';
import { createLogger, type Logger } from '../../../services/shared/io/logger.ts';
import { tailTopic, testKafkaPort } from '../../helpers/kafka.ts';
import { startFakeQmpServer, type FakeQmpServer } from '../../helpers/qmp-server.ts';
import { waitFor } from '../../helpers/wait-for.ts';

export interface Emitted {
  vm: string;
  event: string;
  ts: number;
  deviceState?: string;
}

export interface FakeFleet {
  dir: string;
  servers: FakeQmpServer[];
  vms: string[];
  emitted: Emitted[];
  /** Emits one event on every VM whose monitor is negotiated; returns how many were emitted. */
  emitRound(round: number): number;
}

export function tempDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const STATES = ['pre-copy', 'pre-copy-p2p-prepare', 'pre-copy-p2p', 'stop-copy', 'stop', 'running'];

/** `count` fake VMs with sockets `vm-<i>.qmp` in a temp dir; closed after the test. */
export async function startFakeFleet(t: TestContext, count: number): Promise<FakeFleet> {
  const dir = tempDir(t, 'collector-vms-');
  const vms = Array.from({ length: count }, (_, i) => `vm-${i}`);
  const servers = await Promise.all(vms.map((vm) => startFakeQmpServer(join(dir, `${vm}.qmp`))));
  t.after(() => Promise.all(servers.map((s) => s.close())));
  const emitted: Emitted[] = [];
  return {
    dir,
    servers,
    vms,
    emitted,
    emitRound(round) {
      let n = 0;
      servers.forEach((server, i) => {
        const vm = vms[i] as string;
        const kind = round % 4;
        let ts: number;
        let deviceState: string | undefined;
        let event: string;
        if (kind === 0 || kind === 1) {
          event = 'VFIO_MIGRATION';
          deviceState = STATES[round % STATES.length];
          ts = server.emit(event, {
            'device-id': 'vf0',
            'qom-path': '/machine/peripheral/vf0',
            'device-state': deviceState,
          });
        } else if (kind === 2) {
          event = 'MIGRATION';
          ts = server.emit(event, { status: 'active' });
        } else {
          event = 'STOP';
          ts = server.emit(event);
        }
        if (ts < 0) return;
        n++;
        emitted.push({ vm, event, ts, ...(deviceState === undefined ? {} : { deviceState }) });
      });
      return n;
    },
  };
}

export function quietLogger(): Logger {
  const lines: string[] = [];
  return createLogger({
    level: process.env['VFIO_TEST_LOG'] === '1' ? 'debug' : 'warn',
    write: (line) =>
      process.env['VFIO_TEST_LOG'] === '1' ? console.error(line) : lines.push(line),
  });
}

export function collectorConfig(
  brokers: readonly string[],
  topic: string,
  overrides: Record<string, string | string[]>,
): CollectorConfig {
  return parseCollectorConfig('test-host', {
    env: {},
    flags: {
      brokers: [...brokers],
      topic,
      'http-port': '0',
      'reconnect-initial-ms': '20',
      'reconnect-max-ms': '500',
      'rescan-interval-ms': '100',
      'kafka-retry-max-ms': '1000',
      ...overrides,
    },
  });
}

export interface ConsumedRecord {
  partition: number;
  offset: string;
  key: string;
  record: EventRecord;
}

/** Reads the topic from the beginning until `done(records)` holds; decodes every record. */
export async function consumeUntil(
  t: TestContext,
  brokers: readonly string[],
  topic: string,
  done: (records: readonly ConsumedRecord[]) => boolean,
  timeoutMs = 60_000,
): Promise<ConsumedRecord[]> {
  const codec = createEventCodec();
  const tail = await tailTopic(testKafkaPort(t, brokers, 'collector-e2e-consumer'), topic);
  const records: ConsumedRecord[] = [];
  await waitFor(
    async () => {
      for (const message of await tail.next()) {
        const decoded = codec.decode(message.value ?? Buffer.alloc(0));
        assert.equal(decoded.kind, 'record', `undecodable record at offset ${message.offset}`);
        if (decoded.kind !== 'record') continue;
        records.push({
          partition: message.partition,
          offset: String(message.offset),
          key: message.key?.toString('utf8') ?? '',
          record: decoded.value,
        });
      }
      return done(records);
    },
    {
      timeoutMs,
      intervalMs: 100,
      description: `the awaited records of ${topic}`,
    },
  );
  return records;
}

/** Records of one VM in partition-offset order. */
export function byVm(records: readonly ConsumedRecord[]): Map<string, ConsumedRecord[]> {
  const out = new Map<string, ConsumedRecord[]>();
  const sorted = [...records].sort((a, b) =>
    a.partition !== b.partition
      ? a.partition - b.partition
      : Number(BigInt(a.offset) - BigInt(b.offset)),
  );
  for (const r of sorted) {
    const list = out.get(r.record.vm) ?? [];
    list.push(r);
    out.set(r.record.vm, list);
  }
  return out;
}

/**
 * Each VM's records sit in one partition, keyed host/vm, and (deduplicated by session and
 * sequence, as the processor does) form gap-free sequences from 1 per session whose QEMU
 * timestamps match what the VM emitted, in order. `missing` names records known to be absent
 * (`sessionId/sequence`, e.g. refused by Kafka and kept in the rejected file): the only gaps
 * allowed.
 */
export function assertDeliveredInOrder(
  records: readonly ConsumedRecord[],
  emitted: readonly Emitted[],
  missing: ReadonlySet<string> = new Set(),
): void {
  const expected = new Map<string, Emitted[]>();
  for (const e of emitted) expected.set(e.vm, [...(expected.get(e.vm) ?? []), e]);
  const grouped = byVm(records);
  assert.deepEqual([...grouped.keys()].sort(), [...expected.keys()].sort(), 'the set of VMs');
  for (const [vm, list] of grouped) {
    assert.equal(new Set(list.map((r) => r.partition)).size, 1, `${vm}: one partition`);
    const seen = new Set<string>();
    const unique = list.filter((r) => {
      const id = `${r.record.sessionId}/${r.record.sequence}`;
      if (seen.has(id)) return false;
      seen.add(id);
      return true;
    });
    let session = '';
    let sequence = 0;
    for (const r of unique) {
      assert.equal(r.key, `${r.record.host}/${vm}`);
      if (r.record.sessionId !== session) {
        session = r.record.sessionId;
        sequence = 0;
      }
      while (missing.has(`${session}/${sequence + 1}`)) sequence++;
      assert.equal(r.record.sequence, ++sequence, `${vm}: sequence without gaps`);
    }
    const want = expected.get(vm) ?? [];
    assert.deepEqual(
      unique.map((r) => [
        r.record.event,
        r.record.qemuTimestampMicros,
        r.record.deviceState ?? undefined,
      ]),
      want.map((e) => [e.event, e.ts, e.deviceState]),
      `${vm}: contents and order`,
    );
  }
}
