/**
 * A secured Kafka of the test's own: `infra/kafka/start.sh --secure` (one node, or `--nodes N`)
 * in a fresh temporary directory, stopped by PID with stop.sh and removed afterwards. It knows
 * the KAFKA_* settings start.sh wrote for each principal (STATE_DIR/tls/USER.env for SASL_SSL
 * with SCRAM-SHA-512, USER-mtls.env for SSL with a client certificate) and grants or revokes
 * the stages' ACLs as the super user.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StageAcl } from '../../services/shared/kafka/core/acls.ts';
import {
  parseKafkaSecurityEnv,
  type KafkaSecurity,
} from '../../services/shared/kafka/core/options.ts';
import { grantAcls, revokeAcls } from '../../services/shared/kafka/io/acls.ts';
import { createKafkaPort } from '../../services/shared/kafka/io/client.ts';
import type { KafkaPort } from '../../services/shared/kafka/io/port.ts';
import { createLogger } from '../../services/shared/io/logger.ts';
import { waitFor } from './wait-for.ts';

const KAFKA_SCRIPTS = fileURLToPath(new URL('../../infra/kafka/', import.meta.url));
const START_TIMEOUT_MS = 300_000;
const STOP_TIMEOUT_MS = 60_000;

export type Listener = 'scram' | 'mtls';

export interface SecureKafka {
  readonly dir: string;
  /** The SASL_SSL listeners (what start.sh printed). */
  readonly brokers: string[];
  /** The SSL (client certificate) listeners. */
  readonly sslBrokers: string[];
  /** `STATE_DIR/tls/<file>`. */
  tlsFile(name: string): string;
  /** The KAFKA_* variables start.sh wrote for `user` (KAFKA_BROKERS included). */
  env(user: string, listener?: Listener): Promise<Record<string, string>>;
  security(user: string, listener?: Listener): Promise<KafkaSecurity>;
  /** A port as `user`; the caller closes it. */
  port(user?: string, listener?: Listener): Promise<KafkaPort>;
  grant(acls: readonly StageAcl[]): Promise<void>;
  revoke(acls: readonly StageAcl[]): Promise<void>;
  stop(): Promise<void>;
}

function runScript(script: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [join(KAFKA_SCRIPTS, script), ...args],
      { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error !== null)
          reject(new Error(`${script} ${args.join(' ')} failed:\n${stderr}`, { cause: error }));
        else resolve(stdout);
      },
    );
  });
}

function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line);
    if (match !== null) env[match[1]!] = match[2]!.replace(/^"(.*)"$/, '$1');
  }
  return env;
}

/** Starts it; the caller registers `stop` (t.after / after). */
export async function startSecureKafka(options: { nodes?: number } = {}): Promise<SecureKafka> {
  const dir = await mkdtemp(join(tmpdir(), 'vfio-kafka-secure-'));
  const stop = async (): Promise<void> => {
    try {
      await runScript('stop.sh', ['--dir', dir], STOP_TIMEOUT_MS);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
  const args = ['--secure', '--dir', dir];
  if (options.nodes !== undefined) args.push('--nodes', String(options.nodes));
  let stdout: string;
  try {
    stdout = await runScript('start.sh', args, START_TIMEOUT_MS);
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
  const brokers = (stdout.trimEnd().split('\n').at(-1) ?? '').split(',');
  const clients = parseEnvFile(await readFile(join(dir, 'clients.env'), 'utf8'));
  const sslBrokers = (clients['KAFKA_BOOTSTRAP_SSL'] ?? '').split(',');
  const env = async (user: string, listener: Listener = 'scram') =>
    parseEnvFile(
      await readFile(
        join(dir, 'tls', listener === 'scram' ? `${user}.env` : `${user}-mtls.env`),
        'utf8',
      ),
    );
  const security = async (user: string, listener: Listener = 'scram') =>
    parseKafkaSecurityEnv(await env(user, listener));
  const adminOptions = async () => ({
    brokers,
    clientId: 'vfio-telemetry-test-admin',
    logger: createLogger({ write: () => undefined }),
    security: await security('admin'),
  });
  // The first group on a fresh cluster waits for __consumer_offsets to be created and loaded
  // (COORDINATOR_LOAD_IN_PROGRESS); wait for that here, not inside the first test's stage.
  const warmUp = createKafkaPort(await adminOptions());
  try {
    await warmUp.createTopics([
      { name: 'warm-up', numPartitions: 1, replicationFactor: options.nodes ?? 1, configs: {} },
    ]);
    await waitFor(
      async () => {
        try {
          const consumer = await warmUp.groupConsumer({ groupId: 'warm-up', topics: ['warm-up'] });
          await consumer.close();
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 120_000, description: 'a group coordinator on the secured cluster' },
    );
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  } finally {
    await warmUp.close();
  }
  return {
    dir,
    brokers,
    sslBrokers,
    tlsFile: (name) => join(dir, 'tls', name),
    env,
    security,
    async port(user = 'admin', listener: Listener = 'scram') {
      return createKafkaPort({
        brokers: listener === 'scram' ? brokers : sslBrokers,
        clientId: `vfio-telemetry-test-${user}`,
        logger: createLogger({ write: () => undefined }),
        security: await security(user, listener),
      });
    },
    grant: async (acls) => grantAcls(await adminOptions(), acls),
    revoke: async (acls) => {
      await revokeAcls(await adminOptions(), acls);
    },
    stop,
  };
}
