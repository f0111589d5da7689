import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import type { Subscription } from 'rxjs';
import { backoffCeilingMs, type BackoffPolicy } from '../shared/core/backoff.ts';
import { isTelemetryError, TelemetryError } from '../shared/core/errors.ts';
import {
  createEventCodec,
  createTransitionCodec,
  type AvroCodec,
} from '../shared/io/avro-codec.ts';
import type { RunningHttpServer } from '../shared/io/http-server.ts';
import type { GroupConsumer, KafkaPort, TopicDescription } from '../shared/kafka/io/port.ts';
import { describeRefusal } from '../shared/kafka/core/refusal.ts';
import { createKafkaRefusals } from '../shared/kafka/io/kafka-refusals.ts';
import { createRefusalDiagnosis } from '../shared/kafka/io/security.ts';
import type { Logger } from '../shared/io/logger.ts';
import { kafkaSecurityOf } from '../shared/kafka/core/options.ts';
import { startStage, type KafkaPortFactory } from '../shared/io/stage.ts';
import type { ProcessorConfig } from './config.ts';
import { processorKafkaIds } from './core/instance-identity.ts';
import type { PublishedTransition } from './core/published-transition.ts';
import { transactionPipeline } from './io/batch-pipeline.ts';
import { createProcessorTelemetry, METRIC_PREFIX } from './io/processor-telemetry.ts';
import { claimIdentity } from './io/state-dir.ts';
import { TransactionRunner } from './io/transaction-runner.ts';

/**
 * The processor stage: events topic → transition engine → transitions topic, exactly once, as a
 * transactional read-process-write loop (Kafka Streams `exactly_once_v2`; see
 * io/transaction-runner.ts for the loop, io/state-restore.ts for why a restore is correct, and
 * core/process-batch.ts for the pure step). Deterministic from the events topic: an audit can
 * recompute every partition with `recomputePartition`.
 *
 * Read_committed consumers of the transitions topic see a transaction's records when it commits:
 * at most the commit interval (plus one commit round trip) after the event reached the events
 * topic, all of a transaction at once, never a record of an aborted one.
 */
export interface RunningProcessor {
  http: RunningHttpServer;
  registry: Registry;
  /** Commits the records in hand, leaves the group and closes; resolves when done. */
  stop(): Promise<void>;
}

export interface ProcessorHooks {
  /**
   * The loop failed (a programmer error, or the consumer broke): nothing is consumed any more.
   * The command exits non-zero for its supervisor to restart it, as the last resort does; the
   * records in flight were never committed, so the restart loses nothing.
   */
  onLoopFailed?: (error: unknown) => void;
  /** Aborted when the command stops: a start waiting while Kafka refuses it gives up. */
  signal?: AbortSignal;
}

const IDLE_WAIT_MS = 500;
const TOPIC_WAIT_MS = 30_000;
const TOPIC_WAIT_BACKOFF: BackoffPolicy = { initialMs: 100, maxMs: 2000, multiplier: 2 };

