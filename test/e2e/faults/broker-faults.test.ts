/**
 * The fault matrix, broker faults: one three-node cluster for the file, healed between scenarios.
 * While a seeded fleet streams through collector → processor → exporter (child processes of the
 * CLI), a broker is killed, hung or restarted; then the pipeline drains and `verify` checks every
 * event arrived, the transitions topic equals its recomputation, and the exporter saw each once.
 */
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { leaderOf } from '../../helpers/kafka-cluster.ts';
import { Scenario, startFaultCluster, type FleetOptions } from './fault-harness.ts';

/** About 250 events/s: 20 VMs × 2 devices, 2 migrations per VM per simulated minute, speed 20. */
const FLEET = {
  vms: 20,
  devicesPerVm: 2,
  migrationsPerVmPerMinute: 2,
  speed: 20,
  failureRate: 0.1,
};
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
        const eventsLeader = await leaderOf(fc.cluster.brokers, s.topics.events, events);
        const transitionsLeader = await leaderOf(
          fc.cluster.brokers,
          s.topics.transitions,
          transitions,
        );
        s.log(
          `busiest: ${s.topics.events}/${events} led by ${eventsLeader}, ` +
            `${s.topics.transitions}/${transitions} led by ${transitionsLeader}; killing ${eventsLeader}`,
        );
        await fc.cluster.kill(eventsLeader);
        await sleep(20_000);
        await fc.cluster.start(eventsLeader);
        s.log(`node ${eventsLeader} back`);
        await s.verify();
      });
    },
  );

  await t.test('SIGSTOP of a broker for 30 s (hung), then SIGCONT', SCENARIO, async (t) => {
    const s = await Scenario.create(t, fc, { fleet: fleet(102, 45) });
    await s.run(async () => {
      await s.startPipeline();
      await s.awaitTransitions(200);
      const events = await s.busiestPartition(s.topics.events);
      const hung = await leaderOf(fc.cluster.brokers, s.topics.events, events);
      s.log(`pausing node ${hung}, leader of ${s.topics.events}/${events}`);
      await fc.cluster.pause(hung);
      await sleep(30_000);
      await fc.cluster.resume(hung);
      s.log(`node ${hung} resumed`);
      await s.verify();
    });
  });

  await t.test('rolling restart of all three brokers, one at a time', SCENARIO, async (t) => {
    const s = await Scenario.create(t, fc, { fleet: fleet(103, 60) });
    await s.run(async () => {
      await s.startPipeline();
      await s.awaitTransitions(100);
      for (const { id } of fc.cluster.nodes) {
        s.log(`restarting node ${id}`);
        await fc.cluster.stop(id);
        await fc.cluster.start(id);
        await s.awaitInSync();
        s.log(`node ${id} back and in sync`);
      }
      await s.verify();
    });
  });
});
