/**
 * Moves the spool to Kafka, in order, one produce call at a time, through the Kafka port
 * (`shared/kafka/io/port.ts`): idempotent, acks from all in-sync replicas, requests split by the
 * adapter under the topic's `max.message.bytes`. Each record carries an explicit partition,
 * `partitionFor(key)` — FNV-1a of `host/vm` modulo the topic's partition count, read with
 * `describeTopics` whenever a producer is opened — so one VM's events stay in order in one
 * partition.
 *
 * Batching: while a call is in flight the spool fills, so the next call takes everything up to
 * `batchMaxEvents`; a small, fresh batch waits at most `lingerMs` to fill (old entries, e.g.
 * after an outage, never wait).
 *
 * Delivery: nothing is acknowledged in the spool that Kafka has not stored. A resolved `send`
 * is not taken as "all stored" (kafkajs#1303): the port's per-partition acknowledgements are
 * mapped back to the entries (`core/kafka-acks.ts`), and so are the partitions a failed call
 * names in `details.written`. The spool's acknowledged position is one prefix, so it advances
 * over the longest run of stored entries; the rest is read again and sent after a capped
 * backoff from a new producer. Entries behind that run that Kafka did store are remembered
 * (`storedAhead`) and not sent again while the process lives; after a crash they are
 * (at-least-once: Kafka may hold a record twice, the processor dedupes by (sessionId,
 * sequence)). Every record handed to Kafka a second time is counted (`records_resent_total`).
 *
 * A record Kafka refuses for good (too large for the topic, invalid) would block the spool
 * forever: it goes to the rejected file (`rejected-record-file.ts`), is counted and logged, and
 * counts as done.
 *
 * Progress: the sender records when the acknowledged position last moved (or the spool was
 * last seen empty); `stall()` reports how long a non-empty spool has waited, for `/readyz`.
 */
import { isTelemetryError, TelemetryError } from '../../shared/core/errors.ts';
import type {
  KafkaPort,
  OutgoingRecord,
  Producer,
  RefusedRecord,
} from '../../shared/kafka/io/port.ts';
import { backoffDelayMs, type BackoffPolicy } from '../../shared/core/backoff.ts';
import { nowMicros } from '../../shared/io/clock.ts';
import { donePrefix, storedRecords, type PartitionCount } from '../core/kafka-acks.ts';
import { partitionFor } from '../core/partitioner.ts';
import type { SpoolEntry } from '../core/spool-entry.ts';
import type { Refusal } from '../../shared/kafka/core/refusal.ts';
import { kafkaRefusal } from '../../shared/kafka/io/errors.ts';
import type { CollectorTelemetry } from './collector-telemetry.ts';
import type { RejectedRecord } from './rejected-record-file.ts';
import type { Spool, SpoolBatch, SpoolPosition } from './spool.ts';

/** Where refused records go; `RejectedRecordFile` implements it. */
export interface RejectedRecordSink {
  readonly path: string;
  write(record: RejectedRecord, nowMs: number): void;
}

export interface KafkaSenderOptions {
  kafka: Pick<KafkaPort, 'producer' | 'describeTopics'>;
  spool: Spool;
  rejected: RejectedRecordSink;
  topic: string;
  batchMaxEvents: number;
  lingerMs: number;
  retry: BackoffPolicy;
  /** How long a non-empty spool may go without progress before `stall()` reports it. */
  stallTimeoutMs: number;
  telemetry: CollectorTelemetry;
  /** Why Kafka refused us, if it did (kafka/io/security.ts); `kafkaRefusal` without. */
  diagnose?: (error: unknown) => Promise<Refusal | undefined>;
}

/** A batch read from the spool and the records made of it, ready for one `send`. */
interface Outgoing {
  readonly batch: SpoolBatch;
  /** Per entry: stored or refused for good (filled in as Kafka answers). */
  readonly done: boolean[];
  /** Index in `batch.entries` of each record. */
  readonly sentIndexes: readonly number[];
  readonly records: readonly OutgoingRecord[];
}

interface Transmitted {
  readonly acks: readonly PartitionCount[];
  readonly refused: readonly RefusedRecord[];
  readonly failure?: unknown;
}

/** Keys (`host/vm`) whose bytes and partition the sender keeps; about one per VM. */
const KEY_CACHE_ENTRIES = 10_000;

