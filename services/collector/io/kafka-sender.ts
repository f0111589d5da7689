/**
 * Moves the spool to Kafka, in order, one produce request at a time.
 *
 * Producer settings: idempotent (the broker drops the duplicates of kafkajs's own retries),
 * acks from all in-sync replicas (-1), one request in flight (a later batch can never overtake an
 * earlier one). Each message carries an explicit partition, `partitionFor(key)` — FNV-1a of
 * `host/vm` modulo the topic's partition count — so one VM's events stay in order in one
 * partition without kafkajs's murmur2 cost (~2 µs per message).
 *
 * Batching: while a request is in flight the spool fills, so the next request takes everything
 * up to `batchMaxEvents`; a small, fresh batch waits at most `lingerMs` to fill (old entries,
 * e.g. after an outage, never wait).
 *
 * Delivery: an entry is acknowledged in the spool only after Kafka acknowledged its batch. A
 * batch whose request failed is sent again, from a new producer, after a capped backoff; so is
 * everything after a crash since the last persisted acknowledged position. That is
 * at-least-once: Kafka may hold a record twice (a retry after a lost acknowledgement), never
 * zero times. The processor dedupes by (sessionId, sequence).
 */
import type { Admin, Kafka, Producer } from 'kafkajs';
import { backoffDelayMs, type BackoffPolicy } from '../core/backoff.ts';
import { partitionFor } from '../core/partitioner.ts';
import type { CollectorTelemetry } from './collector-telemetry.ts';
import { nowMicros } from './qmp-connection.ts';
import type { Spool, SpoolBatch } from './spool.ts';

export interface KafkaSenderOptions {
  kafka: Kafka;
  spool: Spool;
  topic: string;
  batchMaxEvents: number;
  lingerMs: number;
  retry: BackoffPolicy;
  telemetry: CollectorTelemetry;
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

  constructor(options: KafkaSenderOptions) {
    this.options = options;
  }

  /** A producer is connected and the topic's partitions are known. */
  get connected(): boolean {
    return this.producer !== undefined;
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

  private async loop(): Promise<void> {
    const { spool, batchMaxEvents, lingerMs } = this.options;
    while (!this.stopping) {
      if (this.producer === undefined && !(await this.connect())) continue;
      let batch = spool.readBatch(batchMaxEvents);
      if (batch === null) {
        if (this.draining) return;
        await spool.whenReadable();
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
      await this.send(batch);
    }
  }

  private async send(batch: SpoolBatch): Promise<void> {
    const { spool, topic, telemetry } = this.options;
    const producer = this.producer;
    if (producer === undefined) return;
    const messages = batch.entries.map((e) => ({
      key: e.key,
      value: Buffer.from(e.value.buffer, e.value.byteOffset, e.value.byteLength),
      partition: partitionFor(e.key, this.partitions),
    }));
    try {
      await producer.send({ topic, acks: -1, messages });
    } catch (error) {
      await this.failed(error);
      return;
    }
    this.failures = 0;
    spool.ack(batch);
    telemetry.recordsPublished(
      batch.entries.length,
      batch.entries.map((e) => e.receivedMicros),
      nowMicros(),
    );
  }

  private async connect(): Promise<boolean> {
    const { kafka, topic, telemetry } = this.options;
    const producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
    });
    let admin: Admin | undefined;
    try {
      await producer.connect();
      admin = kafka.admin();
      await admin.connect();
      const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
      const partitions = metadata.topics[0]?.partitions.length ?? 0;
      if (partitions < 1) throw new Error(`topic ${topic} has no partitions`);
      this.partitions = partitions;
      this.producer = producer;
      telemetry.kafkaConnected(topic, partitions);
      return true;
    } catch (error) {
      await producer.disconnect().catch(() => {});
      await this.failed(error);
      return false;
    } finally {
      await admin?.disconnect().catch(() => {});
    }
  }

  /** Drops the producer (a fresh one is built for the next attempt) and waits the backoff. */
  private async failed(error: unknown): Promise<void> {
    const delay = backoffDelayMs(this.options.retry, this.failures++, Math.random());
    this.options.telemetry.publishFailed(error, this.options.spool.pendingEvents, delay);
    if (this.draining) {
      this.stopping = true;
      return;
    }
    await this.disconnect();
    await this.sleep(delay);
  }

  private async disconnect(): Promise<void> {
    const producer = this.producer;
    this.producer = undefined;
    await producer?.disconnect().catch(() => {});
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
