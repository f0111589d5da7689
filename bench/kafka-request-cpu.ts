/**
 * CPU per produce request at a trickle (issue 19): what one small idempotent produce request
 * costs the process, for the raw @platformatic/kafka producer and for our Kafka port
 * (shared/kafka/io/producer.ts, what the collector's sender calls), in one process, phases
 * alternating so that both see the same machine. Each phase sends `PER_REQUEST` records (five
 * VMs' events, on their partitions) `RATE` times a second for `SECONDS`, one request at a time,
 * as the collector's sender does at 100 events/s with its 50 ms linger. An idle phase (the same
 * timer, nothing sent) is the floor subtracted from both. CPU is `process.cpuUsage()` (all
 * threads). Run by hand: `KAFKA_BROKERS=<broker> node --import tsx bench/kafka-request-cpu.ts`
 * (BENCH_REQUEST_ROUNDS, BENCH_REQUEST_SECONDS, BENCH_REQUEST_RATE, BENCH_REQUEST_RECORDS).
 */
import { Producer as RawProducer, type MessageToProduce } from '@platformatic/kafka';
import { createKafkaPort } from '../services/shared/kafka/io/client.ts';
import type { OutgoingRecord } from '../services/shared/kafka/io/port.ts';
import { partitionFor } from '../services/collector/core/partitioner.ts';
import { benchBrokers, openBenchAdmin, quietLogger, sleep } from './kafka-bench-support.ts';

const ROUNDS = Number(process.env['BENCH_REQUEST_ROUNDS'] ?? 3);
const SECONDS = Number(process.env['BENCH_REQUEST_SECONDS'] ?? 10);
const RATE = Number(process.env['BENCH_REQUEST_RATE'] ?? 20);
const PER_REQUEST = Number(process.env['BENCH_REQUEST_RECORDS'] ?? 5);
const PARTITIONS = 6;

type Send = (records: readonly OutgoingRecord[]) => Promise<unknown>;

/** Sends one request every 1/RATE s (skipping a tick while one is in flight); CPU µs per tick. */
async function phase(send: Send | undefined, topic: string, vm0: number): Promise<number> {
  let vm = vm0;
  let inFlight = false;
  let ticks = 0;
  const value = Buffer.alloc(120, 7);
  const before = process.cpuUsage();
  const timer = setInterval(() => {
    ticks++;
    if (send === undefined || inFlight) return;
    const records: OutgoingRecord[] = [];
    for (let i = 0; i < PER_REQUEST; i++, vm++) {
      const key = `bench-host/vm-${vm % 1000}`;
      records.push({
        topic,
        partition: partitionFor(key, PARTITIONS),
        key: Buffer.from(key),
        value,
      });
    }
    inFlight = true;
    send(records).then(
      () => (inFlight = false),
      (error: unknown) => {
        process.stderr.write(`send failed: ${String(error)}\n`);
        process.exit(1);
      },
    );
  }, 1000 / RATE);
  await sleep(SECONDS * 1000);
  clearInterval(timer);
  while (inFlight) await sleep(5);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / ticks;
}

const brokers = benchBrokers();
const admin = openBenchAdmin(brokers);
const topics = await admin.createTopics([{ prefix: 'request-cpu', partitions: PARTITIONS }]);
const topic = topics.names[0] as string;
const raw = new RawProducer({
  clientId: 'bench-raw',
  bootstrapBrokers: brokers,
  idempotent: true,
  acks: -1,
  autocreateTopics: false,
});
await raw.initIdempotentProducer({});
await raw.metadata({ topics: [topic] });
const rawSend: Send = (records) =>
  raw.send({
    messages: records.map((r): MessageToProduce<Buffer, Buffer, Buffer, Buffer> => ({
      topic: r.topic,
      partition: r.partition,
      key: r.key as Buffer,
      value: r.value as Buffer,
    })),
  });
const port = createKafkaPort({ brokers, clientId: 'bench-port', logger: quietLogger() });
const producer = await port.producer();
await producer.connect([topic]);
const portSend: Send = (records) => producer.send(records);

try {
  // Warm both paths (the JIT) before the first measured phase.
  await phase(rawSend, topic, 0);
  await phase(portSend, topic, 0);
  const rows: { round: number; idle: number; raw: number; port: number }[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const idle = await phase(undefined, topic, 0);
    const r = await phase(rawSend, topic, round * 100);
    const p = await phase(portSend, topic, round * 100);
    rows.push({ round, idle, raw: r - idle, port: p - idle });
    process.stderr.write(
      `round ${round}: idle tick ${idle.toFixed(0)} µs; per request above idle: raw ${(r - idle).toFixed(0)} µs, port ${(p - idle).toFixed(0)} µs\n`,
    );
  }
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.floor(s.length / 2)] as number;
  };
  const rawMedian = median(rows.map((r) => r.raw));
  const portMedian = median(rows.map((r) => r.port));
  process.stdout.write(
    JSON.stringify({
      perRequest: PER_REQUEST,
      rate: RATE,
      seconds: SECONDS,
      rows,
      rawMicrosPerRequest: rawMedian,
      portMicrosPerRequest: portMedian,
      portOverRaw: portMedian / rawMedian,
    }) + '\n',
  );
} finally {
  await producer.close();
  await raw.close();
  await topics.drop();
  await port.close();
  await admin.close();
}
setImmediate(() => process.exit(0));