export interface SenderStall {
  /** Since the acknowledged position last moved or the spool was last empty. */
  readonly sinceMs: number;
  readonly pendingEvents: number;
  /** The last publish or connect error, if any since the last progress. */
  readonly lastError: string | null;
}

export class KafkaSender {
  private readonly options: KafkaSenderOptions;
  private producer: Producer | undefined;
  private partitions = 0;
  private running: Promise<void> | undefined;
  private stopping = false;
  private draining = false;
  private failures = 0;
  private wakeSleep: (() => void) | undefined;
  /** Entries Kafka stored that lie after the spool's acknowledged position, by position. */
  private readonly storedAhead = new Set<string>();
  private readonly keys = new Map<string, { bytes: Buffer; partition: number }>();
  /** End of the furthest entry ever handed to Kafka by this process. */
  private sentUpTo: SpoolPosition = { segment: 0, offset: 0 };
  private lastProgressMs = Date.now();
  private lastError: unknown;
  private lastRefusal: Refusal | undefined;

  constructor(options: KafkaSenderOptions) {
    this.options = options;
  }

  /** A producer is open and the topic's partitions are known. */
  get connected(): boolean {
    return this.producer !== undefined;
  }

  /** The spool has waited `stallTimeoutMs` or longer without progress; null otherwise. */
  stall(nowMs = Date.now()): SenderStall | null {
    const pendingEvents = this.options.spool.pendingEvents;
    const sinceMs = nowMs - this.lastProgressMs;
    if (pendingEvents === 0 || sinceMs < this.options.stallTimeoutMs) return null;
    return { sinceMs, pendingEvents, lastError: describeError(this.lastError) };
  }

  /** Why Kafka refused the last attempt (authentication, authorization, TLS), until one succeeds. */
  get refusal(): Refusal | undefined {
    return this.lastRefusal;
  }

  start(): void {
    this.running ??= this.loop();
  }

  /**
   * Stops sending. With `drainUntil`, keeps sending until the spool is empty, a send fails, or
   * the deadline (ms since the epoch) passes; what is left stays in the spool for the next run.
   */
  async stop(drainUntil?: number): Promise<void> {
    if (drainUntil !== undefined && this.options.telemetry.kafkaIsUp) {
      this.draining = true;
      const timer = setTimeout(() => this.halt(), Math.max(0, drainUntil - Date.now()));
      this.options.spool.wake();
      try {
        await this.running;
      } finally {
        clearTimeout(timer);
      }
    }
    this.halt();
    await this.running;
    await this.disconnect();
  }

  private halt(): void {
    this.stopping = true;
    this.options.spool.wake();
    this.wakeSleep?.();
  }

  private progressed(): void {
    this.lastProgressMs = Date.now();
    this.lastError = undefined;
    this.lastRefusal = undefined;
  }

  private async loop(): Promise<void> {
    const { spool, batchMaxEvents, lingerMs } = this.options;
    /** The next batch, read and built while the one before it was in flight. */
    let ahead: Outgoing | undefined;
    while (!this.stopping) {
      if (this.producer === undefined) {
        ahead = undefined;
        if (!(await this.connect())) continue;
      }
      let outgoing = ahead;
      ahead = undefined;
      if (outgoing === undefined) {
        let batch = spool.readBatch(batchMaxEvents);
        if (batch === null) {
          this.progressed();
          if (this.draining) return;
          await spool.whenReadable();
          // Waiting for work is not a stall: the clock starts when the work arrives.
          this.progressed();
          continue;
        }
        const first = batch.entries[0];
        if (
          batch.entries.length < batchMaxEvents &&
          lingerMs > 0 &&
          first !== undefined &&
          !this.draining
        ) {
          const waitMs = lingerMs - (nowMicros() - first.receivedMicros) / 1000;
          if (waitMs > 0) {
            await this.sleep(waitMs);
            batch = spool.readBatch(batchMaxEvents) ?? batch;
          }
        }
        outgoing = this.build(batch);
      }
      const sending = this.transmit(outgoing);
      // A full batch behind this one is read and built while Kafka works on this one; it is
      // handed to the producer only after this call settled (one call at a time keeps order).
      if (spool.pendingEvents - outgoing.batch.entries.length >= batchMaxEvents) {
        const next = spool.readBatch(batchMaxEvents, outgoing.batch.end);
        if (next !== null) ahead = this.build(next);
      }
      const ok = await this.settle(outgoing, await sending);
      // After a failure the spool is read again from its acknowledged position.
      if (!ok) ahead = undefined;
    }
  }

