/**
 * A three-node Kafka cluster of the test's own, for fault tests: started and stopped by the repo's
 * scripts (`infra/kafka/start.sh --nodes N`, `node.sh`, `stop.sh`), every process by its PID.
 *
 * - `startCluster(t, { nodes: 3 })`: the cluster in a fresh temporary directory, with one method
 *   per fault `node.sh` can inject into one node. After the test, paused nodes are resumed, every
 *   node is stopped and the directory is removed, including on failure.
 * - `partitionOf(brokers, topic, partition)`: its leader, replicas and in-sync replicas as the
 *   cluster metadata says now; `leaderOf` just the leader.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Admin } from '@platformatic/kafka';

const KAFKA_SCRIPTS = fileURLToPath(new URL('../../infra/kafka/', import.meta.url));
const START_TIMEOUT_MS = 240_000;
const NODE_START_TIMEOUT_MS = 150_000;
const STOP_TIMEOUT_MS = 60_000;
const SIGNAL_TIMEOUT_MS = 30_000;
/** node.sh's exit status when the node is not running. */
const NOT_RUNNING = 3;

export interface ClusterOptions {
  /** Default 3 (start.sh takes 3 to 9). */
  nodes?: number;
}

export interface ClusterNode {
  /** The node's `node.id`, 1..N: broker id and controller id. */
  readonly id: number;
  /** `HOST:PORT` of its broker listener; the same across restarts. */
  readonly address: string;
}

export interface KafkaCluster {
  /** The state directory given to the scripts (removed after the test). */
  readonly dir: string;
  /** `HOST:PORT,HOST:PORT,...` of every node, in id order. */
  readonly brokers: string;
  readonly nodes: readonly ClusterNode[];
  /** SIGTERM (controlled shutdown); resolves once the process is gone. */
  stop(id: number): Promise<void>;
  /** SIGKILL; resolves once the process is gone. */
  kill(id: number): Promise<void>;
  /** SIGSTOP: the node holds its connections and answers nothing. */
  pause(id: number): Promise<void>;
  /** SIGCONT. */
  resume(id: number): Promise<void>;
  /** Starts the node again with its data and port; resolves once it answers a metadata request. */
  start(id: number): Promise<void>;
  /** The node's PID, or undefined while it is not running. */
  pidOf(id: number): Promise<number | undefined>;
  /** Stops every node at once (stop.sh); resolves once all processes are gone. */
  stopAll(): Promise<void>;
}

/** A script that exited non-zero, with its exit status (null when killed by the timeout). */
class ScriptFailure extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    options: ErrorOptions,
  ) {
    super(message, options);
  }
}

function runScript(script: string, args: readonly string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [join(KAFKA_SCRIPTS, script), ...args],
      { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve(stdout);
          return;
        }
        const exitCode = typeof error.code === 'number' ? error.code : null;
        reject(
          new ScriptFailure(`${script} ${args.join(' ')} failed:\n${stderr}`, exitCode, {
            cause: error,
          }),
        );
      },
    );
  });
}

const lastLine = (stdout: string): string => stdout.trimEnd().split('\n').at(-1) ?? '';

/**
 * Starts an N-node cluster with `infra/kafka/start.sh --nodes N` in a fresh temporary directory
 * and resolves once every node lists all N brokers.
 */
export async function startCluster(
  t: TestContext,
  options: ClusterOptions = {},
): Promise<KafkaCluster> {
  const count = options.nodes ?? 3;
  const dir = await mkdtemp(join(tmpdir(), 'vfio-kafka-cluster-'));
  const paused = new Set<number>();
  const node = (id: number, action: string, timeoutMs = SIGNAL_TIMEOUT_MS): Promise<string> =>
    runScript('node.sh', ['--dir', dir, '--node', String(id), action], timeoutMs);

  const resume = async (id: number): Promise<void> => {
    await node(id, 'resume');
    paused.delete(id);
  };
  const stopAll = async (): Promise<void> => {
    // A paused node would only take SIGKILL; resumed, it shuts down like the others.
    for (const id of paused) await resume(id).catch(() => paused.delete(id));
    await runScript('stop.sh', ['--dir', dir], STOP_TIMEOUT_MS);
  };
  t.after(async () => {
    try {
      await stopAll();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  const brokers = lastLine(
    await runScript('start.sh', ['--nodes', String(count), '--dir', dir], START_TIMEOUT_MS),
  );
  const addresses = brokers.split(',');
  if (addresses.length !== count) {
    throw new Error(`start.sh --nodes ${count} printed ${brokers}, not ${count} addresses`);
  }
  const nodes = addresses.map((address, i) => ({ id: i + 1, address }));

  return {
    dir,
    brokers,
    nodes,
    async stop(id) {
      await node(id, 'stop', STOP_TIMEOUT_MS);
    },
    async kill(id) {
      await node(id, 'kill');
      paused.delete(id);
    },
    async pause(id) {
      await node(id, 'pause');
      paused.add(id);
    },
    resume,
    async start(id) {
      await node(id, 'start', NODE_START_TIMEOUT_MS);
    },
    async pidOf(id) {
      try {
        return Number(lastLine(await node(id, 'pid')));
      } catch (error) {
        if (error instanceof ScriptFailure && error.exitCode === NOT_RUNNING) return undefined;
        throw error;
      }
    },
    stopAll,
  };
}

export interface PartitionState {
  /** Broker id of the leader, -1 while there is none. */
  readonly leader: number;
  readonly replicas: readonly number[];
  /** In-sync replicas, as the controller last committed them. */
  readonly isr: readonly number[];
}

/**
 * The partition as the metadata of the first node of `brokers` that answers says now (asked
 * fresh, never from a cache). Rejects when no node answers or the topic is unknown.
 */
export async function partitionOf(
  brokers: string,
  topic: string,
  partition: number,
): Promise<PartitionState> {
  const admin = new Admin({
    clientId: 'vfio-telemetry-test-cluster',
    bootstrapBrokers: brokers.split(','),
    connectTimeout: 1000,
    requestTimeout: 3000,
    retries: 2,
    retryDelay: 100,
  });
  try {
    const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
    const state = metadata.topics.get(topic)?.partitions[partition];
    if (state === undefined) throw new Error(`no partition ${topic}/${partition} in the metadata`);
    return { leader: state.leader, replicas: state.replicas, isr: state.isr };
  } finally {
    await admin.close().catch(() => undefined);
  }
}

/** The partition's leader broker id now (-1 while it has none); see `partitionOf`. */
export async function leaderOf(brokers: string, topic: string, partition: number): Promise<number> {
  return (await partitionOf(brokers, topic, partition)).leader;
}
