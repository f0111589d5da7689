/**
 * The highest version of a request a client may send, where Kafka keeps newer versions for
 * brokers. AddPartitionsToTxnRequest.json (apache/kafka, clients/src/main/resources/common/
 * message): "Versions 3 and below will be exclusively used by clients and versions 4 and above
 * will be used by brokers." Version 4 batches several transactional ids (KIP-890's verification
 * from a partition leader to the coordinator), and the broker authorizes it as CLUSTER_ACTION on
 * the cluster, not WRITE on the transactional id: a client sending it is refused
 * (CLUSTER_AUTHORIZATION_FAILED) on a least-privilege cluster. Kafka's Java producer sends v3.
 *
 *   AddPartitionsToTxn Request (Version: 3) => transactional_id producer_id producer_epoch [topics] TAG_BUFFER
 *     transactional_id => COMPACT_STRING
 *     producer_id => INT64
 *     producer_epoch => INT16
 *     topics => name [partitions] TAG_BUFFER
 *       name => COMPACT_STRING
 *       partitions => INT32
 */
export const CLIENT_MAX_VERSIONS: Readonly<Record<string, number>> = {
  AddPartitionsToTxn: 3,
};

/**
 * The version to send of `api`, given the highest the broker supports: the broker's, capped at
 * the client's limit where Kafka has one.
 */
export function clientApiVersion(api: string, brokerMax: number): number {
  const limit = CLIENT_MAX_VERSIONS[api];
  return limit === undefined ? brokerMax : Math.min(brokerMax, limit);
}