  /** The records of a batch, leaving out the entries Kafka already stored (`storedAhead`). */
  private build(batch: SpoolBatch): Outgoing {
    const { topic } = this.options;
    const { entries, ends } = batch;
    const done = new Array<boolean>(entries.length).fill(false);
    const sentIndexes: number[] = [];
    const records: OutgoingRecord[] = [];
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i] as SpoolEntry;
      const end = ends[i] as SpoolPosition;
      if (this.storedAhead.size > 0 && this.storedAhead.has(positionId(end))) {
        done[i] = true;
        continue;
      }
      const key = this.keyOf(entry.key);
      sentIndexes.push(i);
      records.push({
        topic,
        partition: key.partition,
        key: key.bytes,
        value: Buffer.from(entry.value.buffer, entry.value.byteOffset, entry.value.byteLength),
      });
    }
    return { batch, done, sentIndexes, records };
  }

  /** The key's bytes and partition, computed once per key while the partition count holds. */
  private keyOf(key: string): { bytes: Buffer; partition: number } {
    let known = this.keys.get(key);
    if (known === undefined) {
      // VMs come and go: the cache is dropped rather than grown without bound.
      if (this.keys.size >= KEY_CACHE_ENTRIES) this.keys.clear();
      known = { bytes: Buffer.from(key), partition: partitionFor(key, this.partitions) };
      this.keys.set(key, known);
    }
    return known;
  }

  /** Hands the records to the producer; resolves with what Kafka did, never rejects. */
  private async transmit(outgoing: Outgoing): Promise<Transmitted> {
    const { records, sentIndexes, batch } = outgoing;
    const producer = this.producer;
    if (records.length === 0) return { acks: [], refused: [] };
    if (producer === undefined) {
      return {
        acks: [],
        refused: [],
        failure: new TelemetryError('KAFKA_UNAVAILABLE', 'no producer'),
      };
    }
    let resent = 0;
    for (const i of sentIndexes)
      if (!isAfter(batch.ends[i] as SpoolPosition, this.sentUpTo)) resent++;
    if (resent > 0) this.options.telemetry.recordsResent(resent);
    const lastSent = batch.ends[sentIndexes.at(-1) as number] as SpoolPosition;
    if (isAfter(lastSent, this.sentUpTo)) this.sentUpTo = lastSent;
    try {
      return await producer.send(records);
    } catch (error) {
      return { acks: writtenBeforeFailure(error, this.options.topic), refused: [], failure: error };
    }
  }

  /**
   * Acknowledges in the spool the longest run of entries Kafka stored, remembers the stored ones
   * after it, rejects the refused ones; false when the call failed (the producer is dropped).
   */
  private async settle(outgoing: Outgoing, result: Transmitted): Promise<boolean> {
    const { spool, topic, telemetry } = this.options;
    const { batch, done, sentIndexes, records } = outgoing;
    const { entries, ends } = batch;
    const { acks, refused } = result;
    let failure = result.failure;

    for (const r of refused) {
      const i = sentIndexes[r.index];
      if (i === undefined) continue;
      this.reject(entries[i] as SpoolEntry, r);
      done[i] = true;
    }
    const stored = storedRecords(
      records.map((r) => r.partition),
      acks.filter((a) => !('topic' in a) || a.topic === topic),
      new Set(refused.map((r) => r.index)),
    );
    const storedMicros: number[] = [];
    stored.forEach((ok, k) => {
      const i = sentIndexes[k] as number;
      if (!ok) return;
      done[i] = true;
      storedMicros.push((entries[i] as SpoolEntry).receivedMicros);
    });

    const prefix = donePrefix(done);
    if (this.storedAhead.size > 0 || prefix < entries.length) {
      for (let i = 0; i < entries.length; i++) {
        const id = positionId(ends[i] as SpoolPosition);
        if (i < prefix) this.storedAhead.delete(id);
        else if (done[i] === true) this.storedAhead.add(id);
      }
    }
    if (prefix > 0) {
      spool.ack(batch, prefix);
      this.progressed();
    }
    if (storedMicros.length > 0 || (failure === undefined && records.length > 0)) {
      telemetry.recordsPublished(storedMicros.length, storedMicros, nowMicros());
    }
    if (failure === undefined && prefix < entries.length) {
      failure = new TelemetryError(
        'KAFKA_PUBLISH_FAILED',
        'Kafka acknowledged fewer records than were sent; the rest is sent again',
        { details: { sent: records.length, stored: storedMicros.length, refused: refused.length } },
      );
    }
    if (failure !== undefined) {
      await this.failed(failure);
      return false;
    }
    this.failures = 0;
    return true;
  }

  private reject(entry: SpoolEntry, refused: RefusedRecord): void {
    const { rejected, telemetry } = this.options;
    const fields = {
      reason: refused.reason,
      detail: refused.detail,
      key: entry.key,
      bytes: entry.value.byteLength,
      file: rejected.path,
    };
    try {
      rejected.write(
        {
          reason: refused.reason,
          detail: refused.detail,
          key: entry.key,
          value: entry.value,
          receivedMicros: entry.receivedMicros,
        },
        Date.now(),
      );
      telemetry.recordRejected(fields);
    } catch (error) {
      // Blocking the spool on a full or broken disk would lose every later event instead.
      const value = Buffer.from(entry.value.buffer, entry.value.byteOffset, entry.value.byteLength);
      telemetry.recordRejected({ ...fields, value: value.toString('base64'), error });
    }
  }

  private async connect(): Promise<boolean> {
    const { kafka, topic, telemetry } = this.options;
    let producer: Producer | undefined;
    try {
      const description = (await kafka.describeTopics([topic])).get(topic);
      if (description === undefined || description.partitions < 1) {
        throw new TelemetryError('KAFKA_UNAVAILABLE', `topic ${topic} does not exist`, {
          details: { topic },
        });
      }
      producer = await kafka.producer();
      // Producer id and metadata now, so the first send after an outage is one round trip.
      await producer.connect([topic]);
      if (this.partitions !== description.partitions) this.keys.clear();
      this.partitions = description.partitions;
      this.producer = producer;
      telemetry.kafkaConnected(topic, description.partitions);
      return true;
    } catch (error) {
      await producer?.close().catch(() => {});
      await this.failed(error);
      return false;
    }
  }

  /** Drops the producer (a fresh one is opened for the next attempt) and waits the backoff. */
  private async failed(error: unknown): Promise<void> {
    this.lastError = error;
    const delay = backoffDelayMs(this.options.retry, this.failures++, Math.random());
    this.lastRefusal = await (this.options.diagnose ?? kafkaRefusalAsync)(error).catch(
      () => undefined,
    );
    this.options.telemetry.publishFailed(
      error,
      this.options.spool.pendingEvents,
      delay,
      this.lastRefusal,
    );
    if (this.draining) {
      this.stopping = true;
      return;
    }
    await this.disconnect();
    this.noteIfIdle();
    await this.sleep(delay);
    this.noteIfIdle();
  }

  /** While Kafka is away an empty spool is not stalled: its clock starts with the first event. */
  private noteIfIdle(): void {
    if (this.options.spool.pendingEvents === 0) this.lastProgressMs = Date.now();
  }

  private async disconnect(): Promise<void> {
    const producer = this.producer;
    this.producer = undefined;
    await producer?.close().catch(() => {});
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeSleep = done;
    });
  }
}

