import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Episode, EpisodeOutcome } from '../../../services/simulator/core/episode.ts';
import {
  DEFAULT_FLEET_CONFIG,
  type FleetConfig,
} from '../../../services/simulator/core/fleet-config.ts';
import { createFleet } from '../../../services/simulator/core/fleet.ts';
import { formatQmpMessage } from '../../../services/simulator/core/qmp-json.ts';
import { renderEvent } from '../../../services/simulator/core/render-event.ts';
import { migrationsPerVm, VmSchedule } from '../../../services/simulator/core/vm-schedule.ts';

const ANCHOR = 1_795_798_176_000_000;

function config(overrides: Partial<FleetConfig>): FleetConfig {
  return { ...DEFAULT_FLEET_CONFIG, ...overrides };
}

function schedules(c: FleetConfig): VmSchedule[] {
  return createFleet(c).map((vm) => new VmSchedule(vm, c));
}

function bytes(c: FleetConfig, episodes: number): string {
  let out = '';
  for (const schedule of schedules(c)) {
    for (let i = 0; i < episodes; i++) {
      for (const e of schedule.next().events)
        out += formatQmpMessage(renderEvent(e, ANCHOR), false);
    }
  }
  return out;
}

/** An episode as a list: VFIO states as `dev:state`, other events by name (and status). */
function spell(episode: Episode): string[] {
  return episode.events.map((e) => {
    const data = (e.data ?? {}) as Record<string, string>;
    if (e.name === 'VFIO_MIGRATION') return `${data['device-id']}:${data['device-state']}`;
    if (e.name === 'MIGRATION') return `MIGRATION ${data['status']}`;
    return e.name === 'MIGRATION_PASS' ? 'PASS' : e.name;
  });
}

/** The first episode of the given role and outcome of a one-VM fleet. */
function find(c: FleetConfig, role: string, outcome: EpisodeOutcome): Episode {
  const [schedule] = schedules(c);
  for (let i = 0; i < 2000; i++) {
    const episode = schedule!.next();
    if (episode.role === role && episode.outcome === outcome) return episode;
  }
  throw new Error(`no ${role} ${outcome} episode`);
}

/** Drops repeated PASS entries: the number of pre-copy passes is random. */
const squeeze = (list: string[]): string[] =>
  list.filter((x, i) => !(x === 'PASS' && list[i - 1] === 'PASS'));

describe('determinism', () => {
  test('same seed, same bytes; another seed, other bytes', () => {
    const c = config({ vms: 4, devicesPerVm: 3, clockStepsPerVmPerMinute: 2, seed: 9 });
    assert.equal(bytes(c, 20), bytes(c, 20));
    assert.notEqual(bytes(c, 20), bytes({ ...c, seed: 10 }, 20));
  });

  test('clock steps do not change the episodes, only timestamps', () => {
    const c = config({ vms: 2, seed: 3 });
    const stepped = { ...c, clockStepsPerVmPerMinute: 5, clockStepMs: 250 };
    const plain = schedules(c).flatMap((s) => [s.next(), s.next(), s.next()]);
    const shifted = schedules(stepped).flatMap((s) => [s.next(), s.next(), s.next()]);
    assert.deepEqual(plain.map(spell), shifted.map(spell));
    const offsets = new Set(shifted.flatMap((e) => e.events.map((x) => x.clockOffsetMicros)));
    assert.ok(offsets.size > 1);
    for (const o of offsets) assert.equal(Math.abs(o % 250_000), 0);
  });

  test('virtual time never goes back within a VM', () => {
    for (const schedule of schedules(config({ vms: 3, devicesPerVm: 4, failureRate: 0.3 }))) {
      let last = -1;
      for (let i = 0; i < 50; i++) {
        for (const e of schedule.next().events) {
          assert.ok(e.atMicros > last);
          last = e.atMicros;
        }
      }
    }
  });
});

