import { option, parseConfig } from '../../core/config-spec.ts';

/** `KAFKA_BROKERS` / `--brokers`: the one Kafka option every stage has, checked alike. */
export function brokersOption() {
  return option({
    type: 'list',
    env: 'KAFKA_BROKERS',
    flag: 'brokers',
    doc: 'Kafka bootstrap brokers, HOST:PORT',
    check: (list) =>
      list.length === 0
        ? 'needs at least one HOST:PORT'
        : (list
            .map((b) => (/^[^\s:]+:\d{1,5}$/.test(b) ? null : `"${b}" is not HOST:PORT`))
            .find((p) => p !== null) ?? null),
  });
}

/** A problem sentence for a string that Kafka would not take as a topic name, else null. */
export function topicNameProblem(name: string): string | null {
  return /^[A-Za-z0-9._-]{1,249}$/.test(name) ? null : `"${name}" is not a Kafka topic name`;
}

/** Kafka's `security.protocol` values. */
export const SECURITY_PROTOCOLS = ['PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL'] as const;
export type SecurityProtocol = (typeof SECURITY_PROTOCOLS)[number];
/** Kafka's `sasl.mechanism` values that @platformatic/kafka speaks (GSSAPI needs a Kerberos stack). */
export const SASL_MECHANISMS = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512', 'OAUTHBEARER'] as const;
export type SaslMechanism = (typeof SASL_MECHANISMS)[number];

/**
 * The security settings of every command that talks to Kafka, named as Kafka's client
 * properties name them (`security.protocol`, `sasl.mechanism`, `ssl.truststore`...). Secrets are
 * never values here: only the paths of the files that hold them, so that a config, `--help`,
 * a log line or an error can never show one.
 */
export function kafkaSecurityOptions() {
  return {
    kafkaSecurityProtocol: option({
      type: 'string',
      default: 'PLAINTEXT',
      oneOf: SECURITY_PROTOCOLS,
      env: 'KAFKA_SECURITY_PROTOCOL',
      flag: 'kafka-security-protocol',
      metavar: 'PROTOCOL',
      doc: 'PLAINTEXT, SSL (TLS, mTLS with a client certificate), SASL_PLAINTEXT or SASL_SSL',
    }),
    kafkaSaslMechanism: option({
      type: 'string',
      optional: true,
      oneOf: SASL_MECHANISMS,
      env: 'KAFKA_SASL_MECHANISM',
      flag: 'kafka-sasl-mechanism',
      metavar: 'MECHANISM',
      doc: 'PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (with a SASL_ protocol)',
    }),
    kafkaSaslUsername: option({
      type: 'string',
      optional: true,
      env: 'KAFKA_SASL_USERNAME',
      flag: 'kafka-sasl-username',
      metavar: 'NAME',
      doc: 'SASL user (PLAIN, SCRAM)',
    }),
    kafkaSaslPasswordFile: option({
      type: 'string',
      optional: true,
      env: 'KAFKA_SASL_PASSWORD_FILE',
      flag: 'kafka-sasl-password-file',
      metavar: 'FILE',
      doc: "file holding the SASL user's password (PLAIN, SCRAM); read at each login",
    }),
    kafkaSaslOauthbearerTokenFile: option({
      type: 'string',
      optional: true,
      env: 'KAFKA_SASL_OAUTHBEARER_TOKEN_FILE',
      flag: 'kafka-sasl-oauthbearer-token-file',
      metavar: 'FILE',
      doc: 'file holding the OAUTHBEARER token; read again when it changes or the token expires',
    }),
    kafkaTlsCaFile: option({
      type: 'string',
      optional: true,
      env: 'KAFKA_TLS_CA_FILE',
      flag: 'kafka-tls-ca-file',
      metavar: 'FILE',
      doc: "PEM CA certificates that sign the brokers' certificates (without: the system's store)",
    }),
    kafkaTlsCertFile: option({
      type: 'string',
      optional: true,
      env: 'KAFKA_TLS_CERT_FILE',
      flag: 'kafka-tls-cert-file',
      metavar: 'FILE',
      doc: 'PEM client certificate (chain) for mTLS',
    }),
    kafkaTlsKeyFile: option({
      type: 'string',
      optional: true,
      env: 'KAFKA_TLS_KEY_FILE',
      flag: 'kafka-tls-key-file',
      metavar: 'FILE',
      doc: "PEM private key of the client certificate (unencrypted; protect the file's mode)",
    }),
  } as const;
}

