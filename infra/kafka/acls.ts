/**
 * Grants (or revokes) the least-privilege ACLs of the stages (services/shared/kafka/core/acls.ts,
 * the table in docs/operations.md) on a secured cluster, as its super user.
 *
 *   node --import tsx infra/kafka/acls.ts --brokers HOST:PORT[,...] [--stage S]... [--revoke]
 *     [--prefix P] [--processor-group G] [--exporter-group G] [--transactional-id-prefix T]
 *     [--principal STAGE=User:NAME]... [--list]
 *
 * --stage limits it to collector, processor, exporter or audit (repeatable; all without);
 * --prefix is create-topics.ts's topic prefix; --list prints the bindings without touching Kafka.
 * The super user's KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* and KAFKA_TLS_* come from the
 * environment, e.g. `set -a; source STATE_DIR/tls/admin.env` after `start.sh --secure`.
 */
import { parseArgs } from 'node:util';
import { isTelemetryError } from '../../services/shared/core/errors.ts';
import {
  EVENTS_DLQ_TOPIC,
  EVENTS_TOPIC,
  PROCESSOR_STATE_TOPIC,
  TRANSITIONS_TOPIC,
} from '../../services/shared/core/topics.ts';
import { ACL_STAGES, stageAcls, type AclStage } from '../../services/shared/kafka/core/acls.ts';
import { parseKafkaSecurityEnv } from '../../services/shared/kafka/core/options.ts';
import { grantAcls, revokeAcls } from '../../services/shared/kafka/io/acls.ts';
import { createLogger } from '../../services/shared/io/logger.ts';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      brokers: { type: 'string' },
      stage: { type: 'string', multiple: true },
      revoke: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      prefix: { type: 'string', default: '' },
      'processor-group': { type: 'string' },
      'exporter-group': { type: 'string' },
      'transactional-id-prefix': { type: 'string' },
      principal: { type: 'string', multiple: true },
    },
  });
  const stages = (values.stage ?? [...ACL_STAGES]) as AclStage[];
  const unknown = stages.filter((s) => !(ACL_STAGES as readonly string[]).includes(s));
  if (unknown.length > 0) {
    console.error(`acls: unknown stage ${unknown.join(', ')} (${ACL_STAGES.join(', ')})`);
    return 64;
  }
  const principals: Partial<Record<AclStage, string>> = {};
  for (const entry of values.principal ?? []) {
    const match = /^(collector|processor|exporter|audit)=(User:.+)$/.exec(entry);
    if (match === null) {
      console.error(`acls: --principal ${entry} is not STAGE=User:NAME`);
      return 64;
    }
    principals[match[1] as AclStage] = match[2]!;
  }
  const p = values.prefix;
  const acls = stageAcls(
    {
      principals,
      eventsTopic: `${p}${EVENTS_TOPIC}`,
      transitionsTopic: `${p}${TRANSITIONS_TOPIC}`,
      stateTopic: `${p}${PROCESSOR_STATE_TOPIC}`,
      deadLetterTopic: `${p}${EVENTS_DLQ_TOPIC}`,
      ...(values['processor-group'] === undefined
        ? {}
        : { processorGroup: values['processor-group'] }),
      ...(values['exporter-group'] === undefined
        ? {}
        : { exporterGroup: values['exporter-group'] }),
      ...(values['transactional-id-prefix'] === undefined
        ? {}
        : { transactionalIdPrefix: values['transactional-id-prefix'] }),
    },
    stages,
  );
  for (const acl of acls) {
    console.log(
      `${values.revoke ? 'revoke' : 'allow'} ${acl.principal} ${acl.operation} ${acl.resourceType}:${acl.patternType === 'PREFIXED' ? `${acl.resourceName}*` : acl.resourceName}  # ${acl.reason}`,
    );
  }
  if (values.list) return 0;
  if (values.brokers === undefined) {
    console.error('acls: --brokers HOST:PORT[,HOST:PORT] is required');
    return 64;
  }
  const options = {
    brokers: values.brokers.split(','),
    clientId: 'vfio-telemetry-acls',
    logger: createLogger({ level: 'warn' }),
    security: parseKafkaSecurityEnv(process.env),
  };
  try {
    if (values.revoke) await revokeAcls(options, acls);
    else await grantAcls(options, acls);
  } catch (error) {
    if (!isTelemetryError(error)) throw error;
    console.error(`acls: ${error.message} ${JSON.stringify(error.details)}`);
    return error.code === 'CONFIG_INVALID' ? 64 : 1;
  }
  return 0;
}

process.exitCode = await main();
