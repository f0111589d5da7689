import {
  option,
  parseConfig,
  type ConfigOf,
  type ConfigSources,
} from '../shared/core/config-spec.ts';
import { DEFAULT_PREPARE_TIMEOUT_SECONDS } from '../shared/core/transition-engine.ts';
import { instanceIdProblem } from './core/instance-identity.ts';
import { DEFAULT_VM_RETENTION_MS } from './core/partition-processor.ts';
import {
  EVENTS_DLQ_TOPIC,
  EVENTS_TOPIC,
  PROCESSOR_STATE_TOPIC,
  TRANSITIONS_TOPIC,
} from '../shared/core/topics.ts';
import {
  kafkaConnectionOptions,
  kafkaSecurityProblems,
  topicNameProblem,
} from '../shared/kafka/core/options.ts';
import { serviceOptions } from '../shared/core/service-options.ts';

export const PROCESSOR_ENV_PREFIX = 'VFIO_PROCESSOR_';

/** The processor's options: key, type, default, environment variable, flag and doc together. */
export function processorConfigSpec() {
  return {
    ...kafkaConnectionOptions(),
    eventsTopic: option({
      type: 'string',
      default: EVENTS_TOPIC,
      env: 'VFIO_PROCESSOR_EVENTS_TOPIC',
      flag: 'events-topic',
      doc: 'topic of the event records (input)',
      check: topicNameProblem,
    }),
    transitionsTopic: option({
      type: 'string',
      default: TRANSITIONS_TOPIC,
      env: 'VFIO_PROCESSOR_TRANSITIONS_TOPIC',
      flag: 'transitions-topic',
      doc: 'topic of the transition records (output); at least as many partitions as the input',
      check: topicNameProblem,
    }),
    stateTopic: option({
      type: 'string',
      default: PROCESSOR_STATE_TOPIC,
      env: 'VFIO_PROCESSOR_STATE_TOPIC',
      flag: 'state-topic',
      doc: 'compacted topic of per-VM engine state (the changelog a restarted processor reads)',
      check: topicNameProblem,
    }),
    deadLetterTopic: option({
      type: 'string',
      default: EVENTS_DLQ_TOPIC,
      env: 'VFIO_PROCESSOR_DEAD_LETTER_TOPIC',
      flag: 'dead-letter-topic',
      doc: 'topic for records that cannot be decoded or used',
      check: topicNameProblem,
    }),
    groupId: option({
      type: 'string',
      default: 'vfio-processor',
      env: 'VFIO_PROCESSOR_GROUP_ID',
      flag: 'group-id',
      doc: 'Kafka consumer group; processors in one group share the partitions',
    }),
    clientId: option({
      type: 'string',
      default: 'vfio-processor',
      env: 'VFIO_PROCESSOR_CLIENT_ID',
      flag: 'client-id',
      doc: 'Kafka client id',
    }),
    sessionTimeoutMs: option({
      type: 'integer',
      default: 30_000,
      min: 6000,
      max: 300_000,
      env: 'VFIO_PROCESSOR_SESSION_TIMEOUT_MS',
      flag: 'session-timeout-ms',
      doc: 'a processor that stops heartbeating (killed, hung) loses its partitions after this long',
    }),
    prepareTimeoutSeconds: option({
      type: 'number',
      default: DEFAULT_PREPARE_TIMEOUT_SECONDS,
      min: 0.001,
      env: 'VFIO_PROCESSOR_PREPARE_TIMEOUT_SECONDS',
      flag: 'prepare-timeout',
      doc: 'open prepares older than this (QEMU time, or collector receive time for a VM silent on its partition) time out',
    }),
    vmRetentionMs: option({
      type: 'integer',
      default: DEFAULT_VM_RETENTION_MS,
      min: 1000,
      env: 'VFIO_PROCESSOR_VM_RETENTION_MS',
      flag: 'vm-retention-ms',
      doc: 'a VM with no event for this long (partition clock: collector receive times, not wall time) is forgotten: its memory freed, its state record tombstoned',
    }),
    commitIntervalMs: option({
      type: 'integer',
      default: 100,
      min: 0,
      max: 60_000,
      env: 'VFIO_PROCESSOR_COMMIT_INTERVAL_MS',
      flag: 'commit-interval-ms',
      doc: 'the longest a record waits for its transaction; a transaction commits sooner when no more records are waiting (group commit), so this bounds latency under load',
    }),
    maxRecordsPerTransaction: option({
      type: 'integer',
      default: 5000,
      min: 1,
      max: 1_000_000,
      env: 'VFIO_PROCESSOR_MAX_RECORDS_PER_TRANSACTION',
      flag: 'max-records-per-transaction',
      doc: 'input records per transaction at most (bounds one transaction whatever a fetch yields)',
    }),
    transactionTimeoutMs: option({
      type: 'integer',
      default: 10_000,
      min: 1000,
      max: 900_000,
      env: 'VFIO_PROCESSOR_TRANSACTION_TIMEOUT_MS',
      flag: 'transaction-timeout-ms',
      doc: 'the broker aborts a transaction open this long (a dead processor holds readers back at most this long)',
    }),
    transactionalId: option({
      type: 'string',
      default: '',
      env: 'VFIO_PROCESSOR_TRANSACTIONAL_ID',
      flag: 'transactional-id',
      doc: 'Kafka transactional.id, unique per running processor (default: <group id>-<instance id>)',
    }),
    instanceId: option({
      type: 'string',
      default: '',
      env: 'VFIO_PROCESSOR_INSTANCE_ID',
      flag: 'instance-id',
      metavar: 'ID',
      doc: 'stable identity of this processor (static group member, transactional id), e.g. the Kubernetes pod name; unique among live processors of the group (default: kept in the state directory)',
      check: (id) => (id === '' ? null : instanceIdProblem(id)),
    }),
    stateDir: option({
      type: 'string',
      default: '',
      env: 'VFIO_PROCESSOR_STATE_DIR',
      flag: 'state-dir',
      metavar: 'DIR',
      doc: 'directory keeping the instance id, locked by one processor at a time (default: the first free slot of .vfio-telemetry/processor/ in the working directory)',
    }),
    tickIntervalMs: option({
      type: 'integer',
      default: 1000,
      min: 10,
      env: 'VFIO_PROCESSOR_TICK_INTERVAL_MS',
      flag: 'tick-interval-ms',
      doc: 'how often the engine and lag gauges are refreshed',
    }),
    publishRetryMaxMs: option({
      type: 'integer',
      default: 5000,
      min: 10,
      env: 'VFIO_PROCESSOR_PUBLISH_RETRY_MAX_MS',
      flag: 'publish-retry-max-ms',
      doc: 'longest delay before retrying a failed transaction (consumption waits meanwhile)',
    }),
    ...serviceOptions({
      envPrefix: PROCESSOR_ENV_PREFIX,
      httpPort: 9465,
      serves: '/metrics, /healthz, /readyz',
      shutdownTimeoutMs: 15_000,
      shutdownDoc:
        'how long SIGTERM may take to commit the transaction in hand and leave the group',
    }),
  } as const;
}

export type ProcessorConfig = ConfigOf<ReturnType<typeof processorConfigSpec>>;

export function parseProcessorConfig(sources: ConfigSources): ProcessorConfig {
  return parseConfig(
    processorConfigSpec(),
    { envPrefix: PROCESSOR_ENV_PREFIX, ...sources },
    (c) => {
      const problems: string[] = kafkaSecurityProblems(c);
      const topics = [c.eventsTopic, c.transitionsTopic, c.stateTopic, c.deadLetterTopic];
      if (new Set(topics).size !== topics.length)
        problems.push('the four topics must be different');
      if (c.vmRetentionMs <= c.prepareTimeoutSeconds * 1000) {
        problems.push('vmRetentionMs must be longer than the prepare timeout');
      }
      return problems;
    },
  );
}
