/**
 * The port's `Producer` over a @platformatic/kafka `Producer`: idempotent, acks from all in-sync
 * replicas, explicit partitions, one request at a time (so per-partition order holds), requests
 * planned by `planProduceRequests` (issue 13), and acknowledgements read from what each produce
 * response says per partition, never from a resolved promise.
 *
 * How the client behaves, read in node_modules/@platformatic/kafka/dist/clients/producer:
 * - `idempotent: true` forces acks=-1 and one in-flight request per connection, and turns
 *   `retries` of 0 or 1 into "retry forever" (producer.js constructor); we pass at least 2.
 * - A response with any partition in error rejects the whole call: the `ResponseError` keeps the
 *   parsed response (per-partition error codes and base offsets), and the partitions of other
 *   brokers that did succeed are in `error.produced.offsets` (producer.js #performSend).
 * - `message.partition` is taken modulo the partition count (producer.js #performSend), so a
 *   partition that does not exist would silently land on another one: we check the partition
 *   count ourselves before sending.
 * - After a failed send outside a transaction the client drops its producer id and starts again
 *   with a new one (new sequences). Inside a transaction it does not: a refused batch leaves its
 *   sequence numbers consumed, so the transaction is aborted and the client recreated.
 * - The producer's `timeout` option is both the produce request's `timeout_ms` and the
 *   InitProducerId `transaction_timeout_ms` (producer.js #initIdempotentProducer), so a
 *   transactional producer gets `timeout = transactionTimeoutMs`.
 * - InitProducerId sends `producerId ?? 0n` and `producerEpoch ?? 0` from the producer's options
 *   (producer.js #initIdempotentProducer): a client recreated for a transactional id that already
 *   has state would be answered PRODUCER_FENCED, so we pass -1/-1 ("new producer").
 * - `Transaction.addOffset` commits `message.offset + 1` for one partition per TxnOffsetCommit
 *   request, deduplicated under the fixed key 'commit' (producer.js kTransactionCommitOffset):
 *   one round trip per partition, in sequence. We send the library's TxnOffsetCommit ourselves,
 *   one request with every partition of the transaction (`#addOffsets`), as Kafka's Java
 *   producer does.
 * - The client sends each request at the highest version both sides implement (base.js
 *   kGetApi). For AddPartitionsToTxn that is v5 on Kafka 4, the broker-to-coordinator form,
 *   which the broker authorizes as CLUSTER_ACTION: the client is refused under least-privilege
 *   ACLs. `ClientFormProducer` hands it the library's own v3 (the client form; the request
 *   builder takes the one transaction the producer passes), see kafka/core/client-versions.ts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Producer as PlatformaticProducer,
  addPartitionsToTxnV3,
  findErrorBy,
  kGetApi,
  type API,
  type Callback,
  type Consumer,
  type MessageToProduce,
  type ProduceResult,
} from '@platformatic/kafka';
import { clientApiVersion } from '../core/client-versions.ts';
import { offsetCommitTopics } from '../core/offset-commit-topics.ts';
import { TelemetryError, isTelemetryError } from '../../core/errors.ts';
import { planProduceRequests, type RecordSize } from '../core/produce-requests.ts';
import { baseOptions, observeClient, type KafkaClientOptions } from './base-options.ts';
import {
  FENCING_ERRORS,
  errorResponses,
  hasKafkaError,
  kafkaError,
  kafkaErrorNames,
  kafkaRefusal,
} from './errors.ts';
import type {
  GroupMembership,
  OutgoingRecord,
  PartitionAck,
  Producer,
  ProducerOptions,
  RefusedRecord,
  SendResult,
  TopicPartitionOffset,
} from './port.ts';
import type { Logger } from '../../io/logger.ts';

/** The library's implementations of the client forms `clientApiVersion` may choose. */
const CLIENT_FORMS: Readonly<Record<string, Readonly<Record<number, unknown>>>> = {
  AddPartitionsToTxn: { 3: addPartitionsToTxnV3.api },
};

