/**
 * What a reader sees of one partition's fetched record batches, as Kafka's Java consumer decides
 * it (Fetcher / CompletedFetch): at `read_committed` a transactional batch of a producer is
 * skipped from the first offset of one of its aborted transactions (the fetch response's
 * `aborted_transactions`) until that producer's ABORT marker; control batches are never records.
 *
 * Record batch attributes (Kafka protocol, "Record Batch"):
 *   bit 3 timestampType (1 = LogAppendTime), bit 4 isTransactional, bit 5 isControlBatch.
 * A control record's key is `version: int16, type: int16` with type 0 = ABORT, 1 = COMMIT.
 *
 * Why this is ours: @platformatic/kafka 2.12.1's own filter (consumer.js
 * #filterUncommittedMessages) ends a producer's aborted range at that producer's LAST abort
 * marker in a response, hiding every committed transaction between two of its aborted ones
 * (docs/decisions.md, "read_committed").
 */
import type { ConsumedRecord, Isolation } from './records.ts';

const IS_LOG_APPEND_TIME = 1 << 3;
const IS_TRANSACTIONAL = 1 << 4;
const IS_CONTROL = 1 << 5;
const ABORT = 0;

/** One record of a fetched batch, as the client parses it. */
export interface FetchedRecord {
  readonly offsetDelta: number;
  readonly timestampDelta: bigint;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: readonly (readonly [Buffer | null, Buffer | null])[];
}

/** One record batch of a fetch response (the fields this rule reads). */
export interface FetchedBatch {
  readonly firstOffset: bigint;
  readonly lastOffsetDelta: number;
  readonly attributes: number;
  readonly producerId: bigint;
  readonly firstTimestamp: bigint;
  readonly maxTimestamp: bigint;
  readonly records: readonly FetchedRecord[];
}

export interface AbortedTransaction {
  readonly producerId: bigint;
  readonly firstOffset: bigint;
}

/** One partition of a fetch response (the fields this rule reads). */
export interface FetchedPartitionData {
  readonly partitionIndex: number;
  readonly abortedTransactions?: readonly AbortedTransaction[] | null;
  readonly records?: readonly FetchedBatch[] | null;
}

function isAbortMarker(batch: FetchedBatch): boolean {
  const key = batch.records[0]?.key;
  return key !== null && key !== undefined && key.length >= 4 && key.readInt16BE(2) === ABORT;
}

/**
 * The records of one partition's batches that a reader at `isolation` sees, from `fetchOffset`,
 * and where the next fetch starts (past control and aborted batches too).
 */
export function committedRecords(
  topic: string,
  partition: FetchedPartitionData,
  fetchOffset: bigint,
  isolation: Isolation,
): { records: ConsumedRecord[]; nextOffset: bigint } {
  const records: ConsumedRecord[] = [];
  let nextOffset = fetchOffset;
  const aborted = [...(partition.abortedTransactions ?? [])].sort((a, b) =>
    a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0,
  );
  const abortedProducers = new Set<bigint>();
  let nextAborted = 0;
  for (const batch of partition.records ?? []) {
    const lastOffset = batch.firstOffset + BigInt(batch.lastOffsetDelta);
    if (lastOffset + 1n > nextOffset) nextOffset = lastOffset + 1n;
    if (isolation === 'read_committed') {
      while (nextAborted < aborted.length && aborted[nextAborted]!.firstOffset <= lastOffset) {
        abortedProducers.add(aborted[nextAborted]!.producerId);
        nextAborted += 1;
      }
    }
    if ((batch.attributes & IS_CONTROL) !== 0) {
      if (isAbortMarker(batch)) abortedProducers.delete(batch.producerId);
      continue;
    }
    if (
      isolation === 'read_committed' &&
      (batch.attributes & IS_TRANSACTIONAL) !== 0 &&
      abortedProducers.has(batch.producerId)
    ) {
      continue;
    }
    const logAppendTime = (batch.attributes & IS_LOG_APPEND_TIME) !== 0;
    for (const record of batch.records) {
      const offset = batch.firstOffset + BigInt(record.offsetDelta);
      if (offset < fetchOffset) continue;
      records.push({
        topic,
        partition: partition.partitionIndex,
        offset,
        key: record.key,
        value: record.value,
        headers: record.headers.map(([key, value]) => ({
          key: key === null ? '' : key.toString('utf8'),
          value: value ?? Buffer.alloc(0),
        })),
        timestampMs: Number(
          logAppendTime ? batch.maxTimestamp : batch.firstTimestamp + record.timestampDelta,
        ),
      });
    }
  }
  return { records, nextOffset };
}