describe('sequences of the domain notes §2.6', () => {
  const one = (p2p: number, precopy: number, extra: Partial<FleetConfig> = {}): FleetConfig =>
    config({
      vms: 1,
      devicesPerVm: 1,
      p2pRatio: p2p,
      precopyRatio: precopy,
      failureRate: 0,
      prepareFailureRate: 0,
      ...extra,
    });
  const tail = ['MIGRATION completed', 'vf0:stop', 'SHUTDOWN'];

  test('source, PRE_COPY + P2P', () => {
    assert.deepEqual(squeeze(spell(find(one(1, 1), 'source', 'completed'))), [
      'MIGRATION setup',
      'PASS',
      'vf0:pre-copy',
      'MIGRATION active',
      'PASS',
      'vf0:pre-copy-p2p-prepare',
      'vf0:pre-copy-p2p',
      'vf0:stop-copy',
      'STOP',
      'PASS',
      ...tail,
    ]);
  });

  test('source, PRE_COPY without P2P', () => {
    assert.deepEqual(squeeze(spell(find(one(0, 1), 'source', 'completed'))), [
      'MIGRATION setup',
      'PASS',
      'vf0:pre-copy',
      'MIGRATION active',
      'PASS',
      'vf0:stop-copy',
      'STOP',
      'PASS',
      ...tail,
    ]);
  });

  test('source, P2P without PRE_COPY', () => {
    assert.deepEqual(squeeze(spell(find(one(1, 0), 'source', 'completed'))), [
      'MIGRATION setup',
      'PASS',
      'MIGRATION active',
      'PASS',
      'vf0:running-p2p',
      'vf0:stop',
      'STOP',
      'PASS',
      'vf0:stop-copy',
      ...tail,
    ]);
  });

  test('source, neither', () => {
    assert.deepEqual(squeeze(spell(find(one(0, 0), 'source', 'completed'))), [
      'MIGRATION setup',
      'PASS',
      'MIGRATION active',
      'PASS',
      'vf0:stop',
      'STOP',
      'PASS',
      'vf0:stop-copy',
      ...tail,
    ]);
  });

  test('destination, with and without P2P', () => {
    const head = ['MIGRATION setup', 'MIGRATION active', 'vf0:resuming', 'RESUME'];
    assert.deepEqual(spell(find(one(1, 1), 'destination', 'completed')), [
      ...head,
      'vf0:running-p2p',
      'vf0:running',
      'MIGRATION completed',
    ]);
    assert.deepEqual(spell(find(one(0, 1), 'destination', 'completed')), [
      ...head,
      'vf0:running',
      'MIGRATION completed',
    ]);
    assert.deepEqual(spell(find(one(1, 1, { failureRate: 1 }), 'destination', 'failed-load')), [
      'MIGRATION setup',
      'MIGRATION active',
      'vf0:resuming',
      'MIGRATION failed',
    ]);
  });

  test('failed PRE_COPY_P2P ioctl: prepare, running (reset), stop, STOP, failed, RESUME, running-p2p, running', () => {
    const episode = find(one(1, 1, { prepareFailureRate: 1 }), 'source', 'failed-prepare');
    assert.deepEqual(squeeze(spell(episode)).slice(5), [
      'vf0:pre-copy-p2p-prepare',
      'vf0:running',
      'vf0:stop',
      'STOP',
      'MIGRATION failed',
      'RESUME',
      'vf0:running-p2p',
      'vf0:running',
    ]);
    assert.equal(episode.preparesFailed, 1);
  });

  test('cancel during pre-copy: cancelling, cancelled, then running', () => {
    const episode = find(one(1, 1, { failureRate: 0.5 }), 'source', 'cancelled');
    assert.deepEqual(squeeze(spell(episode)).slice(-3), [
      'MIGRATION cancelling',
      'MIGRATION cancelled',
      'vf0:running',
    ]);
    assert.equal(episode.preparesCompleted + episode.preparesFailed, 0);
  });

  test('failure after stop: failed, RESUME, running-p2p, running', () => {
    const episode = find(one(1, 1, { failureRate: 0.5 }), 'source', 'failed-after-stop');
    assert.deepEqual(squeeze(spell(episode)).slice(5), [
      'vf0:pre-copy-p2p-prepare',
      'vf0:pre-copy-p2p',
      'vf0:stop-copy',
      'STOP',
      'PASS',
      'MIGRATION failed',
      'RESUME',
      'vf0:running-p2p',
      'vf0:running',
    ]);
  });

  test('several devices: all P2P transitions serially, then the stop transitions', () => {
    const c = config({
      vms: 1,
      devicesPerVm: 3,
      p2pRatio: 1,
      precopyRatio: 1,
      failureRate: 0,
      prepareFailureRate: 0,
    });
    const list = squeeze(spell(find(c, 'source', 'completed')));
    const from = list.indexOf('vf0:pre-copy-p2p-prepare');
    assert.deepEqual(list.slice(from, from + 10), [
      'vf0:pre-copy-p2p-prepare',
      'vf0:pre-copy-p2p',
      'vf1:pre-copy-p2p-prepare',
      'vf1:pre-copy-p2p',
      'vf2:pre-copy-p2p-prepare',
      'vf2:pre-copy-p2p',
      'vf0:stop-copy',
      'vf1:stop-copy',
      'vf2:stop-copy',
      'STOP',
    ]);
  });

  test('STOP and RESUME carry no data; SHUTDOWN says host-qmp-quit', () => {
    const episode = find(one(1, 1), 'source', 'completed');
    for (const e of episode.events) {
      if (e.name === 'STOP' || e.name === 'RESUME') assert.equal(e.data, undefined);
    }
    const shutdown = episode.events.at(-1)!;
    assert.equal(
      formatQmpMessage(renderEvent(shutdown, 0), false).replace(/"timestamp": \{[^}]*\}, /, ''),
      '{"event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}\r\n',
    );
  });
});

