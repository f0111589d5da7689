/**
 * Which records of one produce call Kafka stored, from what the Kafka port reports
 * (`shared/kafka/io/port.ts`): per partition, the number of records it wrote (`PartitionAck.count`,
 * summed when a call was split into several requests), and the records it refused for good.
 *
 * Within a partition Kafka appends in request order, so an acknowledgement of `count` records of
 * partition p covers the first `count` records of p in the call, not counting the refused ones
 * (they were never part of a written batch). A partition with fewer acknowledged records than
 * were sent to it (a failed call: only the partitions in `details.written` count) leaves the rest
 * of that partition unstored.
 */

export interface PartitionCount {
  readonly partition: number;
  readonly count: number;
}

/** `stored[i]` for the record at index i of the call, whose partition is `partitions[i]`. */
export function storedRecords(
  partitions: readonly number[],
  acks: readonly PartitionCount[],
  refused: ReadonlySet<number>,
): boolean[] {
  const left = new Map<number, number>();
  for (const ack of acks) left.set(ack.partition, (left.get(ack.partition) ?? 0) + ack.count);
  return partitions.map((partition, index) => {
    if (refused.has(index)) return false;
    const n = left.get(partition) ?? 0;
    if (n <= 0) return false;
    left.set(partition, n - 1);
    return true;
  });
}

/** Length of the longest prefix of `done` that is all true. */
export function donePrefix(done: readonly boolean[]): number {
  const first = done.indexOf(false);
  return first < 0 ? done.length : first;
}
