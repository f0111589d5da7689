import { option, parseConfig, renderOptionsHelp } from '../../shared/core/config-spec.ts';
import {
  kafkaConnectionOptions,
  kafkaSecurityOf,
  kafkaSecurityProblems,
  topicNameProblem,
} from '../../shared/kafka/core/options.ts';
import { EVENTS_TOPIC, TRANSITIONS_TOPIC } from '../../shared/core/topics.ts';
import { DEFAULT_PREPARE_TIMEOUT_SECONDS } from '../../shared/core/transition-engine.ts';
import { DEFAULT_VM_RETENTION_MS } from '../../processor/core/partition-processor.ts';
import { createKafkaPort } from '../../shared/kafka/io/client.ts';
import type { CommandIo } from '../../shared/io/command-io.ts';
import { runCommand } from '../../shared/io/stage-runner.ts';
import { auditTopics } from './audit-topics.ts';
import { formatReportJson, formatReportTable } from './format-report.ts';

export const AUDIT_ENV_PREFIX = 'VFIO_AUDIT_';

/** A time as given on the command line: ISO 8601, or ms since the epoch; null when not one. */
export function parseTimeMs(text: string): number | null {
  if (/^\d+$/.test(text)) return Number(text);
  if (!/^\d{4}-\d\d-\d\d/.test(text)) return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : ms;
}

const timeProblem = (text: string): string | null =>
  text === '' || parseTimeMs(text) !== null
    ? null
    : `"${text}" is not a time (ISO 8601, e.g. 2026-05-01T12:00:00Z, or ms since the epoch)`;

/** The audit's options. */
export function auditConfigSpec() {
  return {
    ...kafkaConnectionOptions(),
    eventsTopic: option({
      type: 'string',
      default: EVENTS_TOPIC,
      env: 'VFIO_AUDIT_EVENTS_TOPIC',
      flag: 'events-topic',
      doc: 'topic of the event records the processor reads',
      check: topicNameProblem,
    }),
    transitionsTopic: option({
      type: 'string',
      default: TRANSITIONS_TOPIC,
      env: 'VFIO_AUDIT_TRANSITIONS_TOPIC',
      flag: 'transitions-topic',
      doc: 'topic of the transition records the processor wrote',
      check: topicNameProblem,
    }),
    partitions: option({
      type: 'list',
      default: [],
      env: 'VFIO_AUDIT_PARTITIONS',
      flag: 'partitions',
      doc: 'partitions to audit (partition p of both topics); none means all',
      check: (list) =>
        list
          .map((p) => (/^\d{1,6}$/.test(p) ? null : `"${p}" is not a partition number`))
          .find((p) => p !== null) ?? null,
    }),
    since: option({
      type: 'string',
      default: '',
      env: 'VFIO_AUDIT_SINCE',
      flag: 'since',
      doc: 'report only transitions whose closing event was written at or after this time',
      check: timeProblem,
    }),
    until: option({
      type: 'string',
      default: '',
      env: 'VFIO_AUDIT_UNTIL',
      flag: 'until',
      doc: 'report only transitions whose closing event was written before this time',
      check: timeProblem,
    }),
    prepareTimeoutSeconds: option({
      type: 'number',
      default: DEFAULT_PREPARE_TIMEOUT_SECONDS,
      min: 0.001,
      env: 'VFIO_AUDIT_PREPARE_TIMEOUT_SECONDS',
      flag: 'prepare-timeout',
      doc: "the processor's --prepare-timeout (recomputation must use the same)",
    }),
    vmRetentionMs: option({
      type: 'integer',
      default: DEFAULT_VM_RETENTION_MS,
      min: 1000,
      env: 'VFIO_AUDIT_VM_RETENTION_MS',
      flag: 'vm-retention-ms',
      doc: "the processor's --vm-retention-ms (recomputation must use the same)",
    }),
    format: option({
      type: 'string',
      default: 'table',
      oneOf: ['table', 'json'],
      env: 'VFIO_AUDIT_FORMAT',
      flag: 'format',
      doc: 'table for people, json (one object) for scripts',
    }),
    clientId: option({
      type: 'string',
      default: 'vfio-audit',
      env: 'VFIO_AUDIT_CLIENT_ID',
      flag: 'client-id',
      doc: 'Kafka client id',
    }),
    logLevel: option({
      type: 'string',
      default: 'warn',
      oneOf: ['debug', 'info', 'warn', 'error'],
      env: 'VFIO_AUDIT_LOG_LEVEL',
      flag: 'log-level',
      doc: 'least severe log level written to stderr',
    }),
  } as const;
}

export function auditHelp(): string {
  return `Usage: vfio-telemetry audit [--config FILE] [options]

Checks the transitions topic against the events topic: reads both to their ends (read_committed),
recomputes every transition from the events with the processor's own code, and reports
transitions that are missing (recomputed, not in the topic), duplicated (in the topic more than
once), mismatched (same host, VM, device, kind and start, but another outcome, next state or
duration) and unexpected (in the topic, not recomputed), plus how many events were read and how
many were re-sent duplicates of the same (session, sequence).

Partition p of the transitions topic is compared with partition p of the events topic. A time
range (--since/--until, on the Kafka timestamps of the events) limits what is reported, not what
is recomputed: every partition is recomputed from its first record, because a transition depends
on its VM's whole history, and a transition is reported when the event that closed it was written
in the range. Settings come from flags, then the environment, then the config file (YAML or JSON,
keys as in parentheses below), then the defaults.

Options:
${renderOptionsHelp(auditConfigSpec(), [
  { flag: '--config FILE', text: 'YAML or JSON config file' },
  { flag: '-h, --help', text: 'show this help' },
])}

Exit status: 0 when the topics agree, 1 when there is any difference (or Kafka fails), 2 on bad
usage or configuration.
`;
}

/** `vfio-telemetry audit`: one reconciliation, printed; the exit status says whether it is clean. */
export function runAudit(
  args: readonly string[],
  io: CommandIo,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<number> {
  return runCommand(
    {
      name: 'audit',
      spec: auditConfigSpec(),
      help: auditHelp,
      parseConfig: (sources) =>
        parseConfig(auditConfigSpec(), { envPrefix: AUDIT_ENV_PREFIX, ...sources }, (c) => {
          const since = parseTimeMs(c.since);
          const until = parseTimeMs(c.until);
          return [
            ...kafkaSecurityProblems(c),
            ...(since !== null && until !== null && since >= until
              ? ['--since must be before --until']
              : []),
          ];
        }),
      logFields: () => ({ command: 'audit' }),
      run: async (config, { logger }) => {
        const port = createKafkaPort({
          brokers: config.brokers,
          clientId: config.clientId,
          security: kafkaSecurityOf(config),
          logger,
        });
        let report;
        try {
          report = await auditTopics({
            port,
            eventsTopic: config.eventsTopic,
            transitionsTopic: config.transitionsTopic,
            prepareTimeoutSeconds: config.prepareTimeoutSeconds,
            vmRetentionMs: config.vmRetentionMs,
            ...(config.partitions.length === 0
              ? {}
              : { partitions: config.partitions.map(Number) }),
            range: { sinceMs: parseTimeMs(config.since), untilMs: parseTimeMs(config.until) },
          });
        } finally {
          await port.close();
        }
        await io.write(
          config.format === 'json' ? formatReportJson(report) : formatReportTable(report),
        );
        return report.clean ? 0 : 1;
      },
    },
    args,
    io,
    env,
  );
}