describe('rates', () => {
  test('prepare outcomes follow the prepare failure rate', () => {
    const c = config({
      vms: 20,
      devicesPerVm: 2,
      p2pRatio: 1,
      precopyRatio: 1,
      prepareFailureRate: 0.2,
      seed: 77,
    });
    let completed = 0;
    let failed = 0;
    for (const schedule of schedules(c)) {
      for (let i = 0; i < 200; i++) {
        const e = schedule.next();
        completed += e.preparesCompleted;
        failed += e.preparesFailed;
      }
    }
    const share = failed / (completed + failed);
    assert.ok(completed + failed > 3000, `${completed + failed} prepares`);
    assert.ok(Math.abs(share - 0.2) < 0.02, `failed share ${share}`);
  });

  test('migrations start at roughly the configured rate', () => {
    const c = config({ vms: 1, migrationsPerVmPerMinute: 0.5, seed: 4 });
    const [schedule] = schedules(c);
    let last: Episode | undefined;
    for (let i = 0; i < 400; i++) last = schedule!.next();
    const perMinute = 400 / (last!.startMicros / 60e6);
    assert.ok(Math.abs(perMinute - 0.5) < 0.06, `${perMinute} per minute`);
  });
});

describe('limits', () => {
  test('a migration limit takes the fleet’s earliest migrations', () => {
    const c = config({ vms: 7, seed: 2 });
    const counts = migrationsPerVm(createFleet(c), c, { maxMigrations: 50 })!;
    assert.equal(
      counts.reduce((a, b) => a + b, 0),
      50,
    );
    const lastStart = Math.max(
      ...schedules(c).map((s, i) => {
        let start = 0;
        for (let k = 0; k < counts[i]!; k++) start = s.next().startMicros;
        return start;
      }),
    );
    for (const [i, s] of schedules(c).entries()) {
      for (let k = 0; k < counts[i]!; k++) s.next();
      assert.ok(s.next().startMicros >= lastStart, 'no left-out migration starts earlier');
    }
  });

  test('a duration keeps the migrations that end within it; no limits means none', () => {
    const c = config({ vms: 3, migrationsPerVmPerMinute: 10 });
    const counts = migrationsPerVm(createFleet(c), c, { durationMicros: 120e6 })!;
    for (const [i, s] of schedules(c).entries()) {
      for (let k = 0; k < counts[i]!; k++) assert.ok(s.next().endMicros <= 120e6);
      assert.ok(s.next().endMicros > 120e6);
    }
    assert.equal(migrationsPerVm(createFleet(c), c, {}), null);
  });
});
