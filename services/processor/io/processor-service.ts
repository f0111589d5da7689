import { setTimeout as sleep } from 'node:timers/promises';
import type { EachBatchPayload, IHeaders, Kafka, Message, TopicMessages } from 'kafkajs';
import { Registry } from 'prom-client';
import { Subject, type Subscription } from 'rxjs';
import { TelemetryError } from '../../shared/core/errors.ts';
import type { TransitionRecord } from '../../shared/core/transition-record.ts';
import {
  createEventCodec,
  createTransitionCodec,
  type AvroCodec,
} from '../../shared/io/avro-codec.ts';
import { startHttpServer, type RunningHttpServer } from '../../shared/io/http-server.ts';
import { createKafkaClient } from '../../shared/io/kafka-client.ts';
import type { Logger } from '../../shared/io/logger.ts';
import type { ProcessorConfig } from '../config.ts';
import {
  PartitionProcessor,
  type BatchOutcome,
  type EventInput,
  type PublishedTransition,
  type VmStateValue,
} from '../core/partition-processor.ts';
import { ChangelogFold, changelogEntries } from '../core/state-changelog.ts';
import { batchPipeline, type BatchResult } from './batch-pipeline.ts';
import { readPartitionsToEnd } from './partition-reader.ts';
import { createProcessorTelemetry } from './processor-telemetry.ts';

/**
 * The processor stage: events topic → transition engine → transitions topic.
 *
 * Delivery (README "Delivery guarantees"): every transition is published exactly once, across
 * crashes and rebalances, without Kafka transactions. Per batch of partition p:
 *   1. the engine applies the batch (records at or below the state's applied offset, or with a
 *      (session, sequence) already applied, are redeliveries and change nothing);
 *   2. its transitions (and dead letters) are published to partition p of the transitions topic;
 *   3. the changed VMs' state and the partition's meta (applied offset, transitions end offset)
 *      are written to partition p of the compacted state topic;
 *   4. the offset is committed.
 * A processor taking partition p over (restart, rebalance) folds partition p of the state topic,
 * reads the transitions published after that state (from the meta's end offset), and resumes
 * at the committed offset. Recomputed transitions that were already published are recognised by
 * identity (device, kind, start) and not published again; events the state already reflects are
 * skipped. A crash between any two steps therefore neither loses nor doubles a transition.
 */
export interface RunningProcessor {
  http: RunningHttpServer;
  registry: Registry;
  /** Stops consuming after the batch in hand, then disconnects; resolves when done. */
  stop(): Promise<void>;
}

interface BatchJob {
  kind: 'batch';
  payload: EachBatchPayload;
  done: (error: unknown) => void;
}

interface TickJob {
  kind: 'tick';
  done: (error: unknown) => void;
}

type Job = BatchJob | TickJob;

/** One partition's work after the engine ran: what to publish, save and commit. */
interface PartitionWork {
  partition: number;
  transitions: PublishedTransition[];
  deadLetters: Message[];
  state: VmStateValue[];
  appliedOffset: number;
  skipped: number;
}

/** A group of jobs after the engine ran. */
interface Applied {
  work: PartitionWork[];
  /** Batches to mark consumed once the work is saved: partition → next offset. */
  offsets: Array<{ job: BatchJob; partition: number; next: number; receivedMicros: number[] }>;
}