function positionId(position: SpoolPosition): string {
  return `${position.segment}:${position.offset}`;
}

function isAfter(a: SpoolPosition, b: SpoolPosition): boolean {
  return a.segment !== b.segment ? a.segment > b.segment : a.offset > b.offset;
}

/**
 * The partitions a failed call wrote before failing (`details.written` of
 * `KAFKA_PUBLISH_FAILED`, kafka/io/port.ts), as per-partition counts; anything else counts as
 * nothing written.
 */
function writtenBeforeFailure(error: unknown, topic: string): PartitionCount[] {
  if (!isTelemetryError(error, 'KAFKA_PUBLISH_FAILED')) return [];
  const written: unknown = error.details['written'];
  if (!Array.isArray(written)) return [];
  const out: PartitionCount[] = [];
  for (const item of written as unknown[]) {
    if (typeof item !== 'object' || item === null) continue;
    const { topic: t, partition, count } = item as Record<string, unknown>;
    if (t !== undefined && t !== topic) continue;
    if (typeof partition === 'number' && typeof count === 'number') out.push({ partition, count });
  }
  return out;
}

function kafkaRefusalAsync(error: unknown): Promise<Refusal | undefined> {
  return Promise.resolve(kafkaRefusal(error));
}

function describeError(error: unknown): string | null {
  if (error === undefined) return null;
  if (isTelemetryError(error)) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : JSON.stringify(error);
}
