/**
 * How one `send` is cut into produce requests so that Kafka never answers `MESSAGE_TOO_LARGE`
 * for a batch we built (issue 13: a large fetch turned into one oversized request and crashed
 * the stage).
 *
 * Kafka checks each partition's record batch against the topic's `max.message.bytes` (the broker's
 * `message.max.bytes` when the topic has no override): `LogValidator` refuses a batch whose
 * `sizeInBytes` is larger. A v2 record batch (KIP-98, "Record Batch" in the protocol guide) is
 *
 *   baseOffset int64, batchLength int32, partitionLeaderEpoch int32, magic int8, crc uint32,
 *   attributes int16, lastOffsetDelta int32, baseTimestamp int64, maxTimestamp int64,
 *   producerId int64, producerEpoch int16, baseSequence int32, records count int32  (61 bytes)
 *   followed by the records, each
 *   length varint, attributes int8, timestampDelta varlong, offsetDelta varint,
 *   keyLength varint, key, valueLength varint, value,
 *   headersCount varint, [headerKeyLength varint, headerKey, headerValueLength varint, value]
 *
 * Sizes are exact except the timestamp delta, counted at its largest (10 bytes) so the estimate
 * never falls short. No compression is used, so the estimate is the batch size.
 *
 * The rule: the records of each partition are packed greedily, in order, into batches that fit;
 * request k carries batch k of every partition (so per-partition order holds across requests), and
 * a request whose batches together exceed `maxRequestBytes` is cut between partitions. A record
 * that does not fit in a batch of its own is refused and never sent; its neighbours still are.
 */

/** The encoded sizes of one record (bytes; `null` for a null key or value). */
export interface RecordSize {
  readonly topic: string;
  readonly partition: number;
  readonly keyBytes: number | null;
  readonly valueBytes: number | null;
  readonly headers: readonly { readonly keyBytes: number; readonly valueBytes: number }[];
}

export interface SplitLimits {
  /** The largest record batch a topic accepts (`max.message.bytes`), by topic name. */
  readonly maxBatchBytes: (topic: string) => number;
  /** Upper bound of the batches carried by one request (keeps requests and memory bounded). */
  readonly maxRequestBytes: number;
}

export interface RefusedBySize {
  readonly index: number;
  readonly reason: 'MESSAGE_TOO_LARGE';
  readonly detail: string;
}

export interface ProduceRequestPlan {
  /** Indices into the input, one array per request, to be sent in this order. */
  readonly requests: readonly (readonly number[])[];
  readonly refused: readonly RefusedBySize[];
}

/** Bytes of a record batch header (v2), before the first record. */
export const RECORD_BATCH_OVERHEAD = 61;
const MAX_TIMESTAMP_DELTA_BYTES = 10;

/** Length of `value` as a zig-zag varint (Kafka's signed varint). */
export function varintBytes(value: number): number {
  let zigzag = value >= 0 ? value * 2 : -value * 2 - 1;
  let bytes = 1;
  while (zigzag >= 128) {
    zigzag = Math.floor(zigzag / 128);
    bytes += 1;
  }
  return bytes;
}

function bytesField(length: number | null): number {
  return length === null ? varintBytes(-1) : varintBytes(length) + length;
}

/** Bytes one record takes in a batch at position `offsetDelta` (its length prefix included). */
export function recordBytes(record: RecordSize, offsetDelta: number): number {
  let body =
    1 + // attributes
    MAX_TIMESTAMP_DELTA_BYTES +
    varintBytes(offsetDelta) +
    bytesField(record.keyBytes) +
    bytesField(record.valueBytes) +
    varintBytes(record.headers.length);
  for (const header of record.headers)
    body += bytesField(header.keyBytes) + bytesField(header.valueBytes);
  return varintBytes(body) + body;
}

interface Batch {
  readonly indices: number[];
  bytes: number;
}

export function planProduceRequests(
  records: readonly RecordSize[],
  limits: SplitLimits,
): ProduceRequestPlan {
  const refused: RefusedBySize[] = [];
  // Batches of each partition in order, partitions in order of first appearance.
  const partitions = new Map<string, Batch[]>();
  for (let index = 0; index < records.length; index++) {
    const record = records[index]!;
    const limit = limits.maxBatchBytes(record.topic);
    const alone = RECORD_BATCH_OVERHEAD + recordBytes(record, 0);
    if (alone > limit) {
      refused.push({
        index,
        reason: 'MESSAGE_TOO_LARGE',
        detail: `record needs a ${alone}-byte batch; ${record.topic} accepts at most ${limit} bytes`,
      });
      continue;
    }
    const key = `${record.topic}\u0000${record.partition}`;
    let batches = partitions.get(key);
    if (batches === undefined) {
      batches = [];
      partitions.set(key, batches);
    }
    const last = batches.at(-1);
    const size = last === undefined ? 0 : recordBytes(record, last.indices.length);
    if (last !== undefined && last.bytes + size <= limit) {
      last.indices.push(index);
      last.bytes += size;
    } else {
      batches.push({ indices: [index], bytes: alone });
    }
  }

  const requests: number[][] = [];
  for (let round = 0; ; round++) {
    let request: number[] = [];
    let requestBytes = 0;
    let any = false;
    for (const batches of partitions.values()) {
      const batch = batches[round];
      if (batch === undefined) continue;
      any = true;
      if (request.length > 0 && requestBytes + batch.bytes > limits.maxRequestBytes) {
        requests.push(request);
        request = [];
        requestBytes = 0;
      }
      for (const index of batch.indices) request.push(index);
      requestBytes += batch.bytes;
    }
    if (!any) break;
    if (request.length > 0) requests.push(request);
  }
  return { requests, refused };
}
