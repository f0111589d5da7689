/**
 * The project's Kafka topics: names, partition counts and retention. Pure constants, read by
 * `infra/kafka/create-topics.ts` to create them and by the services to name them.
 *
 * Partitions: records are keyed by VM, so one VM's events stay in order on one partition; 6 lets up
 * to 6 processors share the load and divides evenly among 1, 2, 3 or 6 of them. Retention keeps the
 * raw events a week (enough to replay a processor bug fix over last week's migrations) and the
 * derived transitions and dead letters a month (trend queries, and time for a person to look at a
 * rejected record). The processor's state topic is a changelog, not a log: compacted, so it keeps
 * the latest snapshot per key for as long as the key lives, with as many partitions as the events
 * topic so input partition p finds its state on partition p. Names carry the schema generation
 * (`.v1`): an incompatible change gets a new topic, never a rewrite of the old one.
 *
 * The events topic keeps broker time (`message.timestamp.type=LogAppendTime`): the partition
 * leader stamps each record as it appends it, so the processor's partition clock is the
 * broker's, not any collector host's (issue 18), and the broker never refuses a record for a
 * producer timestamp too far from its own (`log.message.timestamp.after.max.ms`, 1 h in Kafka 4).
 */
import { TelemetryError } from './errors.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

export const EVENTS_TOPIC = 'vfio.events.v1';
export const TRANSITIONS_TOPIC = 'vfio.transitions.v1';
export const EVENTS_DLQ_TOPIC = 'vfio.events.v1.dlq';
export const PROCESSOR_STATE_TOPIC = 'vfio.processor-state.v1';

export interface TopicSpec {
  readonly name: string;
  readonly numPartitions: number;
  readonly replicationFactor: number;
  /** Topic-level configs as Kafka takes them (string values). */
  readonly configs: Readonly<Record<string, string>>;
}

export interface TopicSpecOptions {
  /** Prepended to every name as is, e.g. `ci-42.` (default none). */
  prefix?: string;
  /** Default 1: the local single-node broker cannot hold more replicas. */
  replicationFactor?: number;
}

/** The configs that make a topic keep broker time; the processor refuses an events topic without. */
export const BROKER_TIME_CONFIGS: Readonly<Record<string, string>> = {
  'message.timestamp.type': 'LogAppendTime',
};

const BASE_SPECS: readonly Omit<TopicSpec, 'replicationFactor'>[] = [
  {
    name: EVENTS_TOPIC,
    numPartitions: 6,
    configs: {
      'cleanup.policy': 'delete',
      'retention.ms': String(7 * DAY_MS),
      ...BROKER_TIME_CONFIGS,
    },
  },
  {
    name: TRANSITIONS_TOPIC,
    numPartitions: 6,
    configs: { 'cleanup.policy': 'delete', 'retention.ms': String(30 * DAY_MS) },
  },
  {
    name: EVENTS_DLQ_TOPIC,
    numPartitions: 1,
    configs: { 'cleanup.policy': 'delete', 'retention.ms': String(30 * DAY_MS) },
  },
  {
    name: PROCESSOR_STATE_TOPIC,
    numPartitions: 6,
    // The active segment is never compacted; hourly segments let a quiet topic compact at all.
    configs: { 'cleanup.policy': 'compact', 'segment.ms': String(60 * 60 * 1000) },
  },
];

/** Kafka's rule for topic names (`org.apache.kafka.common.internals.Topic`). */
const LEGAL_TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

/** The specs of all project topics under `prefix`. Throws `CONFIG_INVALID` for an illegal name. */
export function topicSpecs(options: TopicSpecOptions = {}): readonly TopicSpec[] {
  const prefix = options.prefix ?? '';
  const replicationFactor = options.replicationFactor ?? 1;
  if (!Number.isInteger(replicationFactor) || replicationFactor < 1) {
    throw new TelemetryError('CONFIG_INVALID', 'replication factor must be a positive integer', {
      details: { replicationFactor },
    });
  }
  return BASE_SPECS.map((spec) => {
    const name = `${prefix}${spec.name}`;
    if (!LEGAL_TOPIC_NAME.test(name)) {
      throw new TelemetryError('CONFIG_INVALID', 'topic prefix makes an illegal Kafka topic name', {
        details: { prefix, name },
      });
    }
    return { ...spec, name, replicationFactor };
  });
}