/** `--brokers` and the security settings: what a command needs to reach Kafka. */
export function kafkaConnectionOptions() {
  return { brokers: brokersOption(), ...kafkaSecurityOptions() } as const;
}

/** The parsed settings as `kafkaSecurityOptions` names them. */
export interface KafkaSecurityConfig {
  readonly kafkaSecurityProtocol: string;
  readonly kafkaSaslMechanism?: string | undefined;
  readonly kafkaSaslUsername?: string | undefined;
  readonly kafkaSaslPasswordFile?: string | undefined;
  readonly kafkaSaslOauthbearerTokenFile?: string | undefined;
  readonly kafkaTlsCaFile?: string | undefined;
  readonly kafkaTlsCertFile?: string | undefined;
  readonly kafkaTlsKeyFile?: string | undefined;
}

/** How a client authenticates and encrypts: what kafka/io/security.ts turns into client options. */
export interface KafkaSecurity {
  readonly protocol: SecurityProtocol;
  readonly tls?: {
    readonly caFile?: string;
    readonly certFile?: string;
    readonly keyFile?: string;
  };
  readonly sasl?:
    | {
        readonly mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';
        readonly username: string;
        readonly passwordFile: string;
      }
    | { readonly mechanism: 'OAUTHBEARER'; readonly tokenFile: string };
}

/** Every contradiction or gap in the settings (empty when they can be used). */
export function kafkaSecurityProblems(c: KafkaSecurityConfig): string[] {
  const problems: string[] = [];
  const protocol = c.kafkaSecurityProtocol;
  const sasl = protocol.startsWith('SASL_');
  const tls = protocol === 'SSL' || protocol === 'SASL_SSL';
  const mechanism = c.kafkaSaslMechanism;
  if (!sasl) {
    const saslKeys = [
      ['kafkaSaslMechanism', mechanism],
      ['kafkaSaslUsername', c.kafkaSaslUsername],
      ['kafkaSaslPasswordFile', c.kafkaSaslPasswordFile],
      ['kafkaSaslOauthbearerTokenFile', c.kafkaSaslOauthbearerTokenFile],
    ].filter(([, value]) => value !== undefined);
    for (const [key] of saslKeys) {
      problems.push(
        `${key} is set but kafkaSecurityProtocol is ${protocol}: SASL needs SASL_SSL or SASL_PLAINTEXT`,
      );
    }
  } else if (mechanism === undefined) {
    problems.push(`kafkaSecurityProtocol ${protocol} needs kafkaSaslMechanism`);
  } else if (mechanism === 'OAUTHBEARER') {
    if (c.kafkaSaslOauthbearerTokenFile === undefined)
      problems.push('kafkaSaslMechanism OAUTHBEARER needs kafkaSaslOauthbearerTokenFile');
    if (c.kafkaSaslUsername !== undefined || c.kafkaSaslPasswordFile !== undefined)
      problems.push(
        'kafkaSaslUsername and kafkaSaslPasswordFile are for PLAIN and SCRAM, not OAUTHBEARER',
      );
  } else {
    if (c.kafkaSaslUsername === undefined || c.kafkaSaslUsername.trim() === '')
      problems.push(`kafkaSaslMechanism ${mechanism} needs kafkaSaslUsername`);
    if (c.kafkaSaslPasswordFile === undefined)
      problems.push(`kafkaSaslMechanism ${mechanism} needs kafkaSaslPasswordFile`);
    if (c.kafkaSaslOauthbearerTokenFile !== undefined)
      problems.push(`kafkaSaslOauthbearerTokenFile is for OAUTHBEARER, not ${mechanism}`);
  }
  if (!tls) {
    for (const key of ['kafkaTlsCaFile', 'kafkaTlsCertFile', 'kafkaTlsKeyFile'] as const) {
      if (c[key] !== undefined)
        problems.push(`${key} is set but kafkaSecurityProtocol ${protocol} does not use TLS`);
    }
  } else {
    if (c.kafkaTlsKeyFile !== undefined && c.kafkaTlsCertFile === undefined)
      problems.push('kafkaTlsKeyFile needs kafkaTlsCertFile (the client certificate)');
    if (c.kafkaTlsCertFile !== undefined && c.kafkaTlsKeyFile === undefined)
      problems.push('kafkaTlsCertFile needs kafkaTlsKeyFile (its private key)');
  }
  return problems;
}

