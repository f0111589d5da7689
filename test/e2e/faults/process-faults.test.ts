/**
 * The fault matrix, process faults: one three-node cluster for the file; per scenario a seeded
 * fleet streams through collector → processor(s) → exporter (child processes of the CLI) while a
 * stage is hung, killed or fed a record Kafka refuses; then the pipeline drains and `verify`
 * checks every accepted event arrived, the transitions topic equals its recomputation (nothing a
 * zombie or a killed transaction wrote is visible), and the exporter saw each transition once.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startFakeQmpServer } from '../../helpers/qmp-server.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import {
  PROCESSOR_SESSION_TIMEOUT_MS,
  Scenario,
  seededRandom,
  startFaultCluster,
  type FleetOptions,
  type StageProcess,
} from './fault-harness.ts';

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
const fleet = (seed: number, seconds: number, speed = FLEET.speed): FleetOptions => ({
  ...FLEET,
  seed,
  seconds,
  speed,
});
const SIGKILLS = 3;
const MAX_MESSAGE_BYTES = 4096;

async function awaitPublishing(stage: StageProcess, counter: string): Promise<void> {
  await waitFor(async () => (await stage.metric(counter)) > 0, {
    timeoutMs: 90_000,
    intervalMs: 100,
    description: `${stage.name} publishing`,
  });
}

test('process faults while data flows', { timeout: 900_000 }, async (t) => {
  const fc = await startFaultCluster(t);

  await t.test(
    'zombie processor: SIGSTOP past the session timeout, the other takes over, SIGCONT',
    SCENARIO,
    async (t) => {
      const s = await Scenario.create(t, fc, { fleet: fleet(201, 40) });
      await s.run(async () => {
        const { processors } = await s.startPipeline(2);
        const [zombie, survivor] = processors as [StageProcess, StageProcess];
        await Promise.all(
          processors.map((p) => awaitPublishing(p, 'vfio_processor_transitions_published_total')),
        );
        s.log(`SIGSTOP ${zombie.name}`);
        zombie.signal('SIGSTOP');
        await sleep(2 * PROCESSOR_SESSION_TIMEOUT_MS + 3000);
        const before = await survivor.metric('vfio_processor_transitions_published_total');
        await waitFor(
          async () =>
            (await survivor.metric('vfio_processor_transitions_published_total')) > before,
          { timeoutMs: 30_000, description: `${survivor.name} publishing alone` },
        );
        s.log(`SIGCONT ${zombie.name}`);
        zombie.signal('SIGCONT');
        await s.verify();
        s.log(
          `${zombie.name}: ${await zombie.metric('vfio_processor_transaction_failures_total')} ` +
            'failed transactions after SIGCONT',
        );
      });
    },
  );

  await t.test(
    'processor SIGKILLed three times inside a transaction, restarted each time',
    SCENARIO,
    async (t) => {
      const random = seededRandom(202);
      const s = await Scenario.create(t, fc, { fleet: fleet(202, 50) });
      await s.run(async () => {
        let { processors } = await s.startPipeline(1);
        for (let kill = 1; kill <= SIGKILLS; kill++) {
          const [processor] = processors as [StageProcess];
          await awaitPublishing(processor, 'vfio_processor_transitions_published_total');
          const delayMs = Math.round(200 + random() * 2500);
          await sleep(delayMs);
          s.log(
            `SIGKILL ${processor.name} ${delayMs} ms after it first published (${kill}/${SIGKILLS})`,
          );
          await processor.kill();
          processors = [await s.startProcessor()];
        }
        await s.verify();
      });
    },
  );

  await t.test(
    'processor SIGKILLed and restarted at once, three times: new transitions visible within 5 s',
    SCENARIO,
    async (t) => {
      const s = await Scenario.create(t, fc, { fleet: fleet(205, 60) });
      // The defaults, not the harness's short ones: a restart must not wait for the dead
      // member's session or the dead transaction's timeout.
      const defaults = ['--session-timeout-ms', '30000', '--transaction-timeout-ms', '10000'];
      const transitions = s.partitions(s.topics.transitions);
      await s.run(async () => {
        let [processor] = (await s.startPipeline(1, defaults)).processors as [StageProcess];
        const visible: number[] = [];
        for (let kill = 1; kill <= SIGKILLS; kill++) {
          await awaitPublishing(processor, 'vfio_processor_transitions_published_total');
          await sleep(2000);
          // Everything written so far, the dead processor's open transaction included: a record
          // past this that a read_committed reader sees was committed by the restarted one.
          const written = await s.fc.port.endOffsets(transitions, 'read_uncommitted');
          await processor.kill();
          const spawnedAt = Date.now();
          processor = await s.startProcessor(defaults);
          const seenAt = await waitFor(
            async () => {
              let seen = 0;
              await s.fc.port.readToEnd(written, () => seen++, 'read_committed');
              return seen > 0 ? Date.now() : null;
            },
            { timeoutMs: 90_000, intervalMs: 100, description: 'new transitions visible' },
          );
          // From the restarted process's first log line (its identity, before any Kafka
          // request): Node's own start-up, which a loaded machine stretches, is not the
          // processor's doing.
          const startedAt = await s.firstLogTime(processor);
          visible.push(seenAt - startedAt);
          s.log(
            `SIGKILL and restart ${kill}/${SIGKILLS}: new transitions ${seenAt - startedAt} ms ` +
              `after the restarted processor started (${seenAt - spawnedAt} ms after the spawn)`,
          );
        }
        await s.verify();
        for (const ms of visible) assert.ok(ms <= 5000, `new transitions after ${ms} ms`);
      });
    },
  );

  await t.test(
    'collector SIGKILLed three times with records in flight, restarted on its spool',
    SCENARIO,
    async (t) => {
      const random = seededRandom(203);
      const s = await Scenario.create(t, fc, {
        fleet: fleet(203, 45, 30),
        collectorFlags: ['--linger-ms', '5'],
      });
      await s.run(async () => {
        let { collector } = await s.startPipeline(1);
        for (let kill = 1; kill <= SIGKILLS; kill++) {
          await awaitPublishing(collector, 'vfio_collector_events_published_total');
          await sleep(Math.round(1500 + random() * 3500));
          // Kill it while Kafka has not acknowledged some of its spool.
          const inFlight = await waitFor(
            async () => {
              const spooled = await collector.metric('vfio_collector_spool_events');
              return spooled > 0 ? spooled : null;
            },
            {
              timeoutMs: 10_000,
              intervalMs: 5,
              description: `${collector.name} with records in flight`,
            },
          );
          s.log(
            `SIGKILL ${collector.name} with ${inFlight} events in its spool (${kill}/${SIGKILLS})`,
          );
          await collector.kill();
          collector = await s.startCollector();
        }
        await s.verify({ collectorKilled: true });
      });
    },
  );

  await t.test(
    'a record over max.message.bytes mid-stream: rejected.jsonl, counted, the rest exact',
    SCENARIO,
    async (t) => {
      const s = await Scenario.create(t, fc, {
        fleet: fleet(204, 30),
        eventsConfigs: { 'max.message.bytes': String(MAX_MESSAGE_BYTES) },
      });
      await s.run(async () => {
        // One more VM in the fleet's socket directory, played by hand, sends the huge event.
        const vm = await startFakeQmpServer(join(s.socketDir, 'vm-huge.qmp'));
        t.after(() => vm.close());
        const { collector } = await s.startPipeline(1);
        await waitFor(() => vm.negotiated, { description: 'vm-huge negotiated' });
        const states = [
          'pre-copy',
          'pre-copy-p2p-prepare',
          'pre-copy-p2p',
          'stop-copy',
          'stop',
          'running',
        ];
        let emitted = 0;
        const emit = (qomPath: string, state: string): void => {
          assert.ok(
            vm.emit('VFIO_MIGRATION', {
              'device-id': 'vf0',
              'qom-path': qomPath,
              'device-state': state,
            }) > 0,
          );
          emitted++;
        };
        for (let i = 0; i < 300; i++) {
          if (i === 150)
            emit(`/machine/peripheral/${'x'.repeat(3 * MAX_MESSAGE_BYTES)}`, 'pre-copy');
          emit('/machine/peripheral/vf0', states[i % states.length] as string);
          await sleep(20);
        }
        await vm.close();
        const verified = await s.verify({ extraEventsSent: emitted });
        assert.equal(verified.rejected.length, 1, 'one record in rejected.jsonl');
        assert.equal(
          await collector.metric('vfio_collector_records_rejected_total'),
          1,
          'the collector counted the refused record',
        );
      });
    },
  );
});
