/**
 * The web configuration file of the Prometheus exporter toolkit (the `--web.config.file` of
 * node_exporter and Prometheus itself), so that an operator reuses the file they have:
 * https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md
 *
 *   tls_server_config:
 *     cert_file: <filename>          | cert: <PEM string>       (one of the two)
 *     key_file: <filename>           | key: <PEM string>        (one of the two)
 *     client_auth_type: NoClientCert | RequestClientCert | RequireAnyClientCert
 *                       | VerifyClientCertIfGiven | RequireAndVerifyClientCert
 *     client_ca_file: <filename>     | client_ca: <PEM string>
 *     client_allowed_sans: [ <string> ]   (needs RequireAnyClientCert or RequireAndVerifyClientCert)
 *     min_version: TLS12 | TLS13 (default TLS12)    max_version: TLS12 | TLS13 (default TLS13)
 *     prefer_server_cipher_suites: <boolean>        (accepted; OpenSSL's order is used)
 *   http_server_config:
 *     http2: <boolean>                               (accepted; HTTP/1.1 is served)
 *     headers: { Content-Security-Policy, X-Frame-Options: deny|sameorigin,
 *                X-Content-Type-Options: nosniff, X-XSS-Protection, Strict-Transport-Security }
 *   basic_auth_users: { <user>: <bcrypt hash> }
 *
 * Stricter than the toolkit where it would silently weaken a setting: unknown keys are refused,
 * and so are the keys this server cannot honour (cipher_suites, curve_preferences, rate_limit,
 * TLS 1.0/1.1) rather than ignored. Every problem is reported with its line.
 *
 * Pure: the io/ adapter parses the YAML and passes `lineOf`, which maps a key path to its line.
 */

export const CLIENT_AUTH_TYPES = [
  'NoClientCert',
  'RequestClientCert',
  'RequireAnyClientCert',
  'VerifyClientCertIfGiven',
  'RequireAndVerifyClientCert',
] as const;
export type ClientAuthType = (typeof CLIENT_AUTH_TYPES)[number];

export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

/** PEM text given inline, or a file to read it from (relative to the web config file). */
export type PemSource = { readonly file: string } | { readonly pem: string };

export interface WebTlsConfig {
  readonly cert: PemSource;
  readonly key: PemSource;
  readonly clientCa: PemSource | null;
  readonly clientAuthType: ClientAuthType;
  readonly clientAllowedSans: readonly string[];
  readonly minVersion: TlsVersion;
  readonly maxVersion: TlsVersion;
}

export interface WebConfig {
  /** null: plain HTTP. */
  readonly tls: WebTlsConfig | null;
  /** User → bcrypt hash; empty: no authentication. */
  readonly basicAuthUsers: ReadonlyMap<string, string>;
  /** Added to every response. */
  readonly headers: Readonly<Record<string, string>>;
}

export const EMPTY_WEB_CONFIG: WebConfig = Object.freeze({
  tls: null,
  basicAuthUsers: new Map<string, string>(),
  headers: Object.freeze({}),
});

export type WebConfigResult =
  { kind: 'valid'; config: WebConfig } | { kind: 'invalid'; problems: readonly string[] };

/** Line (1-based) of the key or value at `path`, or null when unknown. */
export type LineOf = (path: readonly (string | number)[]) => number | null;

/** Values each header may take (lower case), or null for any non-empty value. */
const HEADERS: Readonly<Record<string, readonly string[] | null>> = {
  'Content-Security-Policy': null,
  'X-Frame-Options': ['deny', 'sameorigin'],
  'X-Content-Type-Options': ['nosniff'],
  'X-XSS-Protection': null,
  'Strict-Transport-Security': null,
};

const TLS_VERSIONS: Readonly<Record<string, TlsVersion>> = { TLS12: 'TLSv1.2', TLS13: 'TLSv1.3' };

/** `$2a$`, `$2b$` or `$2y$`, a two-digit cost, 22 characters of salt and 31 of hash. */
const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

