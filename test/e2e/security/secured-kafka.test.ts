/**
 * Against a real secured broker (`infra/kafka/start.sh --secure`): the whole pipeline with each
 * stage on its own principal and only its ACLs, each kind of refusal with its clear reason, and
 * nothing lost by a stage refused until its credentials or ACLs are fixed.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { parseCollectorConfig } from '../../../services/collector/config.ts';
import { parseExporterConfig } from '../../../services/exporter/config.ts';
import { startExporter } from '../../../services/exporter/main.ts';
import { parseProcessorConfig } from '../../../services/processor/config.ts';
import { startProcessor } from '../../../services/processor/main.ts';
import { startCollector } from '../../../services/collector/main.ts';
import { isTelemetryError } from '../../../services/shared/core/errors.ts';
import { stageAcls, type AclNames } from '../../../services/shared/kafka/core/acls.ts';
import { parseKafkaSecurityEnv } from '../../../services/shared/kafka/core/options.ts';
import { createKafkaPort } from '../../../services/shared/kafka/io/client.ts';
import { createRefusalDiagnosis } from '../../../services/shared/kafka/io/security.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { startSimulator } from '../../../services/simulator/io/simulator.ts';
import { startPipeline } from '../../../services/cli/demo/pipeline.ts';
import { startSecureKafka, type SecureKafka } from '../../helpers/secure-kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { quietLogger, tempDir } from '../collector/collector-harness.ts';
import { assertExporterMatchesReplay, type PipelineTopics } from '../pipeline/pipeline-harness.ts';
import { BROKER_TIME_CONFIGS } from '../../../services/shared/core/topics.ts';
import { metricValue } from '../../helpers/metrics-text.ts';

let kafka: SecureKafka;
/** Replicas of each test topic: the cluster's node count. */
let replicas = 1;

/** The four topics under a fresh prefix, created by the super user. */
async function secureTopics(t: TestContext): Promise<PipelineTopics> {
  const prefix = `s${randomUUID().slice(0, 8)}-`;
  const topics = {
    events: `${prefix}events`,
    transitions: `${prefix}transitions`,
    state: `${prefix}state`,
    deadLetter: `${prefix}dlq`,
  };
  const admin = await kafka.port();
  t.after(() => admin.close());
  await admin.createTopics(
    Object.entries(topics).map(([key, name]) => ({
      name,
      numPartitions: key === 'deadLetter' ? 1 : 3,
      replicationFactor: replicas,
      configs: {
        ...(replicas > 1 ? { 'min.insync.replicas': '2' } : {}),
        ...(key === 'state' ? { 'cleanup.policy': 'compact' } : {}),
        ...(key === 'events' ? BROKER_TIME_CONFIGS : {}),
      },
    })),
  );
  return topics;
}

function aclNames(topics: PipelineTopics, suffix: string): AclNames {
  return {
    eventsTopic: topics.events,
    transitionsTopic: topics.transitions,
    stateTopic: topics.state,
    deadLetterTopic: topics.deadLetter,
    processorGroup: `vfio-processor${suffix}`,
    exporterGroup: `vfio-exporter${suffix}`,
  };
}

/**
 * An unsigned JWT (alg "none", RFC 7519 §6) for Kafka's unsecured OAUTHBEARER validator (the
 * test broker's): principal `sub`, expiring `ttlSeconds` from now.
 */
function unsignedJwt(sub: string, ttlSeconds: number): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return `${part({ alg: 'none' })}.${part({ sub, iat: now, exp: now + ttlSeconds })}.`;
}

/** A TCP port nobody listens on now (a stage refused at start has no handle to ask yet). */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** A logger at info that keeps its lines. */
function keptLogger(): { logger: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  return { logger: createLogger({ level: 'info', write: (line) => lines.push(line) }), lines };
}

/** The error `fn` rejects with. */
async function failure(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  assert.fail('expected a refusal');
}