/** The client's producer, sending requests in their client form (see the file comment). */
class ClientFormProducer extends PlatformaticProducer {
  override [kGetApi]<RequestArguments extends unknown[], ResponseType>(
    name: string,
    callback: Callback<API<RequestArguments, ResponseType>>,
  ): void {
    super[kGetApi]<RequestArguments, ResponseType>(name, (error, api) => {
      if (error !== null || api === undefined) {
        callback(error, api);
        return;
      }
      const version = clientApiVersion(name, api.version);
      const form = version === api.version ? api : CLIENT_FORMS[name]?.[version];
      if (form === undefined) {
        callback(new Error(`No client form of ${name} v${version}.`));
        return;
      }
      callback(null, form as API<RequestArguments, ResponseType>);
    });
  }
}

/** The client's `Transaction` class is not exported by name. */
type Transaction = Awaited<ReturnType<PlatformaticProducer['beginTransaction']>>;

/** What the producer needs to know about a topic before sending to it. */
export interface TopicLimits {
  readonly maxMessageBytes: number;
  readonly partitions: number;
}

export interface ProducerDeps {
  readonly client: KafkaClientOptions;
  readonly logger: Logger;
  /** Limits of the topics (cached by the caller; `refresh` asks the cluster again). */
  topicLimits(topics: readonly string[], refresh: boolean): Promise<Map<string, TopicLimits>>;
  /** Id of the broker coordinating `groupId` (TxnOffsetCommit goes there). */
  groupCoordinator(groupId: string, refresh: boolean): Promise<number>;
}

/** Upper bound of the record batches one produce request carries. */
const MAX_REQUEST_BYTES = 16 * 1024 * 1024;
const TRANSACTION_RETRY_DELAY_MS = 20;
/**
 * 20 ms apart, about 2 s in all: a coordinator busy under load answers CONCURRENT_TRANSACTIONS
 * for longer than the shared 3 × 250 ms, and a transaction given up on is redone from restored
 * state (correct, but costly).
 */
const TRANSACTION_RETRIES = 100;
const DEFAULT_TRANSACTION_TIMEOUT_MS = 10_000;
/** Rounds of the client's own InitProducerId retries before `initTransactions` gives up. */
const INIT_ATTEMPTS = 5;
const END_TXN_RETRY_MAX_MS = 1000;
/**
 * EndTxn answers that say nothing about the outcome: the request may or may not have reached
 * the coordinator, or the coordinator is moving or still writing markers. Any other Kafka error
 * ends the transaction uncommitted; an error with no Kafka name (no answer: timeout, connection
 * lost) is retried too.
 */
const END_TXN_RETRIABLE: ReadonlySet<string> = new Set([
  'COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR',
  'COORDINATOR_LOAD_IN_PROGRESS',
  'CONCURRENT_TRANSACTIONS',
  'REQUEST_TIMED_OUT',
  'NETWORK_EXCEPTION',
]);

/** Kafka error codes (protocol guide) of `RECORD_REFUSALS`, as they appear in a produce response. */
const REFUSAL_CODES: ReadonlyMap<number, string> = new Map([
  [2, 'CORRUPT_MESSAGE'],
  [10, 'MESSAGE_TOO_LARGE'],
  [18, 'RECORD_LIST_TOO_LARGE'],
  [87, 'INVALID_RECORD'],
]);

interface ProducePartitionResponse {
  index: number;
  errorCode: number;
  baseOffset: bigint;
  errorMessage?: string | null;
}
interface ProduceResponseShape {
  responses: { name: string; partitionResponses: ProducePartitionResponse[] }[];
}

function isProduceResponse(value: unknown): value is ProduceResponseShape {
  const responses = (value as { responses?: unknown } | null)?.responses;
  return (
    Array.isArray(responses) &&
    responses.every((r) =>
      Array.isArray((r as { partitionResponses?: unknown }).partitionResponses),
    )
  );
}

/** Answers of a group coordinator that moved, or is not ready yet: look it up again. */
const COORDINATOR_MOVED: readonly string[] = [
  'NOT_COORDINATOR',
  'COORDINATOR_NOT_AVAILABLE',
  'COORDINATOR_LOAD_IN_PROGRESS',
];

const partitionKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

/** How many of `indices` go to each partition, by topic, then partition. */
function recordsPerPartition(
  records: readonly OutgoingRecord[],
  indices: readonly number[],
): Map<string, Map<number, number>> {
  const topics = new Map<string, Map<number, number>>();
  for (const index of indices) {
    const { topic, partition } = records[index]!;
    let partitions = topics.get(topic);
    if (partitions === undefined) topics.set(topic, (partitions = new Map<number, number>()));
    partitions.set(partition, (partitions.get(partition) ?? 0) + 1);
  }
  return topics;
}

function recordSize(record: OutgoingRecord): RecordSize {
  return {
    topic: record.topic,
    partition: record.partition,
    keyBytes: record.key === null ? null : record.key.length,
    valueBytes: record.value === null ? null : record.value.length,
    headers: (record.headers ?? []).map((h) => ({
      keyBytes: Buffer.byteLength(h.key),
      valueBytes: h.value.length,
    })),
  };
}

function toMessage(record: OutgoingRecord): MessageToProduce {
  const message: MessageToProduce = { topic: record.topic, partition: record.partition };
  if (record.key !== null) message.key = record.key;
  if (record.value !== null) message.value = record.value;
  if (record.headers !== undefined && record.headers.length > 0) {
    // Buffer keys: two headers with the same name stay two entries (distinct Map keys).
    message.headers = new Map(record.headers.map((h) => [Buffer.from(h.key), h.value]));
  }
  return message;
}

/** What one produce request did, partition by partition. */
interface RequestOutcome {
  readonly written: Map<string, { topic: string; partition: number; baseOffset: bigint }>;
  /** Partitions whose batch Kafka refused as a whole (record-level refusal), with the reason. */
  readonly refused: Map<string, { reason: string; detail: string }>;
  /** The failure that is not a record-level refusal, if any. */
  readonly failure: unknown;
}

/** Raised inside a transaction when Kafka refused a batch: the attempt is aborted and replanned. */
class BatchRefused extends Error {
  constructor(
    readonly indices: readonly number[],
    readonly refusal: { readonly reason: string; readonly detail: string },
  ) {
    super('Kafka refused a batch of the transaction.');
  }
}

/** Serializes async sections: one produce request or transaction at a time per producer. */
class Mutex {
  #tail: Promise<void> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

class AckBook {
  readonly #acks = new Map<
    string,
    { topic: string; partition: number; baseOffset: bigint; count: number }
  >();
  add(topic: string, partition: number, baseOffset: bigint, count: number): void {
    const key = partitionKey(topic, partition);
    const ack = this.#acks.get(key);
    if (ack === undefined) this.#acks.set(key, { topic, partition, baseOffset, count });
    else ack.count += count;
  }
  list(): PartitionAck[] {
    return [...this.#acks.values()].map((a) => ({ ...a }));
  }
}

export class PortProducer implements Producer {
  readonly #deps: ProducerDeps;
  readonly #options: ProducerOptions;
  readonly #logger: Logger;
  readonly #mutex = new Mutex();
  #client: PlatformaticProducer | undefined;
  #closed = false;

  constructor(deps: ProducerDeps, options: ProducerOptions) {
    this.#deps = deps;
    this.#options = options;
    this.#logger = deps.logger.child({
      component: 'kafka-producer',
      ...(options.transactionalId === undefined
        ? {}
        : { transactionalId: options.transactionalId }),
    });
  }

  send(records: readonly OutgoingRecord[]): Promise<SendResult> {
    return this.#mutex.run(() => this.#send(records));
  }

  commitTransaction(transaction: {
    readonly records: readonly OutgoingRecord[];
    readonly offsets: readonly TopicPartitionOffset[];
    readonly membership: GroupMembership;
    readonly commitDeadlineMs?: number;
  }): Promise<SendResult> {
    return this.#mutex.run(() => this.#commitTransaction(transaction));
  }

  initTransactions(): Promise<void> {
    return this.#mutex.run(() => this.#initTransactions());
  }