export function validateWebConfig(value: unknown, lineOf: LineOf): WebConfigResult {
  const problems: string[] = [];
  const at = (path: readonly (string | number)[], problem: string): void => {
    const line = lineOf(path);
    const where = path.length === 0 ? '' : `${path.join('.')}: `;
    problems.push(`${line === null ? '' : `line ${line}: `}${where}${problem}`);
  };
  if (value === null || value === undefined) return { kind: 'valid', config: EMPTY_WEB_CONFIG };
  const root = mapping(value, [], at);
  if (root === null) return { kind: 'invalid', problems };
  unknownKeys(
    root,
    ['tls_server_config', 'http_server_config', 'basic_auth_users', 'rate_limit'],
    [],
    at,
  );
  if (root['rate_limit'] !== undefined && root['rate_limit'] !== null) {
    at(['rate_limit'], 'not supported: --http-max-connections bounds the load instead');
  }
  const tls = tlsConfig(root['tls_server_config'], at);
  const headers = headersConfig(root['http_server_config'], at);
  const basicAuthUsers = usersConfig(root['basic_auth_users'], at);
  if (problems.length > 0) return { kind: 'invalid', problems };
  return { kind: 'valid', config: Object.freeze({ tls, basicAuthUsers, headers }) };
}

type At = (path: readonly (string | number)[], problem: string) => void;

function mapping(
  value: unknown,
  path: readonly (string | number)[],
  at: At,
): Record<string, unknown> | null {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    return value as Record<string, unknown>;
  }
  at(path, `must be a mapping, got ${describe(value)}`);
  return null;
}

function unknownKeys(
  object: Record<string, unknown>,
  known: readonly string[],
  path: readonly string[],
  at: At,
): void {
  for (const key of Object.keys(object)) {
    if (!known.includes(key))
      at([...path, key], `unknown key (expected one of ${known.join(', ')})`);
  }
}

function tlsConfig(value: unknown, at: At): WebTlsConfig | null {
  if (value === undefined || value === null) return null;
  const path = ['tls_server_config'];
  const tls = mapping(value, path, at);
  if (tls === null) return null;
  unknownKeys(
    tls,
    [
      'cert',
      'cert_file',
      'key',
      'key_file',
      'client_ca',
      'client_ca_file',
      'client_auth_type',
      'client_allowed_sans',
      'min_version',
      'max_version',
      'cipher_suites',
      'prefer_server_cipher_suites',
      'curve_preferences',
    ],
    path,
    at,
  );
  for (const key of ['cipher_suites', 'curve_preferences']) {
    const list = tls[key];
    if (list !== undefined && list !== null && !(Array.isArray(list) && list.length === 0)) {
      at([...path, key], "not supported: OpenSSL's defaults for the TLS version are used");
    }
  }
  if (
    tls['prefer_server_cipher_suites'] !== undefined &&
    typeof tls['prefer_server_cipher_suites'] !== 'boolean'
  ) {
    at([...path, 'prefer_server_cipher_suites'], 'must be true or false');
  }
  const cert = pemSource(tls, 'cert', at);
  const key = pemSource(tls, 'key', at);
  const clientCa = pemSource(tls, 'client_ca', at);
  // The toolkit serves plain HTTP when no certificate is configured at all.
  if (cert === null && key === null && clientCa === null && Object.keys(tls).length === 0) {
    return null;
  }
  if (cert === null) at(path, 'cert_file (or cert) is required for TLS');
  if (key === null) at(path, 'key_file (or key) is required for TLS');

  let clientAuthType: ClientAuthType = 'NoClientCert';
  const auth = tls['client_auth_type'];
  if (auth !== undefined && auth !== null) {
    if (typeof auth === 'string' && (CLIENT_AUTH_TYPES as readonly string[]).includes(auth)) {
      clientAuthType = auth as ClientAuthType;
    } else {
      at([...path, 'client_auth_type'], `must be one of ${CLIENT_AUTH_TYPES.join(', ')}`);
    }
  }
  if (clientCa !== null && clientAuthType === 'NoClientCert') {
    at([...path, 'client_auth_type'], 'client_ca_file is set but client_auth_type is NoClientCert');
  }
  if (
    clientCa === null &&
    (clientAuthType === 'VerifyClientCertIfGiven' ||
      clientAuthType === 'RequireAndVerifyClientCert')
  ) {
    at([...path, 'client_ca_file'], `${clientAuthType} needs client_ca_file (or client_ca)`);
  }

  let clientAllowedSans: readonly string[] = [];
  const sans = tls['client_allowed_sans'];
  if (sans !== undefined && sans !== null) {
    if (Array.isArray(sans) && sans.every((s) => typeof s === 'string' && s !== '')) {
      clientAllowedSans = Object.freeze([...(sans as string[])]);
      if (
        clientAllowedSans.length > 0 &&
        clientAuthType !== 'RequireAnyClientCert' &&
        clientAuthType !== 'RequireAndVerifyClientCert'
      ) {
        at(
          [...path, 'client_allowed_sans'],
          'needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert',
        );
      }
    } else {
      at([...path, 'client_allowed_sans'], 'must be a list of non-empty strings');
    }
  }

  const version = (name: string, fallback: TlsVersion): TlsVersion => {
    const v = tls[name];
    if (v === undefined || v === null) return fallback;
    if (typeof v === 'string' && Object.hasOwn(TLS_VERSIONS, v))
      return TLS_VERSIONS[v] as TlsVersion;
    at(
      [...path, name],
      `must be TLS12 or TLS13 (TLS10 and TLS11 are not offered), got ${describe(v)}`,
    );
    return fallback;
  };
  const minVersion = version('min_version', 'TLSv1.2');
  const maxVersion = version('max_version', 'TLSv1.3');
  if (minVersion === 'TLSv1.3' && maxVersion === 'TLSv1.2') {
    at([...path, 'max_version'], 'is below min_version');
  }
  if (cert === null || key === null) return null;
  return Object.freeze({
    cert,
    key,
    clientCa,
    clientAuthType,
    clientAllowedSans,
    minVersion,
    maxVersion,
  });
}