function refusalOf(error: unknown): { reason?: string; resource?: string; detail?: string } {
  assert.ok(isTelemetryError(error), `a TelemetryError, not ${String(error)}`);
  return error.details['refused'] ?? {};
}

/** The SASL_SSL environment of a stage logging in with OAUTHBEARER from `tokenFile`. */
async function oauthEnv(tokenFile: string): Promise<Record<string, string>> {
  // The SASL_SSL listener's bootstrap and CA, as SCRAM stages get them.
  const { KAFKA_BROKERS, KAFKA_TLS_CA_FILE } = await kafka.env('collector');
  return {
    KAFKA_BROKERS: KAFKA_BROKERS!,
    KAFKA_TLS_CA_FILE: KAFKA_TLS_CA_FILE!,
    KAFKA_SECURITY_PROTOCOL: 'SASL_SSL',
    KAFKA_SASL_MECHANISM: 'OAUTHBEARER',
    KAFKA_SASL_OAUTHBEARER_TOKEN_FILE: tokenFile,
  };
}

/** A collector refused by the broker, and the three VMs it spools the events of meanwhile. */
interface RefusedCollector {
  readonly url: string;
  /** Events the simulator sent, all of them received by now. */
  readonly sent: number;
  metrics(): Promise<string>;
}

/**
 * Three simulated VMs and a collector logging in with `env`, run until every event the VMs sent
 * is in the collector's spool and the broker refused the collector for `reason`: nothing is
 * published meanwhile.
 */
async function refusedCollector(
  t: TestContext,
  options: {
    readonly name: string;
    readonly env: Record<string, string>;
    readonly topic: string;
    readonly reason: 'authentication' | 'authorization';
    readonly seed: number;
    readonly logger: ReturnType<typeof createLogger>;
  },
): Promise<RefusedCollector> {
  const sockets = tempDir(t, `${options.name}-vms-`);
  const simulator = await startSimulator({
    dir: sockets,
    fleet: { vms: 3, devicesPerVm: 1, migrationsPerVmPerMinute: 60, seed: options.seed },
    speed: 'max',
    maxMigrations: 15,
    waitForClients: true,
    logger: quietLogger(),
  });
  t.after(() => simulator.close());
  const collector = await startCollector(
    parseCollectorConfig(`${options.name}-host`, {
      env: options.env,
      flags: {
        topic: options.topic,
        'socket-dir': sockets,
        'spool-dir': tempDir(t, `${options.name}-spool-`),
        'http-port': '0',
        'rescan-interval-ms': '100',
        'kafka-retry-max-ms': '500',
      },
    }),
    options.logger,
  );
  t.after(() => collector.stop(1000));
  await simulator.done;
  const sent = simulator.stats().eventsSent;
  const url = collector.http.url;
  const metrics = async () => (await fetch(`${url}/metrics`)).text();
  await waitFor(
    async () => {
      const text = await metrics();
      return (
        metricValue(text, 'vfio_collector_events_received_total') >= sent &&
        metricValue(text, 'vfio_collector_kafka_refused_total', { reason: options.reason }) >= 1
      );
    },
    { timeoutMs: 60_000, description: `the collector spooling, refused (${options.reason})` },
  );
  assert.equal(metricValue(await metrics(), 'vfio_collector_events_published_total'), 0);
  return { url, sent, metrics };
}

/** Once the refusal is fixed: every spooled event published, and in the topic exactly once. */
async function assertDeliveredOnce(
  t: TestContext,
  collector: RefusedCollector,
  topic: string,
): Promise<void> {
  await waitFor(
    async () =>
      metricValue(await collector.metrics(), 'vfio_collector_events_published_total') >=
      collector.sent,
    { timeoutMs: 60_000, description: `${collector.sent} events published after the fix` },
  );
  const admin = await kafka.port();
  t.after(() => admin.close());
  const ends = await admin.endOffsets(
    [0, 1, 2].map((partition) => ({ topic, partition })),
    'read_uncommitted',
  );
  assert.equal(
    ends.reduce((sum, p) => sum + Number(p.offset), 0),
    collector.sent,
    'every event in Kafka once',
  );
}

