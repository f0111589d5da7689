/**
 * Waits until a broker answers a real metadata request (the Kafka port's `brokerIds`), used by
 * start.sh. A listening socket is not enough: a KRaft broker accepts connections before it has
 * caught up with the metadata log and fenced itself in, and clients see errors until then.
 *
 *   node --import tsx infra/kafka/await-broker.ts --brokers HOST:PORT [--pid PID] [--timeout-ms N]
 *
 * A secured broker is asked with the KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* and KAFKA_TLS_* settings
 * of the environment (start.sh passes its admin's).
 *
 * Exit 0 once answered; 1 on timeout; 2 if the process --pid is gone first (no point waiting).
 */
import '../../bin/require-node.js';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseKafkaSecurityEnv } from '../../services/shared/kafka/core/options.ts';
import { createKafkaPort } from '../../services/shared/kafka/io/client.ts';
import { createLogger } from '../../services/shared/io/logger.ts';

const ATTEMPT_INTERVAL_MS = 250;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function answersMetadata(brokers: string[]): Promise<unknown> {
  const port = createKafkaPort({
    brokers,
    clientId: 'vfio-telemetry-await-broker',
    security: parseKafkaSecurityEnv(process.env),
    // Quiet: every failed attempt is expected until the broker is up; the last one is reported.
    logger: createLogger({ write: () => undefined }),
    connectTimeoutMs: 1000,
    requestTimeoutMs: 2000,
    retries: 0,
  });
  try {
    await port.brokerIds();
    return undefined;
  } catch (error) {
    return error;
  } finally {
    await port.close().catch(() => undefined);
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      brokers: { type: 'string' },
      pid: { type: 'string' },
      'timeout-ms': { type: 'string', default: '60000' },
    },
  });
  if (values.brokers === undefined) {
    console.error('await-broker: --brokers HOST:PORT is required');
    return 64;
  }
  const brokers = values.brokers.split(',');
  const pid = values.pid === undefined ? undefined : Number(values.pid);
  const deadline = Date.now() + Number(values['timeout-ms']);
  let lastError: unknown;
  for (;;) {
    lastError = await answersMetadata(brokers);
    if (lastError === undefined) return 0;
    if (pid !== undefined && !isAlive(pid)) {
      console.error(`await-broker: process ${pid} exited before ${values.brokers} answered`);
      return 2;
    }
    if (Date.now() >= deadline) break;
    await sleep(ATTEMPT_INTERVAL_MS);
  }
  const reasons: string[] = [];
  for (let e: unknown = lastError; e instanceof Error; e = e.cause) reasons.push(e.message);
  const reason = reasons.length > 0 ? reasons.join(' ') : JSON.stringify(lastError);
  console.error(`await-broker: ${values.brokers} did not answer a metadata request: ${reason}`);
  return 1;
}

process.exitCode = await main();
