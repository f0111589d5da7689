/**
 * Partition choice for the events topic. The key is `host/vm`, so one VM's events land in one
 * partition and keep their order there (the processor pairs a device's prepare with its next
 * state). kafkajs's default partitioner computes murmur2 of the key, about 2.2 µs per message on
 * this project's reference machine (docs of the perf probe); FNV-1a over the key's UTF-16 code
 * units costs a few ns for a 30-character key and spreads VM names evenly enough.
 *
 * The mapping is stable for a fixed partition count. Adding partitions to the topic moves VMs to
 * other partitions (as with murmur2): order across that moment is only per session, which the
 * processor already tolerates (it orders by session and sequence).
 *
 * Not murmur2-compatible on purpose: nothing else writes this topic, and any consumer finds the
 * VM in the record itself.
 */
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a 32-bit over the UTF-16 code units of `text`, as an unsigned integer. */
export function fnv1a32(text: string): number {
  let hash = FNV_OFFSET;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, FNV_PRIME);
  }
  return hash >>> 0;
}

/** The message key of one VM's events. */
export function eventKey(host: string, vm: string): string {
  return `${host}/${vm}`;
}

/** The partition of `key` among `partitionCount` partitions. */
export function partitionFor(key: string, partitionCount: number): number {
  if (!Number.isInteger(partitionCount) || partitionCount < 1) {
    throw new RangeError(`partitionCount must be a positive integer, got ${partitionCount}`);
  }
  return fnv1a32(key) % partitionCount;
}