export async function startProcessor(
  config: ProcessorConfig,
  logger: Logger,
): Promise<RunningProcessor> {
  const registry = new Registry();
  const telemetry = createProcessorTelemetry(registry, logger);
  const kafka = createKafkaClient({ brokers: config.brokers, clientId: config.clientId, logger });
  await retryWhileRetriable(() => checkTopics(kafka, config));

  const eventCodec = createEventCodec();
  const transitionCodec = createTransitionCodec() as unknown as AvroCodec<PublishedTransition>;
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
  });
  const consumer = kafka.consumer({
    groupId: config.groupId,
    maxWaitTimeInMs: 50,
    sessionTimeout: config.sessionTimeoutMs,
    heartbeatInterval: Math.min(3000, Math.floor(config.sessionTimeoutMs / 3)),
  });

  const partitions = new Map<number, PartitionProcessor>();
  const transitionsEnd = new Map<number, number>();
  let assigned = new Set<number>();
  let joined = false;
  let stopping = false;
  let paused = false;

  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    assigned = new Set(payload.memberAssignment[config.eventsTopic] ?? []);
    joined = true;
    for (const p of [...partitions.keys()]) {
      if (!assigned.has(p)) forget(p);
    }
    logger.info('Joined the consumer group.', { partitions: [...assigned] });
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    joined = false;
    logger.error('The consumer crashed; kafkajs restarts it.', {
      error: payload.error,
      restart: payload.restart,
    });
    for (const p of [...partitions.keys()]) forget(p);
  });

  /** Drops a partition's in-memory state; the next batch rebuilds it from Kafka. */
  const forget = (partition: number): void => {
    partitions.delete(partition);
    transitionsEnd.delete(partition);
    telemetry.partitionLost(partition);
  };

  const restorePartitions = async (wanted: number[]): Promise<void> => {
    const started = Date.now();
    const folds = new Map(wanted.map((p) => [p, new ChangelogFold()]));
    await readPartitionsToEnd(
      kafka,
      config.stateTopic,
      new Map(wanted.map((p) => [p, 0])),
      (p, m) => {
        if (m.key !== null) {
          folds.get(p)?.add(m.key.toString(), m.value === null ? null : m.value.toString());
        }
      },
    );
    const states = new Map(wanted.map((p) => [p, (folds.get(p) as ChangelogFold).result()]));
    const since = new Map<number, TransitionRecord[]>(wanted.map((p) => [p, []]));
    const ends = new Map<number, number>();
    await readPartitionsToEnd(
      kafka,
      config.transitionsTopic,
      new Map(wanted.map((p) => [p, states.get(p)?.meta?.transitionsEndOffset ?? 0])),
      (p, m) => {
        ends.set(p, Number(m.offset) + 1);
        if (m.value === null) return;
        const decoded = transitionCodec.decode(m.value);
        if (decoded.kind === 'record') since.get(p)?.push(decoded.value);
      },
    );
    const now = Date.now() * 1000;
    for (const p of wanted) {
      const { vms, meta } = states.get(p) as ReturnType<ChangelogFold['result']>;
      const processor = new PartitionProcessor(p, {
        prepareTimeoutSeconds: config.prepareTimeoutSeconds,
      });
      processor.restore(vms, meta?.appliedOffset ?? -1, since.get(p) ?? [], now);
      partitions.set(p, processor);
      transitionsEnd.set(p, ends.get(p) ?? meta?.transitionsEndOffset ?? 0);
      telemetry.partitionRestored(p, vms.length, since.get(p)?.length ?? 0, Date.now() - started);
    }
  };

  const restore = async (jobs: Job[]): Promise<Job[]> => {
    const batches = jobs.filter((j): j is BatchJob => j.kind === 'batch');
    const missing = batches.map((j) => j.payload.batch.partition).filter((p) => !partitions.has(p));
    if (missing.length === 0) return jobs;
    const wanted = [...new Set([...missing, ...assigned])].filter((p) => !partitions.has(p));
    await withHeartbeats(
      batches.map((j) => j.payload),
      () => restorePartitions(wanted),
    );
    return jobs;
  };

  /** Runs the engine over one partition's batch (pure work; no I/O). */
  const applyBatch = (job: BatchJob, nowMicros: number, applied: Applied): void => {
    const { batch } = job.payload;
    if (job.payload.isStale()) {
      // The partition moved while this batch waited: let its new owner rebuild from Kafka.
      forget(batch.partition);
      return;
    }
    const processor = partitions.get(batch.partition) as PartitionProcessor;
    const inputs: EventInput[] = [];
    const deadLetters: Message[] = [];
    const receivedMicros: number[] = [];
    telemetry.recordsConsumed(batch.messages.length);
    for (const message of batch.messages) {
      const offset = Number(message.offset);
      const decoded = message.value === null ? null : eventCodec.decode(message.value);
      if (decoded?.kind === 'record') {
        inputs.push({ offset, record: decoded.value });
        receivedMicros.push(decoded.value.receivedMicros);
      } else if (offset > processor.lastAppliedOffset) {
        const reason = decoded === null ? 'empty' : decoded.reason;
        deadLetters.push(
          deadLetter(config.eventsTopic, batch.partition, message.offset, message, reason),
        );
        telemetry.recordDeadLettered(
          reason,
          batch.partition,
          message.offset,
          decoded?.error?.message ?? reason,
        );
      }
    }
    const outcome: BatchOutcome = processor.applyBatch(inputs, nowMicros);
    for (const bad of outcome.invalid) {
      const message = batch.messages.find((m) => Number(m.offset) === bad.offset) as Message & {
        offset: string;
      };
      deadLetters.push(
        deadLetter(config.eventsTopic, batch.partition, message.offset, message, bad.reason),
      );
      telemetry.recordDeadLettered(bad.reason, batch.partition, message.offset, bad.detail);
    }
    const last = Number(batch.lastOffset());
    processor.markHandled(last);
    telemetry.duplicatesIgnored(outcome.redeliveries, outcome.identical);
    telemetry.sessionsStarted(outcome.newSessions);
    applied.work.push({
      partition: batch.partition,
      transitions: outcome.transitions,
      deadLetters,
      state: processor.takeStateChanges(),
      appliedOffset: processor.lastAppliedOffset,
      skipped: outcome.alreadyPublished,
    });
    applied.offsets.push({ job, partition: batch.partition, next: last + 1, receivedMicros });
  };

  const apply = (jobs: Job[]): Applied => {
    const nowMicros = Date.now() * 1000;
    const applied: Applied = { work: [], offsets: [] };
    for (const job of jobs) {
      if (job.kind === 'batch') {
        applyBatch(job, nowMicros, applied);
        continue;
      }
      for (const [p, processor] of partitions) {
        const transitions = processor.expireSilent(nowMicros);
        if (transitions.length === 0) continue;
        applied.work.push({
          partition: p,
          transitions,
          deadLetters: [],
          state: processor.takeStateChanges(),
          appliedOffset: processor.lastAppliedOffset,
          skipped: 0,
        });
      }
    }
    return applied;
  };

  /** Retries a Kafka write until it succeeds, pausing consumption while it does not. */
  const untilDone = async <T>(write: () => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await write();
        if (paused) {
          paused = false;
          consumer.resume([{ topic: config.eventsTopic }]);
        }
        return result;
      } catch (error) {
        if (stopping) throw error;
        if (!paused) {
          paused = true;
          consumer.pause([{ topic: config.eventsTopic }]);
        }
        const delayMs = Math.min(config.publishRetryMaxMs, 100 * 2 ** Math.min(attempt, 10));
        telemetry.publishFailed(error, attempt, delayMs);
        await sleep(delayMs);
      }
    }
  };

  /** Every partition's transitions and dead letters in one produce request. */
  const publish = async (applied: Applied): Promise<Applied> => {
    const transitions: Message[] = [];
    const deadLetters: Message[] = [];
    const counts = new Map<number, number>();
    for (const work of applied.work) {
      for (const t of work.transitions) {
        transitions.push({
          partition: work.partition,
          key: `${t.host}/${t.vm}`,
          value: transitionCodec.encode(t),
        });
      }
      counts.set(work.partition, (counts.get(work.partition) ?? 0) + work.transitions.length);
      deadLetters.push(...work.deadLetters);
    }
    const topicMessages: TopicMessages[] = [];
    if (transitions.length > 0)
      topicMessages.push({ topic: config.transitionsTopic, messages: transitions });
    if (deadLetters.length > 0)
      topicMessages.push({ topic: config.deadLetterTopic, messages: deadLetters });
    if (topicMessages.length === 0) return applied;
    const metadata = await untilDone(() => producer.sendBatch({ topicMessages, acks: -1 }));
    for (const m of metadata) {
      if (m.topicName !== config.transitionsTopic || m.baseOffset === undefined) continue;
      transitionsEnd.set(m.partition, Number(m.baseOffset) + (counts.get(m.partition) ?? 0));
    }
    for (const work of applied.work) {
      const prepares = work.transitions.filter((t) => t.type === 'prepare').length;
      telemetry.transitionsPublished(prepares, work.transitions.length - prepares, work.skipped);
    }
    return applied;
  };

  /** Every partition's changed VMs and meta in one produce request to the state topic. */
  const save = async (applied: Applied): Promise<Applied> => {
    const messages: Message[] = [];
    for (const work of applied.work) {
      const entries = changelogEntries(work.state, {
        appliedOffset: work.appliedOffset,
        transitionsEndOffset: transitionsEnd.get(work.partition) ?? 0,
      });
      for (const e of entries)
        messages.push({ partition: work.partition, key: e.key, value: e.value });
    }
    if (messages.length > 0) {
      await untilDone(() => producer.send({ topic: config.stateTopic, acks: -1, messages }));
    }
    return applied;
  };

  /**
   * Offsets: kafkajs learns where each partition's next fetch starts at once; the group commit
   * runs in the background, one at a time. It is not what makes a restart correct (the state
   * topic's applied offset is), so it need not hold the next batch back.
   */
  let committing: Promise<void> = Promise.resolve();
  let commitsClosed = false;
  const commit = (applied: Applied): Promise<void> => {
    if (applied.offsets.length === 0) return Promise.resolve();
    const now = Date.now() * 1000;
    const offsets = applied.offsets.map(({ job, partition, next, receivedMicros }) => {
      job.payload.resolveOffset(String(next - 1));
      telemetry.eventsDone(receivedMicros.map((r) => Math.max(0, now - r) / 1e6));
      telemetry.partitionLag(
        partition,
        Math.max(0, Number(job.payload.batch.highWatermark) - next),
      );
      return { topic: config.eventsTopic, partition, offset: String(next) };
    });
    // After disconnect a commit would make kafkajs open a new coordinator connection that
    // nothing closes again; the state topic already has what a restart needs.
    if (commitsClosed) return Promise.resolve();
    committing = committing
      .then(() => consumer.commitOffsets(offsets))
      .catch((error: unknown) =>
        logger.warn('Committing offsets failed; a later commit covers them.', { error }),
      );
    return Promise.resolve();
  };

  const jobs = new Subject<Job>();
  const subscription: Subscription = jobs
    .pipe(batchPipeline<Job, Applied>({ restore, apply, publish, save, commit }))
    .subscribe((results: BatchResult<Job>[]) => {
      for (const { job, error } of results) {
        if (error !== null && job.kind === 'batch') {
          // State in memory may now be ahead of what Kafka holds: rebuild before going on.
          forget(job.payload.batch.partition);
        }
        job.done(error);
      }
      const failed = results.find((r) => r.error !== null);
      if (failed !== undefined)
        logger.error('A batch failed; it will be retried.', { error: failed.error });
    });
  const enqueue = <J extends Job>(make: (done: (error: unknown) => void) => J): Promise<void> =>
    new Promise((resolve, reject) =>
      jobs.next(
        make((error) =>
          error === null
            ? resolve()
            : reject(
                error instanceof Error
                  ? error
                  : new TelemetryError('INTERNAL', 'a batch failed', { cause: error }),
              ),
        ),
      ),
    );

  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topic: config.eventsTopic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    // Several partitions' batches at once, so the pipeline can publish them as one group.
    partitionsConsumedConcurrently: config.concurrentPartitions,
    eachBatch: async (payload) => {
      if (payload.batch.messages.length === 0) return;
      await enqueue((done) => ({ kind: 'batch', payload, done }));
    },
  });

  const tick = setInterval(() => {
    let devices = 0;
    let open = 0;
    for (const processor of partitions.values()) {
      const s = processor.stats();
      devices += s.devices;
      open += s.openPrepares;
    }
    telemetry.engineSize(devices, open);
    if (partitions.size > 0) {
      enqueue((done) => ({ kind: 'tick', done })).catch(() => undefined);
    }
  }, config.tickIntervalMs);

  const http = await startHttpServer({
    host: config.httpHost,
    port: config.httpPort,
    registry,
    logger,
    readiness: () =>
      joined && !paused
        ? { ready: true, reasons: [`consuming partitions ${[...assigned].join(',') || 'none'}`] }
        : {
            ready: false,
            reasons: [
              joined
                ? 'publishing is failing; consumption paused'
                : 'not in the consumer group yet',
            ],
          },
  });
  logger.info('The processor is running.', {
    metrics: `${http.url}/metrics`,
    groupId: config.groupId,
  });

  return {
    http,
    registry,
    stop: async () => {
      stopping = true;
      clearInterval(tick);
      // Finish the batch in hand (kafkajs waits for it), let its commit go out, and only then
      // close the connections: no commit may start after them.
      await consumer.stop();
      await committing;
      commitsClosed = true;
      await consumer.disconnect();
      jobs.complete();
      subscription.unsubscribe();
      await producer.disconnect();
      await http.close();
    },
  };
}

