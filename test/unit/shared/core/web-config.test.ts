import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  EMPTY_WEB_CONFIG,
  validateWebConfig,
  type LineOf,
} from '../../../../services/shared/core/web-config.ts';

const HASH = '$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG';
/** Each key path's line is its depth times ten: enough to see the right path was asked for. */
const lineOf: LineOf = (path) => (path.length === 0 ? null : path.length * 10);

function problemsOf(value: unknown): readonly string[] {
  const result = validateWebConfig(value, lineOf);
  assert.equal(result.kind, 'invalid', JSON.stringify(value));
  return result.kind === 'invalid' ? result.problems : [];
}

test('an empty file or empty sections: plain HTTP, no authentication, no headers', () => {
  assert.deepEqual(validateWebConfig(null, lineOf), { kind: 'valid', config: EMPTY_WEB_CONFIG });
  const empty = validateWebConfig({ tls_server_config: {}, basic_auth_users: null }, lineOf);
  assert.equal(empty.kind, 'valid');
  if (empty.kind === 'valid') {
    assert.equal(empty.config.tls, null);
    assert.equal(empty.config.basicAuthUsers.size, 0);
  }
});

test('a node_exporter web config: TLS with client certificates, users, headers', () => {
  const result = validateWebConfig(
    {
      tls_server_config: {
        cert_file: 'server.crt',
        key_file: 'server.key',
        client_auth_type: 'RequireAndVerifyClientCert',
        client_ca_file: 'ca.crt',
        client_allowed_sans: ['prometheus.example.net'],
        min_version: 'TLS13',
        prefer_server_cipher_suites: true,
      },
      http_server_config: {
        http2: true,
        headers: { 'X-Frame-Options': 'deny', 'Strict-Transport-Security': 'max-age=31536000' },
      },
      basic_auth_users: { prometheus: HASH },
    },
    lineOf,
  );
  assert.equal(result.kind, 'valid');
  if (result.kind !== 'valid') return;
  assert.deepEqual(result.config.tls, {
    cert: { file: 'server.crt' },
    key: { file: 'server.key' },
    clientCa: { file: 'ca.crt' },
    clientAuthType: 'RequireAndVerifyClientCert',
    clientAllowedSans: ['prometheus.example.net'],
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
  });
  assert.deepEqual([...result.config.basicAuthUsers], [['prometheus', HASH]]);
  assert.deepEqual(result.config.headers, {
    'X-Frame-Options': 'deny',
    'Strict-Transport-Security': 'max-age=31536000',
  });
});

test('inline PEM instead of files', () => {
  const pem = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
  const result = validateWebConfig({ tls_server_config: { cert: pem, key: pem } }, lineOf);
  assert.equal(result.kind, 'valid');
  if (result.kind === 'valid') assert.deepEqual(result.config.tls?.cert, { pem });
});

test('every problem is listed, each with its line and key path', () => {
  const problems = problemsOf({
    tls_server_config: { cert_file: 'a', client_ca_file: 'ca', min_version: 'TLS10', ciphers: [] },
    http_server_config: { headers: { 'X-Powered-By': 'me', 'X-Frame-Options': 'allow' } },
    basic_auth_users: { alice: 'plain-password', 'bob:x': HASH },
    rate_limit: { interval: '1s', burst: 2 },
    extra: 1,
  });
  assert.deepEqual([...problems].sort(), [
    'line 10: extra: unknown key (expected one of tls_server_config, http_server_config, basic_auth_users, rate_limit)',
    'line 10: rate_limit: not supported: --http-max-connections bounds the load instead',
    'line 10: tls_server_config: key_file (or key) is required for TLS',
    'line 20: basic_auth_users.alice: must be a bcrypt hash ($2y$10$..., from `htpasswd -nBC 10 "" | tr -d \':\\n\'`)',
    'line 20: basic_auth_users.bob:x: a user name is not empty and has no ":"',
    'line 20: tls_server_config.ciphers: unknown key (expected one of cert, cert_file, key, key_file, client_ca, client_ca_file, client_auth_type, client_allowed_sans, min_version, max_version, cipher_suites, prefer_server_cipher_suites, curve_preferences)',
    'line 20: tls_server_config.client_auth_type: client_ca_file is set but client_auth_type is NoClientCert',
    'line 20: tls_server_config.min_version: must be TLS12 or TLS13 (TLS10 and TLS11 are not offered), got "TLS10"',
    'line 30: http_server_config.headers.X-Frame-Options: must be one of deny, sameorigin, got "allow"',
    'line 30: http_server_config.headers.X-Powered-By: cannot be configured (one of Content-Security-Policy, X-Frame-Options, X-Content-Type-Options, X-XSS-Protection, Strict-Transport-Security)',
  ]);
  assert.ok(
    !problems.join('\n').includes('plain-password'),
    'a value that may be a password is never echoed',
  );
});

test('client certificate rules: verification needs a CA, allowed SANs need a required certificate', () => {
  const tls = (more: Record<string, unknown>) => ({
    tls_server_config: { cert_file: 'c', key_file: 'k', ...more },
  });
  assert.deepEqual(problemsOf(tls({ client_auth_type: 'RequireAndVerifyClientCert' })), [
    'line 20: tls_server_config.client_ca_file: RequireAndVerifyClientCert needs client_ca_file (or client_ca)',
  ]);
  assert.deepEqual(problemsOf(tls({ client_auth_type: 'Sometimes' })), [
    'line 20: tls_server_config.client_auth_type: must be one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert',
  ]);
  assert.deepEqual(
    problemsOf(tls({ client_auth_type: 'RequestClientCert', client_allowed_sans: ['x'] })),
    [
      'line 20: tls_server_config.client_allowed_sans: needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert',
    ],
  );
  assert.deepEqual(
    problemsOf(tls({ cert: '-----BEGIN X', cipher_suites: ['TLS_AES_128_GCM_SHA256'] })),
    [
      "line 20: tls_server_config.cipher_suites: not supported: OpenSSL's defaults for the TLS version are used",
      'line 20: tls_server_config.cert: give cert or cert_file, not both',
      'line 10: tls_server_config: cert_file (or cert) is required for TLS',
    ],
  );
  assert.deepEqual(problemsOf({ tls_server_config: 'yes' }), [
    'line 10: tls_server_config: must be a mapping, got "yes"',
  ]);
  assert.deepEqual(problemsOf([1]), ['must be a mapping, got a list']);
});
