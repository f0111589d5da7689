import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { EventRecord } from '../../../../services/shared/core/event-record.ts';
import {
  isAheadOfReceipt,
  MAX_AHEAD_OF_RECEIPT_MICROS,
  prepareTimeoutMicros,
  TransitionEngine,
  VmTransitions,
} from '../../../../services/shared/core/transition-engine.ts';
import type { TransitionRecord } from '../../../../services/shared/core/transition-record.ts';
import { vmEventFromRecord, type VmEvent } from '../../../../services/shared/core/vm-event.ts';

const T0 = 1_795_798_176_000_000;
const ms = (n: number): number => T0 + n * 1000;

function vfio(
  atMs: number,
  state: string,
  qomPath = '/machine/peripheral/vf0',
  vm = 'vm1',
  host = 'h1',
): VmEvent {
  return {
    kind: 'vfio',
    host,
    vm,
    timestampMicros: ms(atMs),
    qomPath,
    deviceId: 'vf0',
    deviceState: state,
  };
}

function run(engine: TransitionEngine, events: VmEvent[]): TransitionRecord[] {
  return events.flatMap((event) => engine.apply(event));
}

/** One VM's events through `VmTransitions`, as a processor runs them. */
function runVm(vm: VmTransitions, events: VmEvent[], timeoutSeconds = 10): TransitionRecord[] {
  return events.flatMap((event) => vm.apply(event, prepareTimeoutMicros(timeoutSeconds)) ?? []);
}

const brief = (r: TransitionRecord): string =>
  r.type === 'prepare'
    ? `${r.host}/${r.vm} prepare ${r.target} ${r.outcome} ${r.next ?? '-'} ${r.seconds ?? '-'}`
    : `${r.host}/${r.vm} dwell ${r.state}->${r.next} ${r.seconds}`;

