import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TransitionEngine } from '../../../../services/shared/core/transition-engine.ts';
import type { TransitionRecord } from '../../../../services/shared/core/transition-record.ts';
import type { VmEvent } from '../../../../services/shared/core/vm-event.ts';

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
  const out: TransitionRecord[] = [];
  for (const event of events) engine.apply(event, out);
  return out;
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
    const engine = new TransitionEngine();
    const out: TransitionRecord[] = [];
    assert.equal(engine.apply(vfio(0, 'running'), out), true);
    assert.equal(engine.apply(vfio(0, 'running'), out), false);
    assert.equal(engine.apply(vfio(5, 'running'), out), true);
    engine.apply(vfio(9, 'stop'), out);
    assert.deepEqual(out.map(brief), ['h1/vm1 dwell running->stop 0.009']);
    assert.equal(engine.stats().duplicates, 1);
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

  test('timeOutVm (a VM silent on the processor clock) ends its open prepares, watermark kept', () => {
    const engine = new TransitionEngine({ prepareTimeoutSeconds: 2 });
    run(engine, [vfio(0, 'pre-copy-p2p-prepare')]);
    const out: TransitionRecord[] = [];
    engine.timeOutVm('h1', 'vm1', out);
    assert.deepEqual(out.map(brief), ['h1/vm1 prepare pre-copy-p2p timed_out - -']);
    assert.equal(engine.stats().openPrepares, 0);
    // A new prepare just after is judged by QEMU time only: not timed out at once.
    assert.deepEqual(run(engine, [vfio(1, 'pre-copy-p2p-prepare')]), []);
  });

  test('takeChangedVms and restoreVm rebuild an engine that continues identically', () => {
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
    const original = new TransitionEngine({ trackChanges: true });
    run(original, events);
    const snapshots = original.takeChangedVms();
    assert.equal(snapshots.length, 1);
    assert.deepEqual(original.takeChangedVms(), [], 'changes are taken once');
    const rebuilt = new TransitionEngine({ trackChanges: true });
    for (const snapshot of JSON.parse(JSON.stringify(snapshots)) as typeof snapshots)
      rebuilt.restoreVm(snapshot);
    assert.deepEqual(run(rebuilt, later), run(original, later));
    assert.deepEqual(rebuilt.stats(), original.stats());
  });

  test('abortVm ends open prepares as aborted and starts new device timelines', () => {
    const engine = new TransitionEngine();
    run(engine, [vfio(0, 'pre-copy'), vfio(10, 'pre-copy-p2p-prepare')]);
    const out: TransitionRecord[] = [];
    engine.abortVm('h1', 'vm1', out);
    out.push(...run(engine, [vfio(20, 'running'), vfio(25, 'stop')]));
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
    engine.finish(out);
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
    }
  });
});
