/** The record shapes every Kafka reader and writer of the port shares (kafka/io/port.ts). */

export type Isolation = 'read_committed' | 'read_uncommitted';

export interface RecordHeader {
  readonly key: string;
  readonly value: Buffer;
}

export interface ConsumedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: readonly RecordHeader[];
  /** The record's Kafka timestamp, ms since the epoch. */
  readonly timestampMs: number;
}
