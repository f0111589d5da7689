import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { isTelemetryError, TelemetryError } from '../shared/core/errors.ts';
import type { CommandIo } from '../shared/io/command-io.ts';
import { createLogger } from '../shared/io/logger.ts';
import { createKafkaPort } from '../shared/kafka/io/client.ts';
import { kafkaSecurityOf } from '../shared/kafka/core/options.ts';
import { parseProcessorConfig } from './config.ts';
import { planSkip } from './core/input-holes.ts';
import { ChangelogFold, metaEntry } from './core/state-changelog.ts';

export function skipHelp(): string {
  return `Usage: vfio-telemetry process skip --partition N --to OFFSET [--brokers A,B]
       [--group-id ID] [--events-topic T] [--state-topic T]

Skips input on purpose: the processor group's state for partition N of the events topic is told
that every record below OFFSET is applied (its meta record), and the group's committed offset
moves to OFFSET, in one transaction. The records in between are never processed: their
transitions are lost, and the VMs' sessions read the next events as a sequence gap. Only forward.
Stop every processor of the group first: with a live member the broker refuses the offset commit
and nothing changes. Without this, a group offset moved past records by hand is a hole the
processor fills by reading them again (docs/operations.md, "Skipping input on purpose").
Other settings (brokers, topics, group id) as for "process", from flags or the environment.

Exit status: 0 when skipped, 1 when Kafka refused (a live member) or failed, 2 on bad usage.
`;
}

/** `vfio-telemetry process skip`. */
export async function runSkip(args: readonly string[], io: CommandIo): Promise<number> {
  const { values } = parseArgs({
    args: [...args],
    options: {
      partition: { type: 'string' },
      to: { type: 'string' },
      brokers: { type: 'string' },
      'group-id': { type: 'string' },
      'events-topic': { type: 'string' },
      'state-topic': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    await io.write(skipHelp());
    return 0;
  }
  const partition = Number(values.partition);
  const to = Number(values.to);
  if (values.partition === undefined || !Number.isSafeInteger(partition) || partition < 0) {
    throw new TelemetryError(
      'USAGE',
      '--partition N (a partition of the events topic) is required',
    );
  }
  if (values.to === undefined) throw new TelemetryError('USAGE', '--to OFFSET is required');
  const config = parseProcessorConfig({
    env: process.env,
    flags: {
      'group-id': values['group-id'],
      'events-topic': values['events-topic'],
      'state-topic': values['state-topic'],
      ...(values.brokers === undefined ? {} : { brokers: values.brokers.split(',') }),
    },
  });
  const logger = createLogger({ level: 'warn' });
  const port = createKafkaPort({
    brokers: config.brokers,
    clientId: `${config.clientId}-skip`,
    security: kafkaSecurityOf(config),
    logger,
  });
  try {
    const fold = new ChangelogFold(config.groupId);
    await port.readToEnd(
      [{ topic: config.stateTopic, partition, offset: 0n }],
      (r) => fold.add(r.key?.toString() ?? '', r.value?.toString() ?? null),
      'read_committed',
    );
    const before = fold.result().meta;
    const plan = planSkip(before, to);
    if (plan.kind === 'refused') throw new TelemetryError('USAGE', plan.reason);
    const producer = await port.producer({
      transactionalId: `${config.groupId}-skip-${randomUUID()}`,
    });
    try {
      const entry = metaEntry(config.groupId, plan.meta);
      await producer.commitTransaction({
        records: [
          {
            topic: config.stateTopic,
            partition,
            key: Buffer.from(entry.key),
            value: Buffer.from(entry.value ?? ''),
          },
        ],
        offsets: [{ topic: config.eventsTopic, partition, offset: BigInt(to) }],
        // No member: the broker takes it only while the group has none (generation -1).
        membership: { groupId: config.groupId, generationId: -1, memberId: '', assigned: [] },
      });
    } catch (error) {
      if (isTelemetryError(error, 'KAFKA_FENCED')) {
        throw new TelemetryError(
          'KAFKA_FENCED',
          `group ${config.groupId} has live members: stop every processor of the group, then skip again (nothing was changed)`,
          { cause: error },
        );
      }
      throw error;
    } finally {
      await producer.close();
    }
    await io.write(
      `skipped ${plan.skipped} records of ${config.eventsTopic} partition ${partition}: offsets ${before?.nextOffset ?? 0}..${to - 1} (group ${config.groupId})\n`,
    );
    return 0;
  } finally {
    await port.close();
  }
}