/** The settings of a config that `kafkaSecurityProblems` found none in. */
export function kafkaSecurityOf(c: KafkaSecurityConfig): KafkaSecurity {
  const protocol = c.kafkaSecurityProtocol as SecurityProtocol;
  const tls =
    protocol === 'SSL' || protocol === 'SASL_SSL'
      ? {
          ...(c.kafkaTlsCaFile === undefined ? {} : { caFile: c.kafkaTlsCaFile }),
          ...(c.kafkaTlsCertFile === undefined ? {} : { certFile: c.kafkaTlsCertFile }),
          ...(c.kafkaTlsKeyFile === undefined ? {} : { keyFile: c.kafkaTlsKeyFile }),
        }
      : undefined;
  const mechanism = c.kafkaSaslMechanism as SaslMechanism | undefined;
  let sasl: KafkaSecurity['sasl'];
  if (protocol.startsWith('SASL_') && mechanism !== undefined) {
    sasl =
      mechanism === 'OAUTHBEARER'
        ? { mechanism, tokenFile: c.kafkaSaslOauthbearerTokenFile ?? '' }
        : {
            mechanism,
            username: c.kafkaSaslUsername ?? '',
            passwordFile: c.kafkaSaslPasswordFile ?? '',
          };
  }
  return {
    protocol,
    ...(tls === undefined ? {} : { tls }),
    ...(sasl === undefined ? {} : { sasl }),
  };
}

/** The files the settings name, each with the option that names it (for the start-up check). */
export function kafkaSecurityFiles(security: KafkaSecurity): { key: string; path: string }[] {
  const files: { key: string; path: string }[] = [];
  if (security.tls?.caFile !== undefined)
    files.push({ key: 'kafkaTlsCaFile', path: security.tls.caFile });
  if (security.tls?.certFile !== undefined)
    files.push({ key: 'kafkaTlsCertFile', path: security.tls.certFile });
  if (security.tls?.keyFile !== undefined)
    files.push({ key: 'kafkaTlsKeyFile', path: security.tls.keyFile });
  if (security.sasl !== undefined) {
    if (security.sasl.mechanism === 'OAUTHBEARER')
      files.push({ key: 'kafkaSaslOauthbearerTokenFile', path: security.sasl.tokenFile });
    else files.push({ key: 'kafkaSaslPasswordFile', path: security.sasl.passwordFile });
  }
  return files;
}

/** The security settings' variables of `env` (for stages started in-process with their own env). */
export function kafkaSecurityEnv(
  env: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const spec of Object.values(kafkaSecurityOptions())) {
    const value = spec.env === undefined ? undefined : env[spec.env];
    if (spec.env !== undefined && value !== undefined) picked[spec.env] = value;
  }
  return picked;
}

/**
 * The security settings from `KAFKA_*` variables alone, for the repo's scripts (create-topics,
 * await-broker): throws CONFIG_INVALID listing every problem.
 */
export function parseKafkaSecurityEnv(
  env: Readonly<Record<string, string | undefined>>,
): KafkaSecurity {
  return kafkaSecurityOf(parseConfig(kafkaSecurityOptions(), { env }, kafkaSecurityProblems));
}
