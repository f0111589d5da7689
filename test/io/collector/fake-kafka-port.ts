/**
 * An in-memory fake of the Kafka port for the collector's io tests (STYLE.md rule 4): a
 * Producer whose answer to each `send` a test decides (`SendBehaviour`), and a log per partition
 * of what it acknowledged, kept the way the port reports it: `acks` count the records written
 * per partition in call order (refused ones not included), a failure names in
 * `details.written` the partitions written before it.
 */
import { TelemetryError } from '../../../services/shared/core/errors.ts';
import type {
  OutgoingRecord,
  PartitionAck,
  Producer,
  SendResult,
} from '../../../services/shared/kafka/io/port.ts';

export type SendBehaviour = (records: readonly OutgoingRecord[]) => SendResult | Error;

/**
 * A Kafka that stores what a behaviour says it acknowledged (per partition, in order), like the
 * port: `acks` count the records written per partition, a failure names in `details.written` the
 * partitions written before it. `down`: while true, opening a producer fails as with no broker
 * reachable.
 */
export function fakeKafka(behaviour: { send: SendBehaviour; down?: boolean }, partitions: number) {
  const log: string[][] = Array.from({ length: partitions }, () => []);
  const calls: string[][] = [];
  /** Every acknowledged record, in the order acknowledged. */
  const stored: OutgoingRecord[] = [];
  const producer: Producer = {
    send: (records) => {
      calls.push(records.map((r) => r.value?.toString() ?? ''));
      const result = behaviour.send(records);
      const acks = result instanceof Error ? writtenOf(result) : result.acks;
      const refused = new Set(result instanceof Error ? [] : result.refused.map((r) => r.index));
      for (const ack of acks) {
        const written = records.filter((r, i) => r.partition === ack.partition && !refused.has(i));
        for (const r of written.slice(0, ack.count)) {
          (log[ack.partition] as string[]).push(r.value?.toString() ?? '');
          stored.push(r);
        }
      }
      return result instanceof Error ? Promise.reject(result) : Promise.resolve(result);
    },
    commitTransaction: () => Promise.reject(new Error('not used')),
    initTransactions: () => Promise.reject(new Error('not used')),
    connect: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  return {
    log,
    calls,
    stored,
    port: {
      producer: () => Promise.resolve(producer),
      close: () => Promise.resolve(),
      describeTopics: (names: readonly string[]) =>
        behaviour.down === true
          ? Promise.reject(new TelemetryError('KAFKA_UNAVAILABLE', 'no broker reachable'))
          : Promise.resolve(
              new Map(
                names.map((name) => [
                  name,
                  {
                    name,
                    partitions,
                    replicationFactor: 1,
                    configs: {},
                    leaders: Array.from({ length: partitions }, () => 1),
                  },
                ]),
              ),
            ),
    },
  };
}

function writtenOf(error: Error): PartitionAck[] {
  const written = error instanceof TelemetryError ? error.details['written'] : undefined;
  return (written as PartitionAck[] | undefined) ?? [];
}

/** Every record acknowledged in full. */
export function ackAll(records: readonly OutgoingRecord[], refuse = new Set<number>()): SendResult {
  const counts = new Map<number, number>();
  records.forEach((r, i) => {
    if (!refuse.has(i)) counts.set(r.partition, (counts.get(r.partition) ?? 0) + 1);
  });
  return {
    acks: [...counts].map(([partition, count]) => ({
      topic: records[0]?.topic ?? '',
      partition,
      baseOffset: 0n,
      count,
    })),
    refused: [...refuse].map((index) => ({
      index,
      reason: 'MESSAGE_TOO_LARGE',
      detail: 'bigger than max.message.bytes',
    })),
  };
}