describe('transition engine', () => {
  test('a prepare is closed by the next non-prepare state of the same device only', () => {
    const engine = new TransitionEngine();
    const out = run(engine, [
      vfio(0, 'pre-copy'),
      vfio(0, 'pre-copy', '/machine/peripheral/vf1'),
      vfio(10, 'pre-copy-p2p-prepare'),
      vfio(15, 'stop-copy', '/machine/peripheral/vf1'),
      vfio(30, 'pre-copy-p2p'),
    ]);
    assert.deepEqual(out.map(brief), [
      'h1/vm1 dwell pre-copy->stop-copy 0.015',
      'h1/vm1 prepare pre-copy-p2p completed pre-copy-p2p 0.02',
      'h1/vm1 dwell pre-copy->pre-copy-p2p 0.03',
    ]);
  });

  test('the same VM name on two hosts is two VMs', () => {
    const engine = new TransitionEngine();
    const out = run(engine, [
      vfio(0, 'pre-copy-p2p-prepare', undefined, 'vm1', 'h1'),
      vfio(5, 'pre-copy-p2p-prepare', undefined, 'vm1', 'h2'),
      vfio(7, 'running', undefined, 'vm1', 'h2'),
      vfio(9, 'pre-copy-p2p', undefined, 'vm1', 'h1'),
    ]);
    assert.deepEqual(out.map(brief), [
      'h2/vm1 prepare pre-copy-p2p failed running 0.002',
      'h1/vm1 prepare pre-copy-p2p completed pre-copy-p2p 0.009',
    ]);
  });

  test('an identical event is a duplicate; the same state at a new time is a repeat', () => {
    const vm = new VmTransitions('h1', 'vm1');
    const timeout = prepareTimeoutMicros(10);
    assert.deepEqual(vm.apply(vfio(0, 'running'), timeout), []);
    assert.equal(vm.apply(vfio(0, 'running'), timeout), null);
    assert.deepEqual(vm.apply(vfio(5, 'running'), timeout), []);
    assert.deepEqual(vm.apply(vfio(9, 'stop'), timeout)?.map(brief), [
      'h1/vm1 dwell running->stop 0.009',
    ]);
    const engine = new TransitionEngine();
    const out = run(engine, [vfio(0, 'running'), vfio(0, 'running'), vfio(9, 'stop')]);
    assert.deepEqual(out.map(brief), ['h1/vm1 dwell running->stop 0.009']);
    assert.equal(engine.stats().duplicates, 1, 'the engine counts duplicates');
  });

  test('timeouts use the VM watermark, which any event of the VM moves, never backwards', () => {
    const engine = new TransitionEngine({ prepareTimeoutSeconds: 1 });
    const other = (atMs: number): VmEvent => ({
      kind: 'other',
      host: 'h1',
      vm: 'vm1',
      timestampMicros: ms(atMs),
      name: 'MIGRATION_PASS',
    });
    const early = run(engine, [vfio(0, 'pre-copy-p2p-prepare'), other(1000), other(500)]);
    assert.deepEqual(early, [], 'exactly the timeout is not more than it');
    const late = run(engine, [other(1000.001)]);
    assert.deepEqual(late.map(brief), ['h1/vm1 prepare pre-copy-p2p timed_out - -']);
  });

  test('timeOut (a VM silent on the processor clock) ends its open prepares, watermark kept', () => {
    const vm = new VmTransitions('h1', 'vm1');
    runVm(vm, [vfio(0, 'pre-copy-p2p-prepare')], 2);
    assert.deepEqual(vm.timeOut().map(brief), ['h1/vm1 prepare pre-copy-p2p timed_out - -']);
    assert.equal(vm.openPrepares, 0);
    assert.equal(vm.watermarkMicros, ms(0));
    // A new prepare just after is judged by QEMU time only: not timed out at once.
    assert.deepEqual(runVm(vm, [vfio(1, 'pre-copy-p2p-prepare')], 2), []);
  });

  test('snapshot and restore rebuild a VM that continues identically', () => {
    const events = [
      vfio(0, 'pre-copy'),
      vfio(0, 'pre-copy', '/machine/peripheral/vf1'),
      vfio(10, 'pre-copy-p2p-prepare'),
      vfio(11, 'running', '/machine/peripheral/vf1'),
    ];
    const later = [
      vfio(30, 'pre-copy-p2p'),
      vfio(40, 'stop', '/machine/peripheral/vf1'),
      vfio(50, 'stop-copy'),
    ];
    const original = new VmTransitions('h1', 'vm1');
    runVm(original, events);
    const snapshot = original.snapshot();
    const rebuilt = VmTransitions.restore(JSON.parse(JSON.stringify(snapshot)) as typeof snapshot);
    assert.deepEqual(rebuilt.snapshot(), snapshot);
    assert.deepEqual(runVm(rebuilt, later), runVm(original, later));
    assert.deepEqual(
      [rebuilt.openPrepares, rebuilt.deviceCount, rebuilt.watermarkMicros],
      [original.openPrepares, original.deviceCount, original.watermarkMicros],
    );
  });

  test('abort ends open prepares as aborted and starts new device timelines', () => {
    const vm = new VmTransitions('h1', 'vm1');
    runVm(vm, [vfio(0, 'pre-copy'), vfio(10, 'pre-copy-p2p-prepare')]);
    const out = [...vm.abort()];
    assert.equal(vm.deviceCount, 0);
    out.push(...runVm(vm, [vfio(20, 'running'), vfio(25, 'stop')]));
    assert.deepEqual(out.map(brief), [
      'h1/vm1 prepare pre-copy-p2p aborted - -',
      'h1/vm1 dwell running->stop 0.005',
    ]);
  });

  test('SHUTDOWN aborts open prepares; finish() leaves the rest unfinished', () => {
    const engine = new TransitionEngine();
    const out = run(engine, [
      vfio(0, 'pre-copy-p2p-prepare', undefined, 'vm1'),
      vfio(0, 'pre-copy-p2p-prepare', undefined, 'vm2'),
      { kind: 'shutdown', host: 'h1', vm: 'vm1', timestampMicros: ms(3) },
    ]);
    out.push(...engine.finish());
    assert.deepEqual(out.map(brief), [
      'h1/vm1 prepare pre-copy-p2p aborted - -',
      'h1/vm2 prepare pre-copy-p2p unfinished - -',
    ]);
    assert.deepEqual(engine.stats(), { vms: 2, devices: 1, openPrepares: 0, duplicates: 0 });
  });

  test('"-prepare" alone is an ordinary (unknown) state, not a prepare of nothing', () => {
    const engine = new TransitionEngine();
    const out = run(engine, [vfio(0, 'running'), vfio(1, '-prepare'), vfio(2, 'running')]);
    assert.deepEqual(out.map(brief), [
      'h1/vm1 dwell running->-prepare 0.001',
      'h1/vm1 dwell -prepare->running 0.001',
    ]);
  });

  test('rejects a prepare timeout that is not a positive number', () => {
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => new TransitionEngine({ prepareTimeoutSeconds: bad }), RangeError);
      assert.throws(() => prepareTimeoutMicros(bad), RangeError);
    }
  });
});

