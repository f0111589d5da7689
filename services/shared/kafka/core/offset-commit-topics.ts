/**
 * The `topics` field of an OffsetCommit or TxnOffsetCommit request (both share its shape): the
 * offsets to commit grouped by topic, in the order their topics first appear. The offset
 * committed is the next one to read. The leader epoch is -1 (unknown, as Kafka's consumer sends
 * when it has none), so the broker does not check it; no metadata.
 */
export interface OffsetCommitTopic {
  readonly name: string;
  readonly partitions: {
    readonly partitionIndex: number;
    readonly committedOffset: bigint;
    readonly committedLeaderEpoch: number;
  }[];
}

export function offsetCommitTopics(
  offsets: readonly {
    readonly topic: string;
    readonly partition: number;
    readonly offset: bigint;
  }[],
): OffsetCommitTopic[] {
  const topics = new Map<string, OffsetCommitTopic>();
  for (const { topic, partition, offset } of offsets) {
    let entry = topics.get(topic);
    if (entry === undefined) topics.set(topic, (entry = { name: topic, partitions: [] }));
    entry.partitions.push({
      partitionIndex: partition,
      committedOffset: offset,
      committedLeaderEpoch: -1,
    });
  }
  return [...topics.values()];
}
