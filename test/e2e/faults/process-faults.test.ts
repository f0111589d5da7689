/**
 * The fault matrix, process faults: one three-node cluster for the file; per scenario a seeded
 * fleet streams through collector → processor(s) → exporter (child processes of the CLI) while a
 * stage is hung, killed or fed a record Kafka refuses; each scenario checks its fault took effect
 * (the broker held the killed processor's transaction open; the zombie's late commit was fenced)
 * or fails as "fault did not happen"; then the pipeline drains and `verify` checks every accepted
 * event arrived, the transitions topic equals its recomputation (nothing a zombie or a killed
 * transaction wrote is visible), and the exporter saw each transition once.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FENCING_ERRORS } from '../../../services/shared/kafka/io/errors.ts';
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
const TRANSACTION_FAILURES = 'vfio_processor_transaction_failures_total';

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
    'zombie processor: SIGSTOP inside a transaction past the session timeout, the other takes over, SIGCONT: fenced, rejoins',
    SCENARIO,
    async (t) => {
      const s = await Scenario.create(t, fc, { fleet: fleet(201, 40) });
      await s.run(async () => {
        const { processors, simulator } = await s.startPipeline(2);
        const [zombie, survivor] = processors as [StageProcess, StageProcess];
        await Promise.all(
          processors.map((p) => awaitPublishing(p, 'vfio_processor_transitions_published_total')),
        );
        const fenced = { kind: 'fenced' };
        const fencedBefore = await zombie.metric(TRANSACTION_FAILURES, fenced);
        // Stopped with a transaction open: once it runs again, it goes on to commit it.
        const open = await s.stopInsideTransaction(zombie);
        s.log(
          `SIGSTOP ${zombie.name} inside its transaction on ${open.partitions.length} partitions`,
        );
        await sleep(2 * PROCESSOR_SESSION_TIMEOUT_MS + 3000);
        const before = await survivor.metric('vfio_processor_transitions_published_total');
        await waitFor(
          async () =>
            (await survivor.metric('vfio_processor_transitions_published_total')) > before,
          { timeoutMs: 30_000, description: `${survivor.name} publishing alone` },
        );
        assert.ok(
          simulator.stats().migrations > 0 && !s.fleetDone,
          'fault did not happen: the fleet had stopped before the zombie came back',
        );
        s.log(`SIGCONT ${zombie.name}`);
        const continuedAt = Date.now();
        zombie.signal('SIGCONT');
        // Its late commit is refused: fenced (producer epoch or group generation), not committed.
        await waitFor(
          async () => (await zombie.metric(TRANSACTION_FAILURES, fenced)) > fencedBefore,
          {
            timeoutMs: 60_000,
            intervalMs: 100,
            description: `${zombie.name}'s late commit fenced`,
          },
        ).catch((error: unknown) => {
          throw new Error(`fault did not happen: ${zombie.name}'s late commit was not fenced`, {
            cause: error,
          });
        });
        const errors = (await zombie.metrics())
          .filter((m) => m.name === 'vfio_processor_transaction_errors_total' && m.value > 0)
          .map((m) => m.labels['kafka_error'] ?? '');
        s.log(
          `${zombie.name} fenced; Kafka errors of its failed transactions: ${errors.join(', ')}`,
        );
        assert.ok(
          errors.some((e) => FENCING_ERRORS.has(e)),
          `fault did not happen: ${zombie.name} was not fenced by Kafka (errors: ${errors.join(', ')})`,
        );
        // It rejoins the group: a new generation with partitions assigned.
        await waitFor(
          async () =>
            (await s.logRecords(zombie)).some(
              (r) =>
                r['msg'] === 'Joined the consumer group.' &&
                Date.parse(String(r['time'])) >= continuedAt &&
                Array.isArray(r['assignments']) &&
                r['assignments'].length > 0,
            ),
          { timeoutMs: 60_000, intervalMs: 200, description: `${zombie.name} rejoined the group` },
        );
        s.log(`${zombie.name} rejoined the group`);
        await s.verify();
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
          const id = await s.transactionalIdOf(processor);
          const open = await s.stopInsideTransaction(processor);
          s.log(
            `SIGKILL ${processor.name} inside a transaction, ${delayMs} ms after it first ` +
              `published (${kill}/${SIGKILLS})`,
          );
          processor.signal('SIGKILL');
          await processor.exited;
          // The broker still holds the dead processor's transaction open: it died inside it.
          const dead = (await s.fc.port.describeTransactions([id])).get(id);
          assert.ok(
            dead?.state === 'Ongoing' && dead.producerEpoch === open.producerEpoch,
            `fault did not happen: ${processor.name}'s transaction ${id} was not open at the kill ` +
              `(${dead?.state ?? 'unknown'} epoch ${dead?.producerEpoch})`,
          );
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