/**
 * Simulator → collector → processor → exporter, each stage on its own principal with only its
 * ACLs (the processor on its client certificate, the collector on SCRAM, the exporter on SCRAM
 * or, with `exporterLogin: 'oauthbearer'`, on a token whose subject is its principal): the
 * exporter equals replay.
 */
async function wholePipelineOnLeastPrivilege(
  t: TestContext,
  exporterLogin: 'scram' | 'oauthbearer' = 'scram',
): Promise<void> {
  const topics = await secureTopics(t);
  const suffix = `-${randomUUID().slice(0, 8)}`;
  await kafka.grant(stageAcls(aclNames(topics, suffix), ['collector', 'processor', 'exporter']));
  const tokenFile = join(tempDir(t, 'exporter-token-'), 'token');
  writeFileSync(tokenFile, `${unsignedJwt('exporter', 3600)}\n`, { mode: 0o600 });
  const envs = {
    collector: await kafka.env('collector'),
    // The processor on its client certificate (the SSL listener).
    processor: await kafka.env('processor', 'mtls'),
    exporter: exporterLogin === 'scram' ? await kafka.env('exporter') : await oauthEnv(tokenFile),
  };
  const transcripts = tempDir(t, 'secured-transcripts-');
  const pipeline = await startPipeline({
    brokers: kafka.brokers,
    topics,
    fleet: {
      vms: 6,
      devicesPerVm: 2,
      migrationsPerVmPerMinute: 30,
      failureRate: 0.1,
      prepareFailureRate: 0.2,
      seed: 17,
    },
    speed: 'max',
    maxMigrations: 60,
    transcriptsDir: transcripts,
    exporterPort: 0,
    groupSuffix: suffix,
    kafkaEnv: (stage) => envs[stage],
    logger: quietLogger(),
  });
  t.after(() => pipeline.stop());
  await pipeline.simulator.done;
  await assertExporterMatchesReplay(`${pipeline.exporter.http.url}/metrics`, transcripts);
}

