import { randomUUID } from 'node:crypto';
import type { Kafka, KafkaMessage } from 'kafkajs';
import { TelemetryError } from '../../shared/core/errors.ts';

/**
 * Reads chosen partitions of a topic from chosen offsets up to their end as of the call.
 * kafkajs cannot assign partitions by hand (tulios/kafkajs#373), so this joins a throwaway
 * consumer group of one member, seeks the wanted partitions, pauses the rest, and deletes the
 * group afterwards.
 */
export async function readPartitionsToEnd(
  kafka: Kafka,
  topic: string,
  starts: ReadonlyMap<number, number>,
  onMessage: (partition: number, message: KafkaMessage) => void,
  timeoutMs = 60_000,
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    const ranges = new Map<number, { start: number; end: number }>();
    for (const [partition, wanted] of starts) {
      const info = offsets.find((o) => o.partition === partition);
      if (info === undefined) {
        throw new TelemetryError('CONFIG_INVALID', `topic ${topic} has no partition ${partition}`);
      }
      const start = Math.max(wanted, Number(info.low));
      const end = Number(info.high);
      if (start < end) ranges.set(partition, { start, end });
    }
    if (ranges.size === 0) return;
    const groupId = `vfio-processor-restore-${randomUUID()}`;
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100, sessionTimeout: 10_000 });
    const pending = new Set(ranges.keys());
    let finish: () => void = () => {};
    const finished = new Promise<void>((resolve) => (finish = resolve));
    try {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          const range = ranges.get(batch.partition);
          if (range === undefined || !pending.has(batch.partition)) return;
          for (const message of batch.messages) {
            const offset = Number(message.offset);
            if (offset < range.start || offset >= range.end) continue;
            onMessage(batch.partition, message);
          }
          const last = Number(batch.lastOffset());
          if (last >= range.end - 1) {
            pending.delete(batch.partition);
            if (pending.size === 0) finish();
          }
          return Promise.resolve();
        },
      });
      const others = offsets.map((o) => o.partition).filter((p) => !ranges.has(p));
      if (others.length > 0) consumer.pause([{ topic, partitions: others }]);
      for (const [partition, range] of ranges)
        consumer.seek({ topic, partition, offset: String(range.start) });
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new TelemetryError('KAFKA_UNAVAILABLE', `reading ${topic} back timed out`)),
          timeoutMs,
        );
      });
      try {
        await Promise.race([finished, timeout]);
      } finally {
        clearTimeout(timer);
      }
    } finally {
      await consumer.disconnect();
      await admin.deleteGroups([groupId]).catch(() => undefined);
    }
  } finally {
    await admin.disconnect();
  }
}
