import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { TelemetryError } from '../../shared/core/errors.ts';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

export interface LocalKafka {
  brokers: string[];
  /** Stops the broker by the PID its start script recorded. */
  stop(): Promise<void>;
}

/**
 * A fresh single-node Kafka for the demo, from the repo's own scripts (Maven Central jars, the
 * machine's Java): wiped and started in `dir`, with the project's topics created.
 */
export async function startLocalKafka(
  dir: string,
  onProgress: (line: string) => void,
): Promise<LocalKafka> {
  const run = promisify(execFile);
  await run('bash', [`${REPO}infra/kafka/stop.sh`, '--dir', dir]).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
  onProgress('starting a local Kafka broker (first run downloads it from Maven Central)...');
  let address: string;
  try {
    const { stdout } = await run('bash', [`${REPO}infra/kafka/start.sh`, '--dir', dir], {
      maxBuffer: 8 * 1024 * 1024,
    });
    address = stdout.trim().split('\n').at(-1) ?? '';
  } catch (error) {
    throw new TelemetryError(
      'KAFKA_UNAVAILABLE',
      `the local Kafka broker did not start (log: ${dir}/kafka.log)`,
      {
        cause: error,
      },
    );
  }
  const stop = async (): Promise<void> => {
    await run('bash', [`${REPO}infra/kafka/stop.sh`, '--dir', dir]);
  };
  try {
    await run(
      process.execPath,
      ['--import', 'tsx', `${REPO}infra/kafka/create-topics.ts`, '--brokers', address],
      {
        cwd: REPO,
      },
    );
  } catch (error) {
    await stop();
    throw new TelemetryError('KAFKA_UNAVAILABLE', 'creating the topics failed', { cause: error });
  }
  return { brokers: [address], stop };
}
