/**
 * A processor instance's stable identity, and the Kafka ids made from it (Kafka Streams keeps a
 * process id in its state directory the same way, `kafka-streams-process-metadata`):
 *
 * - `transactional.id = <group>-<instance>`: a restarted instance's InitProducerId bumps the
 *   epoch of its predecessor's transactional id, which aborts the predecessor's open transaction
 *   at once (instead of after the transaction timeout) and fences the predecessor if it still runs.
 * - `group.instance.id = <instance>` (static membership, KIP-345): a restarted member takes its
 *   partitions back at once, without waiting for its old session to expire and without a
 *   rebalance of the other members.
 *
 * Kafka checks `group.instance.id` like a topic name: [a-zA-Z0-9._-], at most 249 characters
 * (JoinGroupRequest.validateGroupInstanceId). A Kubernetes pod name (lower-case letters, digits,
 * '-' and '.') always passes.
 */
const LEGAL_ID = /^[a-zA-Z0-9._-]+$/;
const MAX_ID_LENGTH = 249;

/** A problem sentence when `id` cannot be a `group.instance.id`, else null. */
export function instanceIdProblem(id: string): string | null {
  if (id.length === 0) return 'an instance id is not empty';
  if (id.length > MAX_ID_LENGTH) return `an instance id has at most ${MAX_ID_LENGTH} characters`;
  if (!LEGAL_ID.test(id)) return 'an instance id has only letters, digits, ".", "_" and "-"';
  return null;
}

/** The id an `instance-id` file holds, or null when its text is not one (torn, edited). */
export function parseInstanceIdFile(text: string): string | null {
  const id = text.trim();
  return instanceIdProblem(id) === null ? id : null;
}

export interface ProcessorKafkaIds {
  readonly transactionalId: string;
  readonly groupInstanceId: string;
}

/** The Kafka ids of an instance; a configured transactional id wins over the derived one. */
export function processorKafkaIds(
  groupId: string,
  instanceId: string,
  configuredTransactionalId: string,
): ProcessorKafkaIds {
  return {
    transactionalId:
      configuredTransactionalId === '' ? `${groupId}-${instanceId}` : configuredTransactionalId,
    groupInstanceId: instanceId,
  };
}