/** The dead-letter copy of a record: its bytes and key as they were, where it came from, why. */
function deadLetter(
  topic: string,
  partition: number,
  offset: string,
  message: Message,
  reason: string,
): Message {
  const headers: IHeaders = {
    'vfio-source-topic': topic,
    'vfio-source-partition': String(partition),
    'vfio-source-offset': offset,
    'vfio-error': reason,
  };
  return { key: message.key ?? null, value: message.value ?? null, headers };
}

/**
 * Retries what kafkajs reports as retriable (a just-created topic whose leader is not known yet,
 * a coordinator still loading) for a while, so a processor started next to a new cluster or topic
 * waits instead of failing.
 */
async function retryWhileRetriable<T>(work: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let delayMs = 100; ; delayMs = Math.min(2000, delayMs * 2)) {
    try {
      return await work();
    } catch (error) {
      const retriable = (error as { retriable?: unknown }).retriable === true;
      if (!retriable || Date.now() + delayMs > deadline) throw error;
      await sleep(delayMs);
    }
  }
}

async function withHeartbeats<T>(payloads: EachBatchPayload[], work: () => Promise<T>): Promise<T> {
  const timer = setInterval(() => {
    for (const payload of payloads) payload.heartbeat().catch(() => undefined);
  }, 2000);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/** Fails fast, listing every problem, when topics are missing or too small to mirror partitions. */
async function checkTopics(kafka: Kafka, config: ProcessorConfig): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const names = [
      config.eventsTopic,
      config.transitionsTopic,
      config.stateTopic,
      config.deadLetterTopic,
    ];
    const existing = new Set(await admin.listTopics());
    const missing = names.filter((n) => !existing.has(n));
    if (missing.length > 0) {
      throw new TelemetryError(
        'CONFIG_INVALID',
        `missing Kafka topics: ${missing.join(', ')} (create them: infra/kafka/create-topics.ts)`,
      );
    }
    const { topics } = await admin.fetchTopicMetadata({ topics: names });
    const count = (name: string): number =>
      topics.find((t) => t.name === name)?.partitions.length ?? 0;
    const events = count(config.eventsTopic);
    const problems = [config.transitionsTopic, config.stateTopic]
      .filter((n) => count(n) < events)
      .map((n) => `${n} has ${count(n)} partitions, fewer than ${config.eventsTopic} (${events})`);
    if (problems.length > 0) throw new TelemetryError('CONFIG_INVALID', problems.join('; '));
  } finally {
    await admin.disconnect();
  }
}
