/**
 * Waits until every node of a cluster lists all of its brokers in its metadata, used by
 * `start.sh --nodes N` after each node answered on its own (await-broker.ts). A broker answers
 * once it is unfenced, but its peers learn that from the metadata log a moment later; clients that
 * bootstrap from any node should see the whole cluster, and internal topics with 3 replicas can
 * only be created once 3 brokers are registered.
 *
 *   node --import tsx infra/kafka/await-cluster.ts --brokers H:P,H:P,... --count N [--timeout-ms T]
 *
 * Exit 0 once each address in --brokers answers with N brokers; 1 on timeout.
 */
import '../../bin/require-node.js';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Admin } from '@platformatic/kafka';
import { parseKafkaSecurityEnv } from '../../services/shared/kafka/core/options.ts';
import { connectionSecurity } from '../../services/shared/kafka/io/security.ts';

const ATTEMPT_INTERVAL_MS = 250;

/** The number of brokers the metadata of `address` lists, or the error it answered with. */
async function brokerCount(address: string): Promise<number | Error> {
  const admin = new Admin({
    clientId: 'vfio-telemetry-await-cluster',
    bootstrapBrokers: [address],
    connectTimeout: 1000,
    requestTimeout: 2000,
    retries: 0,
    ...connectionSecurity(parseKafkaSecurityEnv(process.env)),
  });
  try {
    const metadata = await admin.metadata({ topics: [], forceUpdate: true });
    return metadata.brokers.size;
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  } finally {
    await admin.close().catch(() => undefined);
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      brokers: { type: 'string' },
      count: { type: 'string' },
      'timeout-ms': { type: 'string', default: '60000' },
    },
  });
  const count = Number(values.count);
  if (values.brokers === undefined || !Number.isInteger(count) || count < 1) {
    console.error('await-cluster: --brokers H:P,... and --count N are required');
    return 64;
  }
  const addresses = values.brokers.split(',');
  const deadline = Date.now() + Number(values['timeout-ms']);
  let pending = addresses;
  let lastAnswer = '';
  for (;;) {
    const answers = await Promise.all(pending.map(brokerCount));
    pending = pending.filter((address, i) => {
      const answer = answers[i];
      if (answer === count) return false;
      lastAnswer = `${address}: ${answer instanceof Error ? answer.message : `${answer} brokers`}`;
      return true;
    });
    if (pending.length === 0) return 0;
    if (Date.now() >= deadline) break;
    await sleep(ATTEMPT_INTERVAL_MS);
  }
  console.error(`await-cluster: not every node lists ${count} brokers; last answer ${lastAnswer}`);
  return 1;
}

process.exitCode = await main();