  connect(topics: readonly string[]): Promise<void> {
    return this.#mutex.run(async () => {
      const client = this.#ensureClient();
      try {
        if (this.#options.transactionalId === undefined) await client.initIdempotentProducer({});
        await client.metadata({ topics: [...topics] });
      } catch (error) {
        await this.#dropClient();
        throw kafkaError('KAFKA_UNAVAILABLE', 'Connecting the producer failed.', error, {
          written: [],
        });
      }
    });
  }

  close(): Promise<void> {
    return this.#mutex.run(async () => {
      this.#closed = true;
      await this.#dropClient();
    });
  }

  #ensureClient(): PlatformaticProducer {
    if (this.#closed) {
      throw new TelemetryError('KAFKA_PUBLISH_FAILED', 'The producer is closed.');
    }
    if (this.#client !== undefined) return this.#client;
    const base = baseOptions(this.#deps.client, 'producer');
    const transactional = this.#options.transactionalId !== undefined;
    const client = new ClientFormProducer({
      ...base,
      idempotent: true,
      // InitProducerId with -1/-1 asks for a new producer id (or, transactional, the next epoch of
      // ours). The client's default of 0/0 claims to *be* producer 0 epoch 0 (KIP-360), which the
      // coordinator answers with PRODUCER_FENCED once the transactional id has any state.
      producerId: -1n,
      producerEpoch: -1,
      // At least 2: the client turns 0 or 1 into "retry forever" for idempotent producers.
      retries: Math.max(2, typeof base.retries === 'number' ? base.retries : 2),
      ...(transactional
        ? {
            transactionalId: this.#options.transactionalId,
            timeout: this.#options.transactionTimeoutMs ?? DEFAULT_TRANSACTION_TIMEOUT_MS,
            // A transaction begun right after the previous commit finds the coordinator still
            // writing its markers (CONCURRENT_TRANSACTIONS) and must retry; at the shared 250 ms
            // delay every other transaction took 260 ms instead of 5 (measured on one broker).
            // Kafka's Java producer retries that case after 20 ms for the same reason.
            retryDelay: TRANSACTION_RETRY_DELAY_MS,
            retries: Math.max(
              TRANSACTION_RETRIES,
              typeof base.retries === 'number' ? base.retries : 0,
            ),
          }
        : {}),
    });
    observeClient(client, this.#logger);
    this.#client = client;
    return client;
  }

  async #dropClient(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (client === undefined) return;
    try {
      await client.close(true);
    } catch (error) {
      this.#logger.debug('Closing the Kafka producer client failed.', { error });
    }
  }

  /** Refused-by-size records, plus a check that every partition exists (see the file comment). */
  async #plan(records: readonly OutgoingRecord[]): Promise<ReturnType<typeof planProduceRequests>> {
    const topics = [...new Set(records.map((r) => r.topic))];
    let limits: Map<string, TopicLimits>;
    try {
      limits = await this.#deps.topicLimits(topics, false);
      if (records.some((r) => r.partition >= (limits.get(r.topic)?.partitions ?? 0))) {
        limits = await this.#deps.topicLimits(topics, true);
      }
    } catch (error) {
      throw kafkaError('KAFKA_PUBLISH_FAILED', 'Reading the limits of the topics failed.', error, {
        topics,
        written: [],
      });
    }
    for (const record of records) {
      const topic = limits.get(record.topic);
      if (
        topic === undefined ||
        !Number.isInteger(record.partition) ||
        record.partition < 0 ||
        record.partition >= topic.partitions
      ) {
        throw new TelemetryError(
          'KAFKA_PUBLISH_FAILED',
          'A record names a partition the topic does not have.',
          {
            details: {
              topic: record.topic,
              partition: record.partition,
              partitions: topic?.partitions ?? 0,
              written: [],
            },
          },
        );
      }
    }
    return planProduceRequests(records.map(recordSize), {
      maxBatchBytes: (topic) => limits.get(topic)?.maxMessageBytes ?? 0,
      maxRequestBytes: MAX_REQUEST_BYTES,
    });
  }

  /** Sends one request and reads, per partition, what Kafka did with it. */
  async #produce(
    records: readonly OutgoingRecord[],
    indices: readonly number[],
    transaction: Transaction | undefined,
  ): Promise<RequestOutcome> {
    const client = this.#ensureClient();
    const messages = indices.map((i) => toMessage(records[i]!));
    const sent = new Set(
      indices.map((i) => partitionKey(records[i]!.topic, records[i]!.partition)),
    );
    const written: RequestOutcome['written'] = new Map();
    const refused: RequestOutcome['refused'] = new Map();
    const noteOffsets = (result: ProduceResult | undefined): void => {
      for (const { topic, partition, offset } of result?.offsets ?? []) {
        written.set(partitionKey(topic, partition), { topic, partition, baseOffset: offset });
      }
    };
    let failure: unknown;
    try {
      const result =
        transaction === undefined
          ? await client.send({ messages })
          : await transaction.send({ messages });
      noteOffsets(result);
    } catch (error) {
      failure = error;
      noteOffsets((error as { produced?: ProduceResult }).produced);
      for (const response of errorResponses(error)) {
        if (!isProduceResponse(response)) continue;
        for (const { name, partitionResponses } of response.responses) {
          for (const p of partitionResponses) {
            const key = partitionKey(name, p.index);
            if (p.errorCode === 0) {
              written.set(key, { topic: name, partition: p.index, baseOffset: p.baseOffset });
            } else {
              const reason = REFUSAL_CODES.get(p.errorCode);
              if (reason !== undefined && !written.has(key)) {
                refused.set(key, { reason, detail: p.errorMessage ?? reason });
              }
            }
          }
        }
      }
    }
    for (const key of refused.keys()) written.delete(key);
    const missing = [...sent].filter((key) => !written.has(key) && !refused.has(key));
    if (missing.length > 0 && failure === undefined) {
      failure = new TelemetryError(
        'KAFKA_PUBLISH_FAILED',
        'The produce response did not acknowledge every partition.',
        {
          details: { missing: missing.map((key) => key.replace('\u0000', ':')) },
        },
      );
    }
    return { written, refused, failure: missing.length > 0 ? failure : undefined };
  }

  async #send(records: readonly OutgoingRecord[]): Promise<SendResult> {
    if (records.length === 0) return { acks: [], refused: [] };
    const plan = await this.#plan(records);
    const acks = new AckBook();
    const refused: RefusedRecord[] = plan.refused.map((r) => ({ ...r }));
    const queue: (readonly number[])[] = [...plan.requests];
    while (queue.length > 0) {
      const indices = queue.shift()!;
      let outcome: RequestOutcome;
      try {
        outcome = await this.#produce(records, indices, undefined);
      } catch (error) {
        throw kafkaError('KAFKA_PUBLISH_FAILED', 'Producing records failed.', error, {
          written: acks.list(),
        });
      }
      const byPartition = new Map<string, number[]>();
      for (const index of indices) {
        const key = partitionKey(records[index]!.topic, records[index]!.partition);
        const list = byPartition.get(key);
        if (list === undefined) byPartition.set(key, [index]);
        else list.push(index);
      }
      const retries: (readonly number[])[] = [];
      for (const [key, partitionIndices] of byPartition) {
        const ack = outcome.written.get(key);
        if (ack !== undefined) {
          acks.add(ack.topic, ack.partition, ack.baseOffset, partitionIndices.length);
          continue;
        }
        const refusal = outcome.refused.get(key);
        if (refusal === undefined) continue;
        // Bisect down to the record Kafka will not take; its neighbours are sent again.
        if (partitionIndices.length === 1) {
          refused.push({
            index: partitionIndices[0]!,
            reason: refusal.reason,
            detail: refusal.detail,
          });
          this.#logger.warn('Kafka refused a record.', {
            topic: records[partitionIndices[0]!]!.topic,
            partition: records[partitionIndices[0]!]!.partition,
            reason: refusal.reason,
          });
        } else {
          const half = Math.ceil(partitionIndices.length / 2);
          retries.push(partitionIndices.slice(0, half), partitionIndices.slice(half));
        }
      }
      if (outcome.failure !== undefined) {
        throw kafkaError('KAFKA_PUBLISH_FAILED', 'Producing records failed.', outcome.failure, {
          written: acks.list(),
        });
      }
      // The halves go before the rest of the plan: later requests may hold the same partitions.
      queue.unshift(...retries);
    }
    return { acks: acks.list(), refused: refused.sort((a, b) => a.index - b.index) };
  }

  /**
   * A fresh client, and a transaction begun and cancelled: `beginTransaction` sends
   * InitProducerId (with -1/-1, so the coordinator bumps the epoch of our transactional id and
   * ends the transaction an earlier holder of it left open), and `cancel` only forgets the
   * transaction locally — nothing else reaches the broker. The next `beginTransaction` finds the
   * producer initialized and sends no InitProducerId. The client's own retries cover a
   * coordinator that answers CONCURRENT_TRANSACTIONS while it aborts; a few more rounds cover
   * one that is still loading or moving.
   */
  async #initTransactions(): Promise<void> {
    if (this.#options.transactionalId === undefined) {
      throw new TelemetryError(
        'KAFKA_PUBLISH_FAILED',
        'initTransactions needs a producer with a transactionalId.',
      );
    }
    await this.#dropClient();
    for (let attempt = 1; ; attempt++) {
      try {
        const txn = await this.#ensureClient().beginTransaction();
        await txn.cancel();
        return;
      } catch (error) {
        await this.#dropClient();
        if (
          hasKafkaError(error, FENCING_ERRORS) ||
          // Refused (an ACL, the login, a certificate): the caller decides when to try again.
          kafkaRefusal(error) !== undefined ||
          attempt >= INIT_ATTEMPTS ||
          this.#closed
        ) {
          throw transactionError('Initializing the transactional producer failed.', error, {
            transactionalId: this.#options.transactionalId,
          });
        }
        this.#logger.warn('Initializing the transactional producer failed; retrying.', { error });
      }
    }
  }

  async #commitTransaction(transaction: {
    readonly records: readonly OutgoingRecord[];
    readonly offsets: readonly TopicPartitionOffset[];
    readonly membership: GroupMembership;
    readonly commitDeadlineMs?: number;
  }): Promise<SendResult> {
    if (this.#options.transactionalId === undefined) {
      throw new TelemetryError(
        'KAFKA_PUBLISH_FAILED',
        'commitTransaction needs a producer with a transactionalId.',
      );
    }
    const { records, offsets, membership } = transaction;
    if (membership.generationId < 0 || membership.memberId === '') {
      throw new TelemetryError('KAFKA_FENCED', 'The transaction carries no group membership.', {
        details: { groupId: membership.groupId, generationId: membership.generationId },
      });
    }
    const begun = Date.now();
    const plan = await this.#plan(records);
    const refused: RefusedRecord[] = plan.refused.map((r) => ({ ...r }));
    /** Records to send one per request after Kafka refused the batch they were in. */
    const singles = new Set<number>();
    for (;;) {
      const excluded = new Set(refused.map((r) => r.index));
      const requests: (readonly number[])[] = [];
      for (const request of plan.requests) {
        const kept = request.filter((i) => !excluded.has(i) && !singles.has(i));
        if (kept.length > 0) requests.push(kept);
        for (const i of request) if (singles.has(i) && !excluded.has(i)) requests.push([i]);
      }
      try {
        const acks = await this.#transactionAttempt(records, requests, offsets, membership, {
          deadline: begun + (transaction.commitDeadlineMs ?? this.#transactionTimeoutMs()),
          refused,
        });
        return { acks, refused: refused.sort((a, b) => a.index - b.index) };
      } catch (error) {
        if (!(error instanceof BatchRefused)) throw error;
        if (error.indices.length === 1) {
          const index = error.indices[0]!;
          refused.push({ index, reason: error.refusal.reason, detail: error.refusal.detail });
          this.#logger.warn('Kafka refused a record in a transaction.', {
            topic: records[index]!.topic,
            partition: records[index]!.partition,
          });
        } else {
          for (const index of error.indices) singles.add(index);
        }
      }
    }
  }

  #transactionTimeoutMs(): number {
    return this.#options.transactionTimeoutMs ?? DEFAULT_TRANSACTION_TIMEOUT_MS;
  }

  /**
   * One attempt: begin, produce, add offsets, commit. A failure before the commit aborts it; a
   * commit that fails is retried (`#endTransaction`).
   */
  async #transactionAttempt(
    records: readonly OutgoingRecord[],
    requests: readonly (readonly number[])[],
    offsets: readonly TopicPartitionOffset[],
    membership: GroupMembership,
    commit: { readonly deadline: number; readonly refused: readonly RefusedRecord[] },
  ): Promise<PartitionAck[]> {
    let client: PlatformaticProducer;
    let txn: Transaction;
    try {
      client = this.#ensureClient();
      txn = await client.beginTransaction();
    } catch (error) {
      await this.#dropClient();
      throw transactionError('Beginning a transaction failed.', error);
    }
    const acks = new AckBook();
    try {
      for (const indices of requests) {
        const outcome = await this.#produce(records, indices, txn);
        for (const index of outcome.refused.size === 0 ? [] : indices) {
          const record = records[index]!;
          const key = partitionKey(record.topic, record.partition);
          const refusal = outcome.refused.get(key);
          if (refusal !== undefined) {
            throw new BatchRefused(
              indices.filter((i) => partitionKey(records[i]!.topic, records[i]!.partition) === key),
              refusal,
            );
          }
        }
        if (outcome.failure !== undefined) {
          throw transactionError('Producing records in a transaction failed.', outcome.failure);
        }
        // Counted per partition first: no string key per record on this hot path (issue 18).
        for (const [topic, partitions] of recordsPerPartition(records, indices)) {
          for (const [partition, count] of partitions) {
            const ack = outcome.written.get(partitionKey(topic, partition));
            if (ack !== undefined) acks.add(topic, partition, ack.baseOffset, count);
          }
        }
      }
      if (offsets.length > 0) await this.#addOffsets(client, txn, offsets, membership);
    } catch (error) {
      await this.#abort(txn);
      // A failed send leaves sequence numbers consumed (a refused batch) or unknown (a timeout),
      // and a fenced epoch is dead for good: the next attempt starts with a new epoch.
      await this.#dropClient();
      if (error instanceof BatchRefused) throw error;
      throw transactionError('The transaction failed and was aborted.', error);
    }
    await this.#endTransaction(txn, commit);
    return acks.list();
  }

  /**
   * EndTxn(commit), sent again while it fails for a reason that says nothing about the outcome
   * (no answer, a timeout, the coordinator moving or busy) until the deadline. Sending it again
   * is safe: the coordinator answers a repeated commit of a transaction it already committed with
   * success. An answer that ends the transaction (fenced, or Kafka's own error for this
   * transaction) means it did not commit. No answer by the deadline: the outcome is unknown, and
   * the transaction is not aborted — an abort sent now could not tell us either, and the
   * caller's next `initTransactions` settles it.
   */
  async #endTransaction(
    txn: Transaction,
    commit: { readonly deadline: number; readonly refused: readonly RefusedRecord[] },
  ): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await txn.commit();
        return;
      } catch (error) {
        const names = kafkaErrorNames(error);
        const final = [...names].some((name) => !END_TXN_RETRIABLE.has(name));
        if (final || this.#closed) {
          await this.#abort(txn);
          await this.#dropClient();
          throw transactionError('Committing the transaction failed.', error);
        }
        if (Date.now() >= commit.deadline) {
          await this.#dropClient();
          throw new TelemetryError(
            'KAFKA_OUTCOME_UNKNOWN',
            'The transaction commit was not answered: committed or not is unknown.',
            {
              cause: error,
              details: {
                attempts: attempt + 1,
                refused: commit.refused,
                written: [],
                kafkaErrors: [...names],
              },
            },
          );
        }
        this.#logger.warn('Committing the transaction got no answer; sending the commit again.', {
          error,
          attempt: attempt + 1,
        });
        await sleep(Math.min(END_TXN_RETRY_MAX_MS, TRANSACTION_RETRY_DELAY_MS * 2 ** attempt));
      }
    }
  }

  /**
   * AddOffsetsToTxn, then ONE TxnOffsetCommit carrying every partition of `offsets` (Kafka's
   * Java producer does the same). The client's own `Transaction.addOffset` sends one partition
   * per request (see the file comment): with six partitions that was six sequential round trips.
   * The request is the library's own TxnOffsetCommit at the version the broker and client agree
   * on, sent on the client's connection to the group coordinator; the response's per-partition
   * errors reject it (the library's parser), so a stale generation is still KAFKA_FENCED. A
   * coordinator that moved is looked up again; retriable errors are retried 20 ms apart.
   */
  async #addOffsets(
    client: PlatformaticProducer,
    txn: Transaction,
    offsets: readonly TopicPartitionOffset[],
    membership: GroupMembership,
  ): Promise<void> {
    // addConsumer only reads `groupId` from the consumer it is given (transaction.js).
    await txn.addConsumer({ groupId: membership.groupId } as unknown as Consumer);
    const topics = offsetCommitTopics(offsets);
    const api = await new Promise<API<unknown[], unknown>>((resolve, reject) => {
      client[kGetApi]<unknown[], unknown>('TxnOffsetCommit', (error, found) => {
        if (error !== null || found === undefined)
          reject(error ?? new Error('No TxnOffsetCommit.'));
        else resolve(found);
      });
    });
    let refresh = false;
    for (let attempt = 0; ; attempt++) {
      const coordinatorId = await this.#deps.groupCoordinator(membership.groupId, refresh);
      try {
        const connection = (await client.connectToBrokers([coordinatorId])).get(coordinatorId);
        if (connection === undefined) {
          throw new TelemetryError('KAFKA_UNAVAILABLE', 'No connection to the group coordinator.', {
            details: { coordinatorId },
          });
        }
        await api.async(
          connection,
          this.#options.transactionalId,
          membership.groupId,
          client.producerId,
          client.producerEpoch,
          membership.generationId,
          membership.memberId,
          null,
          topics,
        );
        return;
      } catch (error) {
        const retriable =
          findErrorBy(error instanceof Error ? error : null, 'canRetry', false) === null &&
          !hasKafkaError(error, FENCING_ERRORS);
        if (!retriable || attempt >= TRANSACTION_RETRIES || this.#closed) throw error;
        refresh = hasKafkaError(error, COORDINATOR_MOVED);
        await sleep(TRANSACTION_RETRY_DELAY_MS);
      }
    }
  }

  async #abort(txn: Transaction): Promise<void> {
    if (txn.completed) return;
    try {
      await txn.abort();
    } catch (error) {
      // The client may now hold a transaction it cannot end: recreate it on next use. A fenced
      // producer cannot abort either; the broker already aborted its transaction.
      const level = hasKafkaError(error, FENCING_ERRORS) ? 'debug' : 'warn';
      this.#logger[level]('Aborting a Kafka transaction failed; the producer will be recreated.', {
        error,
      });
      await this.#dropClient();
    }
  }
}

/** `KAFKA_FENCED` for a zombie (see FENCING_ERRORS), `KAFKA_PUBLISH_FAILED` otherwise. */
function transactionError(
  message: string,
  error: unknown,
  details: Record<string, unknown> = {},
): TelemetryError {
  if (isTelemetryError(error)) return error;
  // INVALID_TXN_STATE is what the coordinator answers a producer whose epoch was bumped under it.
  if (hasKafkaError(error, FENCING_ERRORS) || kafkaErrorNames(error).has('INVALID_TXN_STATE')) {
    return kafkaError('KAFKA_FENCED', 'This producer or group member is fenced.', error, {
      ...details,
      written: [],
    });
  }
  return kafkaError('KAFKA_PUBLISH_FAILED', message, error, { ...details, written: [] });
}