export async function startProcessor(
  config: ProcessorConfig,
  logger: Logger,
  kafka?: KafkaPort,
  hooks: ProcessorHooks = {},
  kafkaPortFactory?: KafkaPortFactory,
): Promise<RunningProcessor> {
  const registry = new Registry();
  return startStage(
    {
      name: 'processor',
      logger,
      registry,
      http: config,
      ...(kafkaPortFactory === undefined ? {} : { kafkaPortFactory }),
    },
    async (stage) => {
      const telemetry = createProcessorTelemetry(registry, logger);
      // First, before any Kafka traffic: a second processor on the same state directory stops
      // here (STATE_DIR_LOCKED), not after fencing the first one's producer.
      const identity = claimIdentity({
        instanceId: config.instanceId,
        stateDir: config.stateDir,
        cwd: process.cwd(),
      });
      stage.started('identity', () => identity.release());
      const ids = processorKafkaIds(config.groupId, identity.instanceId, config.transactionalId);
      const refusals = createKafkaRefusals({
        registry,
        metricPrefix: METRIC_PREFIX,
        stage: 'processor',
        logger,
        diagnose: createRefusalDiagnosis(config.brokers, kafkaSecurityOf(config)),
        ...(hooks.signal === undefined ? {} : { signal: hooks.signal }),
      });
      /** The parts readiness asks, once they started. */
      const parts: { consumer?: GroupConsumer; runner?: TransactionRunner } = {};
      stage.readiness(() => {
        const { consumer, runner } = parts;
        const refused = refusals.current === undefined ? [] : [describeRefusal(refusals.current)];
        if (consumer === undefined || runner === undefined) {
          return { ready: false, reasons: refused.length > 0 ? refused : ['starting'] };
        }
        const membership = consumer.membership();
        if (membership === null) {
          return { ready: false, reasons: ['not in the consumer group', ...refused] };
        }
        if (runner.commitHung(Date.now())) {
          return {
            ready: false,
            reasons: [
              `a commit has hung longer than the transaction timeout (${config.transactionTimeoutMs} ms)`,
            ],
          };
        }
        if (!runner.healthy) {
          return {
            ready: false,
            reasons: refused.length > 0 ? refused : ['transactions are failing'],
          };
        }
        const partitions = membership.assigned.map((p) => p.partition).join(',') || 'none';
        return { ready: true, reasons: [`consuming partitions ${partitions}`] };
      });
      logger.info('The processor has its identity.', {
        instanceId: identity.instanceId,
        stateDir: identity.stateDir ?? undefined,
        createdNow: identity.created,
        tookOverLockOfPid: identity.tookOverFrom?.pid,
        transactionalId: ids.transactionalId,
      });
      // Served before Kafka is asked anything: /readyz says why while Kafka refuses the start.
      const http = await stage.serve({ registry });
      const port =
        kafka ??
        stage.kafkaPort({
          brokers: config.brokers,
          clientId: config.clientId,
          security: kafkaSecurityOf(config),
        });
      stage.started('kafka', () => port.close());
      const topics = await checkTopics(port, config);
      const producer = await port.producer({
        transactionalId: ids.transactionalId,
        transactionTimeoutMs: config.transactionTimeoutMs,
      });
      stage.started('producer', () => producer.close());
      // InitProducerId now, before joining the group and restoring: a predecessor with this
      // transactional id (this instance before a crash) is fenced and its open transaction aborted
      // at once, so neither our restore nor any read_committed reader waits for the broker's
      // transaction timeout. Refused (no WRITE on the transactional id, no READ on the group):
      // wait until granted, saying so in the log, /metrics and /readyz.
      await refusals.retryWhileRefused('InitProducerId', () => producer.initTransactions(), {
        transactionalId: ids.transactionalId,
      });
      const joined = await refusals.retryWhileRefused(
        'joining the consumer group',
        () =>
          port.groupConsumer({
            groupId: config.groupId,
            groupInstanceId: ids.groupInstanceId,
            topics: [config.eventsTopic],
            isolation: 'read_committed',
            startWith: 'earliest',
            sessionTimeoutMs: config.sessionTimeoutMs,
            heartbeatIntervalMs: Math.min(3000, Math.floor(config.sessionTimeoutMs / 3)),
            maxWaitMs: Math.max(10, Math.min(500, config.commitIntervalMs)),
          }),
        { groupId: config.groupId },
      );
      parts.consumer = joined;
      stage.started('consumer', () => joined.close());
      const eventCodec = createEventCodec();
      const loop = new TransactionRunner(
        {
          eventsTopic: config.eventsTopic,
          transitionsTopic: config.transitionsTopic,
          stateTopic: config.stateTopic,
          deadLetterTopic: config.deadLetterTopic,
          deadLetterPartitions: topics.deadLetterPartitions,
          groupId: config.groupId,
          prepareTimeoutSeconds: config.prepareTimeoutSeconds,
          vmRetentionMs: config.vmRetentionMs,
          commitIntervalMs: config.commitIntervalMs,
          maxRecordsPerTransaction: config.maxRecordsPerTransaction,
          transactionTimeoutMs: config.transactionTimeoutMs,
          retryMaxMs: config.publishRetryMaxMs,
          idleWaitMs: IDLE_WAIT_MS,
        },
        {
          port,
          consumer: joined,
          producer,
          telemetry,
          refusals,
          transactionalId: ids.transactionalId,
          decodeEvent: (value) => eventCodec.decode(value),
          transitionCodec: createTransitionCodec() as unknown as AvroCodec<PublishedTransition>,
        },
      );
      parts.runner = loop;
      joined.onMembershipChange((membership) => {
        loop.membershipChanged(membership);
        logger.info(
          membership === null ? 'Left the consumer group.' : 'Joined the consumer group.',
          {
            generationId: membership?.generationId,
            partitions: membership?.assigned.map((p) => p.partition),
          },
        );
      });

      let finished: () => void = () => {};
      const done = new Promise<void>((resolve) => (finished = resolve));
      const subscription: Subscription = transactionPipeline(loop).subscribe({
        error: (error: unknown) => {
          // A programmer error (processBatch throws only for those) or a broken consumer: not
          // ready any more, and the command exits non-zero rather than limp on.
          logger.error('The processor loop failed; nothing is consumed any more.', { error });
          loop.healthy = false;
          finished();
          hooks.onLoopFailed?.(error);
        },
        complete: () => finished(),
      });
      stage.started('transaction loop', async () => {
        loop.stop();
        // The loop commits what it holds and ends; then leave the group and close.
        await done;
        subscription.unsubscribe();
      });

      const gauges = setInterval(() => {
        let vms = 0;
        let devices = 0;
        let open = 0;
        for (const processor of loop.owned.values()) {
          const s = processor.stats();
          vms += s.vms;
          devices += s.devices;
          open += s.openPrepares;
        }
        telemetry.engineSize(vms, devices, open);
        const owned = [...loop.owned.values()];
        if (owned.length === 0) return;
        port
          .endOffsets(
            owned.map((p) => ({ topic: config.eventsTopic, partition: p.partition })),
            'read_committed',
          )
          .then((ends) => {
            for (const end of ends) {
              const processor = loop.owned.get(end.partition);
              if (processor === undefined) continue;
              telemetry.partitionLag(
                end.partition,
                Math.max(0, Number(end.offset) - processor.nextOffset),
              );
            }
          })
          .catch(() => undefined);
      }, config.tickIntervalMs);
      stage.started('gauges', () => clearInterval(gauges));

      logger.info('The processor is running.', {
        metrics: `${http.url}/metrics`,
        groupId: config.groupId,
        commitIntervalMs: config.commitIntervalMs,
      });

      return { http, registry, stop: () => stage.close() };
    },
  );
}