describe('timestamp rule: an event stamped far ahead of its receive time does not move the watermark', () => {
  const YEAR_2127 = 4_952_000_000_000_000;
  /** Received `receivedAtMs` after T0 (default: when QEMU stamped it). */
  const received = (event: VmEvent, receivedAtMs?: number): VmEvent => ({
    ...event,
    receivedMicros: receivedAtMs === undefined ? event.timestampMicros : ms(receivedAtMs),
  });
  const bogus = (atMs: number): VmEvent => ({
    kind: 'other',
    host: 'h1',
    vm: 'vm1',
    timestampMicros: YEAR_2127,
    receivedMicros: ms(atMs),
    name: 'RTC_CHANGE',
  });

  test('regression: after one event dated 2127, a 20 ms completion is completed, not timed_out', () => {
    const engine = new TransitionEngine();
    const out = run(engine, [
      received(vfio(0, 'pre-copy')),
      bogus(5),
      received(vfio(10, 'pre-copy-p2p-prepare')),
      received(vfio(30, 'pre-copy-p2p')),
      received(vfio(40, 'pre-copy-p2p-prepare')),
      received(vfio(60, 'pre-copy-p2p')),
    ]);
    assert.deepEqual(out.map(brief), [
      'h1/vm1 prepare pre-copy-p2p completed pre-copy-p2p 0.02',
      'h1/vm1 dwell pre-copy->pre-copy-p2p 0.03',
      'h1/vm1 prepare pre-copy-p2p completed pre-copy-p2p 0.02',
    ]);
  });

  test('a bogus VFIO event still changes its device, without moving the watermark', () => {
    const vm = new VmTransitions('h1', 'vm1');
    runVm(vm, [received(vfio(0, 'running'))]);
    const ahead = { ...vfio(0, 'stop'), timestampMicros: YEAR_2127, receivedMicros: ms(1) };
    assert.equal(isAheadOfReceipt(ahead), true);
    runVm(vm, [ahead]);
    assert.equal(vm.watermarkMicros, ms(0));
    assert.equal(vm.snapshot().devices[0]?.state, 'stop');
  });

  test(`the bound: ${MAX_AHEAD_OF_RECEIPT_MICROS / 1e6} s ahead still moves it, one µs more does not`, () => {
    const at = (aheadMicros: number): VmEvent => ({
      kind: 'other',
      host: 'h1',
      vm: 'vm1',
      timestampMicros: ms(0) + aheadMicros,
      receivedMicros: ms(0),
      name: 'X',
    });
    const vm = new VmTransitions('h1', 'vm1');
    runVm(vm, [at(MAX_AHEAD_OF_RECEIPT_MICROS + 1)]);
    assert.equal(vm.watermarkMicros, -1);
    runVm(vm, [at(MAX_AHEAD_OF_RECEIPT_MICROS)]);
    assert.equal(vm.watermarkMicros, ms(0) + MAX_AHEAD_OF_RECEIPT_MICROS);
    // Behind the receive time is normal (the event waited in a buffer): it moves the watermark.
    assert.equal(isAheadOfReceipt({ timestampMicros: 0, receivedMicros: YEAR_2127 }), false);
  });

  test('without a receive time (a replayed transcript) every timestamp moves the watermark', () => {
    const vm = new VmTransitions('h1', 'vm1');
    runVm(vm, [{ ...vfio(0, 'running'), timestampMicros: YEAR_2127 }]);
    assert.equal(vm.watermarkMicros, YEAR_2127);
  });

  test('SHUTDOWN and abort() reset the watermark: a VM poisoned before the rule (restored state) recovers', () => {
    const poisoned = (): VmTransitions => {
      const vm = new VmTransitions('h1', 'vm1');
      runVm(vm, [{ ...vfio(0, 'running'), timestampMicros: YEAR_2127 }]);
      return vm;
    };
    const prepareAndComplete = [
      received(vfio(100, 'pre-copy-p2p-prepare')),
      received(vfio(120, 'pre-copy-p2p')),
    ];
    const stuck = poisoned();
    assert.deepEqual(runVm(stuck, prepareAndComplete).map(brief), [
      'h1/vm1 prepare pre-copy-p2p timed_out - -',
      'h1/vm1 dwell running->pre-copy-p2p 0',
    ]);
    const shutDown = poisoned();
    runVm(shutDown, [{ kind: 'shutdown', host: 'h1', vm: 'vm1', timestampMicros: ms(50) }]);
    assert.equal(shutDown.watermarkMicros, -1);
    assert.deepEqual(runVm(shutDown, prepareAndComplete).map(brief), [
      'h1/vm1 prepare pre-copy-p2p completed pre-copy-p2p 0.02',
    ]);
    const aborted = poisoned();
    aborted.abort();
    assert.deepEqual(runVm(aborted, prepareAndComplete).map(brief), [
      'h1/vm1 prepare pre-copy-p2p completed pre-copy-p2p 0.02',
    ]);
  });

  test('live (records → VmTransitions, as the processor) and replay (records → TransitionEngine) agree', () => {
    const record = (atMs: number, event: string, deviceState: string | null, qemu = ms(atMs)) =>
      ({
        host: 'h1',
        vm: 'vm1',
        sessionId: 's',
        sequence: atMs,
        qemuTimestampMicros: qemu,
        receivedMicros: ms(atMs) + 300,
        event,
        qomPath: deviceState === null ? null : '/m/vf0',
        deviceId: deviceState === null ? null : 'vf0',
        deviceState,
        migrationStatus: null,
        data: null,
      }) satisfies EventRecord;
    const records = [
      record(0, 'VFIO_MIGRATION', 'pre-copy'),
      record(5, 'RTC_CHANGE', null, YEAR_2127),
      record(10, 'VFIO_MIGRATION', 'pre-copy-p2p-prepare'),
      record(30, 'VFIO_MIGRATION', 'pre-copy-p2p'),
    ];
    const events = records.map((r) => vmEventFromRecord(r) as VmEvent);
    const live = runVm(new VmTransitions('h1', 'vm1'), events);
    const replayed = run(new TransitionEngine(), events);
    assert.deepEqual(live, replayed);
    assert.deepEqual(live.map(brief), [
      'h1/vm1 prepare pre-copy-p2p completed pre-copy-p2p 0.02',
      'h1/vm1 dwell pre-copy->pre-copy-p2p 0.03',
    ]);
  });
});
