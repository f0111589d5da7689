import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig, renderOptionsHelp } from '../../../../../services/shared/core/config-spec.ts';
import {
  kafkaConnectionOptions,
  kafkaSecurityEnv,
  kafkaSecurityFiles,
  kafkaSecurityOf,
  kafkaSecurityProblems,
  parseKafkaSecurityEnv,
} from '../../../../../services/shared/kafka/core/options.ts';

const parse = (env: Record<string, string>, flags: Record<string, string> = {}) =>
  parseConfig(
    kafkaConnectionOptions(),
    { env: { KAFKA_BROKERS: 'b:9093', ...env }, flags },
    kafkaSecurityProblems,
  );

function problems(env: Record<string, string>): string[] {
  try {
    parse(env);
    return [];
  } catch (error) {
    return (error as { details: { problems: string[] } }).details.problems;
  }
}

test('plaintext by default: no TLS, no SASL', () => {
  assert.deepEqual(kafkaSecurityOf(parse({})), { protocol: 'PLAINTEXT' });
});

test('SASL_SSL with SCRAM: the password is a file path, never a value', () => {
  const security = kafkaSecurityOf(
    parse({
      KAFKA_SECURITY_PROTOCOL: 'SASL_SSL',
      KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
      KAFKA_SASL_USERNAME: 'collector',
      KAFKA_SASL_PASSWORD_FILE: '/run/credentials/kafka-password',
      KAFKA_TLS_CA_FILE: '/etc/kafka/ca.pem',
    }),
  );
  assert.deepEqual(security, {
    protocol: 'SASL_SSL',
    tls: { caFile: '/etc/kafka/ca.pem' },
    sasl: {
      mechanism: 'SCRAM-SHA-512',
      username: 'collector',
      passwordFile: '/run/credentials/kafka-password',
    },
  });
  assert.deepEqual(
    kafkaSecurityFiles(security).map((f) => f.key),
    ['kafkaTlsCaFile', 'kafkaSaslPasswordFile'],
  );
});

test('flags win over the environment, as for every option', () => {
  const security = kafkaSecurityOf(
    parse(
      { KAFKA_SECURITY_PROTOCOL: 'SASL_SSL' },
      {
        'kafka-security-protocol': 'SSL',
        'kafka-tls-cert-file': '/c.pem',
        'kafka-tls-key-file': '/c.key',
      },
    ),
  );
  assert.deepEqual(security, { protocol: 'SSL', tls: { certFile: '/c.pem', keyFile: '/c.key' } });
});

test('OAUTHBEARER takes a token file', () => {
  const security = kafkaSecurityOf(
    parse({
      KAFKA_SECURITY_PROTOCOL: 'SASL_SSL',
      KAFKA_SASL_MECHANISM: 'OAUTHBEARER',
      KAFKA_SASL_OAUTHBEARER_TOKEN_FILE: '/t',
    }),
  );
  assert.deepEqual(security.sasl, { mechanism: 'OAUTHBEARER', tokenFile: '/t' });
});

test('every contradiction is listed at once', () => {
  assert.deepEqual(
    problems({
      KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
      KAFKA_TLS_KEY_FILE: '/k',
    }),
    [
      'kafkaSaslMechanism is set but kafkaSecurityProtocol is PLAINTEXT: SASL needs SASL_SSL or SASL_PLAINTEXT',
      'kafkaTlsKeyFile is set but kafkaSecurityProtocol PLAINTEXT does not use TLS',
    ],
  );
  assert.deepEqual(problems({ KAFKA_SECURITY_PROTOCOL: 'SASL_SSL' }), [
    'kafkaSecurityProtocol SASL_SSL needs kafkaSaslMechanism',
  ]);
  assert.deepEqual(
    problems({
      KAFKA_SECURITY_PROTOCOL: 'SASL_SSL',
      KAFKA_SASL_MECHANISM: 'SCRAM-SHA-256',
      KAFKA_TLS_KEY_FILE: '/k',
    }),
    [
      'kafkaSaslMechanism SCRAM-SHA-256 needs kafkaSaslUsername',
      'kafkaSaslMechanism SCRAM-SHA-256 needs kafkaSaslPasswordFile',
      'kafkaTlsKeyFile needs kafkaTlsCertFile (the client certificate)',
    ],
  );
  assert.deepEqual(
    problems({
      KAFKA_SECURITY_PROTOCOL: 'SASL_PLAINTEXT',
      KAFKA_SASL_MECHANISM: 'OAUTHBEARER',
      KAFKA_SASL_USERNAME: 'u',
    }),
    [
      'kafkaSaslMechanism OAUTHBEARER needs kafkaSaslOauthbearerTokenFile',
      'kafkaSaslUsername and kafkaSaslPasswordFile are for PLAIN and SCRAM, not OAUTHBEARER',
    ],
  );
  assert.deepEqual(problems({ KAFKA_SECURITY_PROTOCOL: 'TLS' }), [
    'KAFKA_SECURITY_PROTOCOL (environment): must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL, got "TLS"',
  ]);
});

test('--help names the files, not secrets, and every flag', () => {
  const help = renderOptionsHelp(kafkaConnectionOptions());
  for (const flag of [
    '--kafka-security-protocol',
    '--kafka-sasl-mechanism',
    '--kafka-sasl-username',
    '--kafka-sasl-password-file FILE',
    '--kafka-sasl-oauthbearer-token-file FILE',
    '--kafka-tls-ca-file FILE',
    '--kafka-tls-cert-file FILE',
    '--kafka-tls-key-file FILE',
  ])
    assert.ok(help.includes(flag), flag);
  assert.doesNotMatch(help, /--kafka-sasl-password(?!-file)/);
});

test('the scripts read the same settings from the environment alone', () => {
  assert.deepEqual(
    kafkaSecurityEnv({ KAFKA_SASL_USERNAME: 'a', PATH: '/bin', KAFKA_BROKERS: 'x:1' }),
    {
      KAFKA_SASL_USERNAME: 'a',
    },
  );
  assert.deepEqual(parseKafkaSecurityEnv({ KAFKA_SECURITY_PROTOCOL: 'SSL' }), {
    protocol: 'SSL',
    tls: {},
  });
  assert.throws(() => parseKafkaSecurityEnv({ KAFKA_SECURITY_PROTOCOL: 'SASL_SSL' }), {
    code: 'CONFIG_INVALID',
  });
});
