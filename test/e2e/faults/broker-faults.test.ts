/**
 * The fault matrix, broker faults: one three-node cluster for the file, healed between scenarios.
 * While a seeded fleet streams through collector → processor → exporter (child processes of the
 * CLI), a broker is killed, hung or restarted; each scenario checks its fault took effect (the
 * leadership moved; produce requests were pending while the broker hung) or fails as "fault did
 * not happen"; then the pipeline drains and `verify` checks every event arrived, the transitions
 * topic equals its recomputation, and the exporter saw each once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from '../../helpers/wait-for.ts';
import { Scenario, startFaultCluster, type FleetOptions } from './fault-harness.ts';

/** About 250 events/s: 20 VMs × 2 devices, 2 migrations per VM per simulated minute, speed 20. */
const FLEET = {
  vms: 20,
  devicesPerVm: 2,
  migrationsPerVmPerMinute: 2,
  speed: 20,
  failureRate: 0.1,
};
/** A hung leader holds the collector's produce ~9 s (broker session timeout); normal acks take ms. */
const SLOW_PUBLISH_SECONDS = 5;
/** A scenario that overruns this failed somewhere its own waits do not cover. */
const SCENARIO = { timeout: 300_000 };
const fleet = (seed: number, seconds: number): FleetOptions => ({ ...FLEET, seed, seconds });

test('broker faults while data flows', { timeout: 900_000 }, async (t) => {
  const fc = await startFaultCluster(t);

  await t.test(
    'SIGKILL of the leader of the busiest partitions, back 20 s later',
    SCENARIO,
    async (t) => {
      const s = await Scenario.create(t, fc, { fleet: fleet(101, 35) });
      await s.run(async () => {
        await s.startPipeline();
        await s.awaitTransitions(200);
        const events = await s.busiestPartition(s.topics.events);
        const transitions = await s.busiestPartition(s.topics.transitions);
        const eventsLeader = (await s.leaders(s.topics.events))[events] ?? -1;
        const transitionsLeader = (await s.leaders(s.topics.transitions))[transitions] ?? -1;
        assert.ok(eventsLeader > 0, `${s.topics.events}/${events} has a leader`);
        s.log(
          `busiest: ${s.topics.events}/${events} led by ${eventsLeader}, ` +
            `${s.topics.transitions}/${transitions} led by ${transitionsLeader}; killing ${eventsLeader}`,
        );
        const killedAt = Date.now();
        await fc.cluster.kill(eventsLeader);
        const newLeader = await s.awaitLeaderMoved(s.topics.events, events, eventsLeader);
        s.log(
          `${s.topics.events}/${events} led by ${newLeader} ${Date.now() - killedAt} ms after the kill`,
        );
        await sleep(Math.max(0, 20_000 - (Date.now() - killedAt)));
        await fc.cluster.start(eventsLeader);
        s.log(`node ${eventsLeader} back`);
        await s.verify();
      });
    },
  );

  await t.test('SIGSTOP of a broker for 30 s (hung), then SIGCONT', SCENARIO, async (t) => {
    const s = await Scenario.create(t, fc, { fleet: fleet(102, 45) });
    await s.run(async () => {
      const { collector } = await s.startPipeline();
      await s.awaitTransitions(200);
      const events = await s.busiestPartition(s.topics.events);
      const hung = (await s.leaders(s.topics.events))[events] ?? -1;
      assert.ok(hung > 0, `${s.topics.events}/${events} has a leader`);
      s.log(`pausing node ${hung}, leader of ${s.topics.events}/${events}`);
      await fc.cluster.pause(hung);
      const slowBefore = await s.slowPublishes(collector, SLOW_PUBLISH_SECONDS);
      await sleep(30_000);
      await fc.cluster.resume(hung);
      // The collector's records for the hung leader's partition wait until the controller has
      // moved the leadership (the broker session timeout, 9 s): acknowledged seconds late.
      const slow = await waitFor(
        async () => {
          const n = (await s.slowPublishes(collector, SLOW_PUBLISH_SECONDS)) - slowBefore;
          return n > 0 ? n : null;
        },
        {
          timeoutMs: 30_000,
          intervalMs: 500,
          description: `events published over ${SLOW_PUBLISH_SECONDS} s late`,
        },
      ).catch((error: unknown) => {
        throw new Error(
          `fault did not happen: no produce request was pending while node ${hung} was paused ` +
            `(no event acknowledged over ${SLOW_PUBLISH_SECONDS} s after it was received)`,
          { cause: error },
        );
      });
      s.log(
        `node ${hung} resumed; ${slow} events were acknowledged over ${SLOW_PUBLISH_SECONDS} s after they arrived`,
      );
      await s.verify();
    });
  });

  await t.test('rolling restart of all three brokers, one at a time', SCENARIO, async (t) => {
    const s = await Scenario.create(t, fc, { fleet: fleet(103, 60) });
    await s.run(async () => {
      await s.startPipeline();
      await s.awaitTransitions(100);
      const topics = [s.topics.events, s.topics.transitions, s.topics.state];
      let moved = 0;
      for (const { id } of fc.cluster.nodes) {
        const led: [string, number][] = [];
        for (const topic of topics) {
          (await s.leaders(topic)).forEach((leader, p) => {
            if (leader === id) led.push([topic, p]);
          });
        }
        s.log(`restarting node ${id}, leader of ${led.length} partitions`);
        await fc.cluster.stop(id);
        // A controlled shutdown hands each of its partitions to another replica.
        for (const [topic, p] of led) await s.awaitLeaderMoved(topic, p, id, 30_000);
        moved += led.length;
        await fc.cluster.start(id);
        await s.awaitInSync();
        s.log(`node ${id} back and in sync`);
      }
      assert.ok(moved > 0, 'fault did not happen: no stopped node led a partition');
      await s.verify();
    });
  });
});