/**
 * Fails fast, listing every problem: missing topics, too few partitions to mirror the events
 * topic, a state topic that is not compacted (its keys would expire with retention), an events
 * topic without broker time (its partition clock would be whatever the collector hosts' clocks
 * say: docs/operations.md, "Broker time", says how to migrate). Waits while the cluster is
 * unreachable or a new topic has no leader yet.
 */
async function checkTopics(
  port: KafkaPort,
  config: ProcessorConfig,
): Promise<{ deadLetterPartitions: number }> {
  const names = [
    config.eventsTopic,
    config.transitionsTopic,
    config.stateTopic,
    config.deadLetterTopic,
  ];
  const deadline = Date.now() + TOPIC_WAIT_MS;
  let described: Map<string, TopicDescription>;
  for (let attempt = 0; ; attempt++) {
    const delayMs = backoffCeilingMs(TOPIC_WAIT_BACKOFF, attempt);
    try {
      described = await port.describeTopics(names);
      const leaderless = [...described.values()].some((t) => t.leaders.some((l) => l < 0));
      if (!leaderless || Date.now() + delayMs > deadline) break;
    } catch (error) {
      if (!isTelemetryError(error, 'KAFKA_UNAVAILABLE') || Date.now() + delayMs > deadline)
        throw error;
    }
    await sleep(delayMs);
  }
  const problems: string[] = [];
  const missing = names.filter((n) => !described.has(n));
  if (missing.length > 0) {
    problems.push(
      `missing Kafka topics: ${missing.join(', ')} (create them: infra/kafka/create-topics.ts)`,
    );
  }
  const partitions = (name: string): number => described.get(name)?.partitions ?? 0;
  const events = partitions(config.eventsTopic);
  for (const name of [config.transitionsTopic, config.stateTopic]) {
    if (described.has(name) && partitions(name) < events) {
      problems.push(
        `${name} has ${partitions(name)} partitions, fewer than ${config.eventsTopic} (${events})`,
      );
    }
  }
  const policy = described.get(config.stateTopic)?.configs['cleanup.policy'];
  if (described.has(config.stateTopic) && policy !== 'compact') {
    problems.push(
      `${config.stateTopic} must be compacted (cleanup.policy=compact), it has cleanup.policy=${policy ?? 'unknown'}`,
    );
  }
  const timestampType = described.get(config.eventsTopic)?.configs['message.timestamp.type'];
  if (described.has(config.eventsTopic) && timestampType !== 'LogAppendTime') {
    problems.push(
      `${config.eventsTopic} must keep broker time (message.timestamp.type=LogAppendTime), it has message.timestamp.type=${timestampType ?? 'unknown'}: run infra/kafka/create-topics.ts, or kafka-configs --alter --entity-type topics --entity-name ${config.eventsTopic} --add-config message.timestamp.type=LogAppendTime (docs/operations.md, "Broker time")`,
    );
  }
  if (problems.length > 0) {
    throw new TelemetryError('CONFIG_INVALID', problems.join('; '), { details: { problems } });
  }
  return { deadLetterPartitions: Math.max(1, partitions(config.deadLetterTopic)) };
}