describe('secured Kafka (start.sh --secure)', { timeout: 900_000 }, () => {
  before(async () => {
    kafka = await startSecureKafka();
  });
  after(() => kafka?.stop());

  test('the whole pipeline, each stage on its own principal with only its ACLs: the exporter equals replay', (t) =>
    wholePipelineOnLeastPrivilege(t));

  test('a processor without its transactional-id ACL and an exporter without its group ACL wait, refused and saying why; granted, they go on and lose nothing', async (t) => {
    const topics = await secureTopics(t);
    const suffix = `-${randomUUID().slice(0, 8)}`;
    const names = aclNames(topics, suffix);
    const acls = stageAcls(names, ['collector', 'processor', 'exporter']);
    const withheld = acls.filter(
      (a) =>
        a.resourceType === 'TRANSACTIONAL_ID' ||
        (a.stage === 'exporter' && a.resourceType === 'GROUP'),
    );
    assert.equal(withheld.length, 2);
    await kafka.grant(acls.filter((a) => !withheld.includes(a)));

    // Events first: the collector on its principal publishes a small fleet.
    const sockets = tempDir(t, 'refused-vms-');
    const transcripts = tempDir(t, 'refused-transcripts-');
    const simulator = await startSimulator({
      dir: sockets,
      fleet: {
        vms: 4,
        devicesPerVm: 1,
        migrationsPerVmPerMinute: 30,
        prepareFailureRate: 0.3,
        seed: 9,
      },
      speed: 'max',
      maxMigrations: 30,
      transcriptsDir: transcripts,
      waitForClients: true,
      logger: quietLogger(),
    });
    t.after(() => simulator.close());
    const collector = await startCollector(
      parseCollectorConfig('refused-host', {
        env: await kafka.env('collector'),
        flags: {
          topic: topics.events,
          'socket-dir': sockets,
          'spool-dir': tempDir(t, 'refused-spool-'),
          'http-port': '0',
          'rescan-interval-ms': '100',
          'linger-ms': '2',
        },
      }),
      quietLogger(),
    );
    t.after(() => collector.stop(1000));

    const processorLog = keptLogger();
    const processorPort = await freePort();
    const instanceId = 'refused-1';
    const transactionalId = `${names.processorGroup}-${instanceId}`;
    const processorStarted = startProcessor(
      parseProcessorConfig({
        env: await kafka.env('processor'),
        flags: {
          'events-topic': topics.events,
          'transitions-topic': topics.transitions,
          'state-topic': topics.state,
          'dead-letter-topic': topics.deadLetter,
          'group-id': names.processorGroup ?? '',
          'instance-id': instanceId,
          'state-dir': tempDir(t, 'refused-state-'),
          'http-host': '127.0.0.1',
          'http-port': String(processorPort),
        },
      }),
      processorLog.logger,
    );
    t.after(async () => (await processorStarted).stop());
    const exporterLog = keptLogger();
    const exporterPort = await freePort();
    const exporterStarted = startExporter(
      parseExporterConfig({
        env: await kafka.env('exporter'),
        flags: {
          topic: topics.transitions,
          'group-id': names.exporterGroup ?? '',
          'http-host': '127.0.0.1',
          'http-port': String(exporterPort),
        },
      }),
      exporterLog.logger,
    );
    t.after(async () => (await exporterStarted).stop());

    const processorUrl = `http://127.0.0.1:${processorPort}`;
    const exporterUrl = `http://127.0.0.1:${exporterPort}`;
    const text = async (url: string): Promise<string> => {
      try {
        return await (await fetch(url)).text();
      } catch {
        return '';
      }
    };
    // Each refused, naming what it may not use: /readyz, the counter and one log line.
    const cases = [
      {
        url: processorUrl,
        lines: processorLog.lines,
        counter: 'vfio_processor_kafka_refused_total',
        readyz: `kafka: refused (authorization: no ACL allows WRITE on transactional id ${transactionalId})`,
        resource: `transactional id ${transactionalId}`,
      },
      {
        url: exporterUrl,
        lines: exporterLog.lines,
        counter: 'vfio_exporter_kafka_refused_total',
        readyz: `kafka: refused (authorization: no ACL allows READ on group ${names.exporterGroup})`,
        resource: `group ${names.exporterGroup}`,
      },
    ];
    for (const c of cases) {
      await waitFor(async () => (await text(`${c.url}/readyz`)).includes(c.readyz), {
        timeoutMs: 30_000,
        description: `/readyz of ${c.url} saying: ${c.readyz}`,
      });
      const readyz = await fetch(`${c.url}/readyz`);
      assert.equal(readyz.status, 503);
      const metrics = await text(`${c.url}/metrics`);
      assert.ok(
        metricValue(metrics, c.counter, { reason: 'authorization' }) >= 1,
        `${c.counter}{reason="authorization"} counted`,
      );
      const refusals = c.lines
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((entry) => entry['reason'] === 'authorization');
      assert.ok(refusals.length >= 1, 'a log line says it was refused');
      assert.equal(refusals[0]?.['level'], 'error');
      assert.equal(refusals[0]?.['resource'], c.resource);
    }

    await kafka.grant(withheld);
    const [processor, exporter] = await Promise.all([processorStarted, exporterStarted]);
    await simulator.done;
    await assertExporterMatchesReplay(`${exporter.http.url}/metrics`, transcripts);
    assert.equal(processor.http.url, processorUrl);
    for (const url of [processorUrl, exporterUrl]) {
      await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, {
        timeoutMs: 30_000,
        description: `${url} ready once granted`,
      });
    }
  });

  test('refusals name their reason: no TLS, untrusted CA, client certificate from another CA, a topic not granted', async (t) => {
    const topics = await secureTopics(t);
    await kafka.grant(stageAcls(aclNames(topics, ''), ['collector']));
    const logger = createLogger({ write: () => undefined });
    const portWith = (brokers: string[], env: Record<string, string>) => {
      const port = createKafkaPort({
        brokers,
        clientId: 'refused',
        logger,
        retries: 0,
        security: parseKafkaSecurityEnv(env),
      });
      t.after(() => port.close());
      return port;
    };

    // No credentials at all: plaintext to the SASL_SSL listener.
    const plain = portWith(kafka.brokers, {});
    assert.deepEqual(
      refusalOf(await failure(() => plain.describeTopics([topics.events]))).reason,
      'tls',
    );

    // A CA file that did not sign the broker's certificate.
    const other = tempDir(t, 'other-ca-');
    const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
    openssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      join(other, 'ca.key'),
      '-out',
      join(other, 'ca.pem'),
      '-days',
      '30',
      '-subj',
      '/CN=another CA',
    );
    const collectorEnv = await kafka.env('collector');
    const untrusted = portWith(kafka.brokers, {
      ...collectorEnv,
      KAFKA_TLS_CA_FILE: join(other, 'ca.pem'),
    });
    const tls = refusalOf(await failure(() => untrusted.describeTopics([topics.events])));
    assert.equal(tls.reason, 'tls');
    assert.match(tls.detail ?? '', /not signed by a trusted CA/);

    // A client certificate with the right name (CN=collector) from another CA: the broker
    // refuses it after the TLS 1.3 handshake; the diagnosis reads the broker's alert.
    openssl(
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      join(other, 'collector.key'),
      '-subj',
      '/CN=collector',
      '-out',
      join(other, 'collector.csr'),
    );
    openssl(
      'x509',
      '-req',
      '-in',
      join(other, 'collector.csr'),
      '-CA',
      join(other, 'ca.pem'),
      '-CAkey',
      join(other, 'ca.key'),
      '-CAcreateserial',
      '-days',
      '30',
      '-out',
      join(other, 'collector.pem'),
    );
    const strangerEnv = {
      ...(await kafka.env('collector', 'mtls')),
      KAFKA_TLS_CERT_FILE: join(other, 'collector.pem'),
      KAFKA_TLS_KEY_FILE: join(other, 'collector.key'),
    };
    const stranger = portWith(kafka.sslBrokers, strangerEnv);
    const closed = await failure(() => stranger.describeTopics([topics.events]));
    const diagnosed = await createRefusalDiagnosis(
      kafka.sslBrokers,
      parseKafkaSecurityEnv(strangerEnv),
    )(closed);
    assert.equal(diagnosed?.reason, 'tls');
    assert.match(diagnosed?.detail ?? '', /refused our client certificate/);

    // The collector's principal (password or certificate) writing the transitions topic.
    for (const [brokers, env] of [
      [kafka.brokers, collectorEnv],
      [kafka.sslBrokers, await kafka.env('collector', 'mtls')],
    ] as const) {
      const collector = portWith([...brokers], env);
      const producer = await collector.producer();
      t.after(() => producer.close());
      const refused = refusalOf(
        await failure(() =>
          producer.send([
            { topic: topics.transitions, partition: 0, key: null, value: Buffer.from('x') },
          ]),
        ),
      );
      assert.equal(refused.reason, 'authorization');
      assert.equal(refused.resource, `topic ${topics.transitions}`);
      // Its own topic is fine.
      const acks = await producer.send([
        { topic: topics.events, partition: 0, key: null, value: Buffer.from('x') },
      ]);
      assert.equal(acks.acks.length, 1);
    }
  });

  test('OAUTHBEARER from a token file: an expired token is refused as authentication, a principal without ACLs as authorization; the file rewritten with a good token, every event is delivered', async (t) => {
    const topics = await secureTopics(t);
    await kafka.grant(stageAcls(aclNames(topics, ''), ['collector']));
    const tokens = tempDir(t, 'collector-token-');

    // An expired token: the broker's validator refuses the login, an authentication refusal.
    const expiredFile = join(tokens, 'expired');
    writeFileSync(expiredFile, unsignedJwt('collector', -60), { mode: 0o600 });
    const expired = createKafkaPort({
      brokers: kafka.brokers,
      clientId: 'expired',
      logger: createLogger({ write: () => undefined }),
      retries: 0,
      security: parseKafkaSecurityEnv(await oauthEnv(expiredFile)),
    });
    t.after(() => expired.close());
    assert.equal(
      refusalOf(await failure(() => expired.describeTopics([topics.events]))).reason,
      'authentication',
    );

    // A principal the broker has no ACLs for: authenticated, then refused on the topic.
    const tokenFile = join(tokens, 'token');
    writeFileSync(tokenFile, `${unsignedJwt('nobody', 600)}\n`, { mode: 0o600 });
    const collector = await refusedCollector(t, {
      name: 'oauth',
      env: await oauthEnv(tokenFile),
      topic: topics.events,
      reason: 'authorization',
      seed: 11,
      logger: quietLogger(),
    });
    const readyz = await (await fetch(`${collector.url}/readyz`)).text();
    assert.match(readyz, /kafka: refused \(authorization/);
    assert.match(readyz, new RegExp(topics.events));

    // The collector's own token, expiring soon: the broker ends the session within 10 s
    // (connections.max.reauth.ms), the client logs in again with the file's new token.
    writeFileSync(tokenFile, `${unsignedJwt('collector', 45)}\n`);
    await assertDeliveredOnce(t, collector, topics.events);
  });
  test('a wrong password: the collector spools, says why, and delivers every event once the password file is fixed', async (t) => {
    const topics = await secureTopics(t);
    await kafka.grant(stageAcls(aclNames(topics, ''), ['collector']));
    const secrets = tempDir(t, 'collector-secret-');
    const passwordFile = join(secrets, 'password');
    writeFileSync(passwordFile, 'not-the-password\n', { mode: 0o600 });
    // Every log line, debug included: neither password may ever appear in one.
    const logLines: string[] = [];
    const collector = await refusedCollector(t, {
      name: 'secured',
      env: { ...(await kafka.env('collector')), KAFKA_SASL_PASSWORD_FILE: passwordFile },
      topic: topics.events,
      reason: 'authentication',
      seed: 5,
      logger: createLogger({ level: 'debug', write: (line) => logLines.push(line) }),
    });
    // Ready while it can spool (until the stall timeout), with the reason given.
    const readyz = await (await fetch(`${collector.url}/readyz`)).text();
    assert.match(readyz, /kafka: refused \(authentication: the broker refused the SASL login/);

    const rightPassword = readFileSync(kafka.tlsFile('collector.password'), 'utf8');
    writeFileSync(passwordFile, rightPassword);
    await assertDeliveredOnce(t, collector, topics.events);
    // The secrets stay in their files: not in a log line, /metrics or /readyz.
    assert.ok(logLines.length > 0, 'the collector logged');
    const exposed = [logLines.join('\n'), await collector.metrics(), readyz];
    for (const secret of ['not-the-password', rightPassword.trim()]) {
      for (const text of exposed) assert.ok(!text.includes(secret), 'a password was exposed');
    }
  });
});

describe('secured three-node Kafka (start.sh --secure --nodes 3)', { timeout: 900_000 }, () => {
  before(async () => {
    kafka = await startSecureKafka({ nodes: 3 });
    replicas = 3;
  });
  after(async () => {
    replicas = 1;
    await kafka?.stop();
  });

  test('the whole pipeline on least privilege, topics replicated three times (min.insync.replicas 2), the exporter logged in with OAUTHBEARER: the exporter equals replay', (t) =>
    wholePipelineOnLeastPrivilege(t, 'oauthbearer'));
});
