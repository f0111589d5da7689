/**
 * Least privilege per stage: the Kafka ACLs each stage's principal needs and nothing more, each
 * with its reason (docs/operations.md prints the same table). With `StandardAuthorizer` and
 * `allow.everyone.if.no.acl.found=false`, a principal may do only what an ALLOW binding grants.
 *
 * Kafka's implications keep the list short: READ, WRITE, DELETE and ALTER each imply DESCRIBE,
 * so a consumer's READ covers ListOffsets and metadata. An idempotent producer needs no
 * IDEMPOTENT_WRITE on the cluster since Kafka 3.0 (KIP-679: WRITE on a topic suffices). A
 * transactional producer needs WRITE on its transactional id, and READ on the group whose offsets
 * it commits inside the transaction (TxnOffsetCommit). Every stage checks its topics' configs
 * at start (max.message.bytes, the state topic's compaction), which takes DESCRIBE_CONFIGS.
 */
import {
  EVENTS_DLQ_TOPIC,
  EVENTS_TOPIC,
  PROCESSOR_STATE_TOPIC,
  TRANSITIONS_TOPIC,
} from '../../core/topics.ts';

export const ACL_STAGES = ['collector', 'processor', 'exporter', 'audit'] as const;
export type AclStage = (typeof ACL_STAGES)[number];

export type AclResourceType = 'TOPIC' | 'GROUP' | 'TRANSACTIONAL_ID';
export type AclOperation = 'READ' | 'WRITE' | 'DESCRIBE' | 'DESCRIBE_CONFIGS';

/** One ALLOW binding: `principal` may do `operation` on the resource, from any host. */
export interface StageAcl {
  stage: AclStage;
  principal: string;
  resourceType: AclResourceType;
  resourceName: string;
  patternType: 'LITERAL' | 'PREFIXED';
  operation: AclOperation;
  reason: string;
}

export interface AclNames {
  /** `User:NAME` per stage; default `User:<stage>` (the SCRAM user or certificate CN). */
  principals?: Partial<Record<AclStage, string>>;
  eventsTopic?: string;
  transitionsTopic?: string;
  stateTopic?: string;
  deadLetterTopic?: string;
  processorGroup?: string;
  exporterGroup?: string;
  /** Prefix of the processor's transactional ids; default its group id (`<group>-<uuid>`). */
  transactionalIdPrefix?: string;
}

/** Every binding of `stages` (all four by default), in the order the docs table lists them. */
export function stageAcls(
  names: AclNames = {},
  stages: readonly AclStage[] = ACL_STAGES,
): StageAcl[] {
  const events = names.eventsTopic ?? EVENTS_TOPIC;
  const transitions = names.transitionsTopic ?? TRANSITIONS_TOPIC;
  const state = names.stateTopic ?? PROCESSOR_STATE_TOPIC;
  const deadLetters = names.deadLetterTopic ?? EVENTS_DLQ_TOPIC;
  const processorGroup = names.processorGroup ?? 'vfio-processor';
  const exporterGroup = names.exporterGroup ?? 'vfio-exporter';
  const transactionalIds = names.transactionalIdPrefix ?? processorGroup;
  const acls: StageAcl[] = [];
  const allow = (
    stage: AclStage,
    resourceType: AclResourceType,
    resourceName: string,
    operation: AclOperation,
    reason: string,
    patternType: StageAcl['patternType'] = 'LITERAL',
  ): void => {
    if (!stages.includes(stage)) return;
    const principal = names.principals?.[stage] ?? `User:${stage}`;
    acls.push({ stage, principal, resourceType, resourceName, patternType, operation, reason });
  };

  allow('collector', 'TOPIC', events, 'WRITE', 'publishes event records (idempotent producer)');
  allow(
    'collector',
    'TOPIC',
    events,
    'DESCRIBE_CONFIGS',
    'reads max.message.bytes to size batches',
  );

  allow('processor', 'TOPIC', events, 'READ', 'consumes event records');
  allow(
    'processor',
    'GROUP',
    processorGroup,
    'READ',
    'joins its group; commits offsets in transactions',
  );
  allow('processor', 'TOPIC', state, 'READ', 'restores per-VM engine state at assignment');
  allow('processor', 'TOPIC', state, 'WRITE', 'writes per-VM engine state in each transaction');
  allow(
    'processor',
    'TOPIC',
    transitions,
    'WRITE',
    'writes transition records in each transaction',
  );
  allow(
    'processor',
    'TOPIC',
    deadLetters,
    'WRITE',
    'writes records it cannot use, with the reason',
  );
  for (const topic of [events, transitions, state, deadLetters]) {
    allow(
      'processor',
      'TOPIC',
      topic,
      'DESCRIBE_CONFIGS',
      'checks partitions and configs at start (state: compaction)',
    );
  }
  allow(
    'processor',
    'TRANSACTIONAL_ID',
    transactionalIds,
    'WRITE',
    'uses transactional ids under its prefix (one per running processor)',
    'PREFIXED',
  );

  allow('exporter', 'TOPIC', transitions, 'READ', 'consumes transition records');
  allow('exporter', 'GROUP', exporterGroup, 'READ', 'joins its group and commits offsets');

  for (const topic of [events, transitions]) {
    allow('audit', 'TOPIC', topic, 'READ', 'reads records to reconcile them (no group, no writes)');
    allow('audit', 'TOPIC', topic, 'DESCRIBE_CONFIGS', 'checks the topic at start');
  }
  return acls;
}
