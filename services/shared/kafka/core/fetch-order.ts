/**
 * The order of the partitions in one sessionless Fetch, so that a partition with a backlog does
 * not starve the others. The broker fills a response in request order until the response's byte
 * limit, each partition up to its own limit (FetchRequest `partition_max_bytes`, Java's
 * `max.partition.fetch.bytes`): with the same first partition every time and a per-partition
 * limit as large as the whole response, a partition with megabytes waiting took every response
 * and the others got nothing while it lasted (a group offset reset past 500,000 records stalled
 * the processor's other partitions for the whole hole fill). Starting each round one partition
 * further (the rotation Kafka's fetch sessions do on the broker) and a per-partition limit below
 * the response's give every partition with records a share of each round or the next.
 */
export function fetchOrder<T>(positions: readonly T[], round: number): T[] {
  const n = positions.length;
  if (n <= 1) return [...positions];
  const start = ((round % n) + n) % n;
  return [...positions.slice(start), ...positions.slice(0, start)];
}