/** `NAME_file` or inline `NAME`, not both. */
function pemSource(tls: Record<string, unknown>, name: string, at: At): PemSource | null {
  const path = ['tls_server_config'];
  const file = tls[`${name}_file`];
  const pem = tls[name];
  const given = (v: unknown): boolean => v !== undefined && v !== null && v !== '';
  if (given(file) && given(pem)) {
    at([...path, name], `give ${name} or ${name}_file, not both`);
    return null;
  }
  if (given(file)) {
    if (typeof file === 'string') return { file };
    at([...path, `${name}_file`], `must be a file name, got ${describe(file)}`);
    return null;
  }
  if (given(pem)) {
    if (typeof pem === 'string' && pem.includes('-----BEGIN')) return { pem };
    at([...path, name], 'must be PEM text');
    return null;
  }
  return null;
}

function headersConfig(value: unknown, at: At): Readonly<Record<string, string>> {
  const out: Record<string, string> = {};
  if (value === undefined || value === null) return Object.freeze(out);
  const server = mapping(value, ['http_server_config'], at);
  if (server === null) return Object.freeze(out);
  unknownKeys(server, ['http2', 'headers'], ['http_server_config'], at);
  if (server['http2'] !== undefined && typeof server['http2'] !== 'boolean') {
    at(['http_server_config', 'http2'], 'must be true or false');
  }
  const given = server['headers'];
  if (given === undefined || given === null) return Object.freeze(out);
  const path = ['http_server_config', 'headers'];
  const headers = mapping(given, path, at);
  if (headers === null) return Object.freeze(out);
  for (const [name, v] of Object.entries(headers)) {
    if (!Object.hasOwn(HEADERS, name)) {
      at([...path, name], `cannot be configured (one of ${Object.keys(HEADERS).join(', ')})`);
      continue;
    }
    // Unset if blank, as the toolkit does.
    if (v === null || v === '') continue;
    const allowed = HEADERS[name];
    if (typeof v !== 'string') {
      at([...path, name], `must be a string, got ${describe(v)}`);
    } else if (/[\r\n\0]/.test(v)) {
      at([...path, name], 'must be one line');
    } else if (allowed !== null && allowed !== undefined && !allowed.includes(v.toLowerCase())) {
      at([...path, name], `must be one of ${allowed.join(', ')}, got ${describe(v)}`);
    } else {
      out[name] = v;
    }
  }
  return Object.freeze(out);
}

function usersConfig(value: unknown, at: At): ReadonlyMap<string, string> {
  const users = new Map<string, string>();
  if (value === undefined || value === null) return users;
  const given = mapping(value, ['basic_auth_users'], at);
  if (given === null) return users;
  for (const [user, hash] of Object.entries(given)) {
    if (user === '' || user.includes(':')) {
      at(['basic_auth_users', user], 'a user name is not empty and has no ":"');
    } else if (typeof hash !== 'string' || !BCRYPT_HASH.test(hash)) {
      // Never echo the value: it may be a password pasted by mistake.
      at(
        ['basic_auth_users', user],
        'must be a bcrypt hash ($2y$10$..., from `htpasswd -nBC 10 "" | tr -d \':\\n\'`)',
      );
    } else {
      users.set(user, hash);
    }
  }
  return users;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  const text = JSON.stringify(value) ?? typeof value;
  return text.length <= 40 ? text : `${text.slice(0, 37)}...`;
}
