/**
 * The security settings (kafka/core/options.ts) as @platformatic/kafka connection options: `tls`
 * for node:tls (CA, client certificate and key read from their PEM files; the server's name is
 * verified, as node:tls does unless told otherwise) and `sasl` with providers, so that a password
 * or token is read from its file at each login and never held in a config object, a log line or
 * an error.
 *
 * The library calls the providers at every (re)authentication; it reauthenticates before the
 * session lifetime the broker grants runs out (KIP-368), so a rotated token file is picked up then.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { connect as connectTls, type ConnectionOptions as TlsOptions } from 'node:tls';
import type { SASLOptions } from '@platformatic/kafka';
import { TelemetryError } from '../../core/errors.ts';
import { kafkaSecurityFiles, type KafkaSecurity } from '../core/options.ts';
import { classifyRefusal, type Refusal } from '../core/refusal.ts';
import { kafkaRefusal } from './errors.ts';

export interface ConnectionSecurity {
  tls?: TlsOptions;
  sasl?: SASLOptions;
}

/** Reads a one-line secret: surrounding white space (a trailing newline) is not part of it. */
function readSecret(path: string): string {
  return readFileSync(path, 'utf8').trim();
}

/** Seconds since the epoch at which a JWT expires (its `exp` claim), or undefined. */
export function jwtExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as {
      exp?: unknown;
    };
    return typeof claims.exp === 'number' ? claims.exp : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The token in `path`, read again when the file changed (mtime, size) or the token it held
 * expires within `marginMs`.
 */
export function tokenFileProvider(path: string, marginMs = 30_000): () => string {
  let cached: { token: string; mtimeMs: number; size: number; expiresMs: number } | undefined;
  return () => {
    const stat = statSync(path);
    if (
      cached === undefined ||
      cached.mtimeMs !== stat.mtimeMs ||
      cached.size !== stat.size ||
      Date.now() >= cached.expiresMs - marginMs
    ) {
      const token = readSecret(path);
      const exp = jwtExpiry(token);
      cached = {
        token,
        mtimeMs: stat.mtimeMs,
        size: stat.size,
        expiresMs: exp === undefined ? Number.POSITIVE_INFINITY : exp * 1000,
      };
    }
    return cached.token;
  };
}

/**
 * The broker's answer to an OAUTHBEARER login. A refused token (invalid, expired, for the wrong
 * scope) is not a SaslAuthenticate error: RFC 7628 has the server answer with a JSON error
 * (`{"status":"invalid_token"}`), which @platformatic/kafka would take for success, and the
 * connection's next request would then fail as a mere "Connection closed". This reads that
 * answer so the login fails as an authentication refusal. The token is never in the error.
 */
export function oauthBearerServerError(
  authBytes: Buffer,
  callback: (error: Error | null, authBytes: Buffer) => void,
): void {
  let status: unknown;
  if (authBytes.length > 0) {
    try {
      status = (JSON.parse(authBytes.toString('utf8')) as { status?: unknown }).status;
    } catch {
      status = undefined;
    }
  }
  if (status === undefined) callback(null, authBytes);
  else
    callback(
      new Error(`the broker refused the OAUTHBEARER token (${JSON.stringify(status)})`),
      authBytes,
    );
}

/** The client options for `security`; reads the TLS files now (checked at start). */
export function connectionSecurity(security: KafkaSecurity | undefined): ConnectionSecurity {
  if (security === undefined || security.protocol === 'PLAINTEXT') return {};
  const out: ConnectionSecurity = {};
  if (security.tls !== undefined) {
    const { caFile, certFile, keyFile } = security.tls;
    out.tls = {
      ...(caFile === undefined ? {} : { ca: readFileSync(caFile, 'utf8') }),
      ...(certFile === undefined ? {} : { cert: readFileSync(certFile, 'utf8') }),
      ...(keyFile === undefined ? {} : { key: readFileSync(keyFile, 'utf8') }),
      rejectUnauthorized: true,
    };
  }
  const sasl = security.sasl;
  if (sasl !== undefined) {
    out.sasl =
      sasl.mechanism === 'OAUTHBEARER'
        ? {
            mechanism: sasl.mechanism,
            token: tokenFileProvider(sasl.tokenFile),
            authBytesValidator: oauthBearerServerError,
          }
        : {
            mechanism: sasl.mechanism,
            username: sasl.username,
            password: () => readSecret(sasl.passwordFile),
          };
  }
  return out;
}

/**
 * The start-up check: every file the settings name is readable and holds what it should (PEM
 * certificates, a private key that belongs to the certificate, a non-empty secret). Problems
 * name the option and the path, never a file's content. Throws one CONFIG_INVALID listing all.
 */
export function checkKafkaSecurityFiles(
  security: KafkaSecurity | undefined,
  nowMs: number = Date.now(),
): void {
  if (security === undefined) return;
  const problems: string[] = [];
  const contents = new Map<string, string>();
  for (const { key, path } of kafkaSecurityFiles(security)) {
    try {
      contents.set(key, readFileSync(path, 'utf8'));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      problems.push(`${key} ${path} cannot be read (${code})`);
    }
  }
  const ca = contents.get('kafkaTlsCaFile');
  if (ca !== undefined && !ca.includes('-----BEGIN CERTIFICATE-----'))
    problems.push(`kafkaTlsCaFile ${security.tls?.caFile} holds no PEM certificate`);
  const certText = contents.get('kafkaTlsCertFile');
  let cert: X509Certificate | undefined;
  if (certText !== undefined) {
    try {
      cert = new X509Certificate(certText);
      if (Date.parse(cert.validTo) <= nowMs)
        problems.push(
          `kafkaTlsCertFile ${security.tls?.certFile} expired at ${new Date(cert.validTo).toISOString()}`,
        );
    } catch {
      problems.push(`kafkaTlsCertFile ${security.tls?.certFile} holds no PEM certificate`);
    }
  }
  const keyText = contents.get('kafkaTlsKeyFile');
  if (keyText !== undefined) {
    try {
      const key = createPrivateKey(keyText);
      if (cert !== undefined && !cert.checkPrivateKey(key))
        problems.push(
          `kafkaTlsKeyFile ${security.tls?.keyFile} is not the key of kafkaTlsCertFile ${security.tls?.certFile}`,
        );
    } catch {
      problems.push(
        `kafkaTlsKeyFile ${security.tls?.keyFile} holds no unencrypted PEM private key`,
      );
    }
  }
  for (const key of ['kafkaSaslPasswordFile', 'kafkaSaslOauthbearerTokenFile']) {
    const text = contents.get(key);
    if (text !== undefined && text.trim() === '') problems.push(`${key} is empty`);
  }
  if (problems.length > 0) {
    throw new TelemetryError(
      'CONFIG_INVALID',
      `invalid configuration:\n  - ${problems.join('\n  - ')}`,
      { details: { problems } },
    );
  }
}

/** ApiVersions v0 (api key 18), correlation id 1, no client id: the smallest request there is. */
const API_VERSIONS_V0 = Buffer.from([0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);

/**
 * Connects to `broker` with `tls` once, sends ApiVersions, and resolves with the code of the
 * error the connection ends with (undefined when the broker answers). Over TLS 1.3 a broker
 * checks the client certificate after the handshake: its refusal arrives as an alert on a
 * connection @platformatic/kafka already counts as open, and the library reports only
 * "Connection closed". This probe reads that alert.
 */
export function probeTlsAlert(
  broker: string,
  tls: TlsOptions,
  timeoutMs = 5000,
): Promise<string | undefined> {
  const at = broker.lastIndexOf(':');
  return new Promise((resolve) => {
    let code: string | undefined;
    const socket = connectTls({
      ...tls,
      host: broker.slice(0, at),
      port: Number(broker.slice(at + 1)),
      timeout: timeoutMs,
    });
    socket.once('secureConnect', () => socket.write(API_VERSIONS_V0));
    socket.once('data', () => socket.destroy());
    socket.once('timeout', () => socket.destroy());
    socket.on('error', (error: NodeJS.ErrnoException) => (code ??= error.code));
    socket.once('close', () => resolve(code));
  });
}

/**
 * `error`'s refusal (kafka/io/errors.ts; `details` names what the call was about, e.g.
 * `transactionalId`, `groupId`); when it only says a TLS connection closed and we
 * present a client certificate, the broker's alert read by `probeTlsAlert` (at most once per
 * `probeEveryMs`; the last answer is reused meanwhile).
 */
export function createRefusalDiagnosis(
  brokers: readonly string[],
  security: KafkaSecurity | undefined,
  probeEveryMs = 10_000,
): (error: unknown, details?: Record<string, unknown>) => Promise<Refusal | undefined> {
  let last: { atMs: number; refusal: Refusal | undefined } | undefined;
  return async (error, details = {}) => {
    const refusal = kafkaRefusal(error, details);
    if (refusal !== undefined || security?.tls?.certFile === undefined) return refusal;
    if (!/Connection closed/.test(String(collectMessages(error)))) return undefined;
    const broker = brokers[0];
    if (broker === undefined) return undefined;
    if (last !== undefined && Date.now() - last.atMs < probeEveryMs) return last.refusal;
    const tls = connectionSecurity(security).tls ?? {};
    const code = await probeTlsAlert(broker, tls);
    last = {
      atMs: Date.now(),
      refusal:
        code === undefined
          ? undefined
          : classifyRefusal({ kafkaErrors: [], codes: [code], messages: [] }),
    };
    return last.refusal;
  };
}

function collectMessages(error: unknown, seen = new Set<unknown>()): string[] {
  if (typeof error !== 'object' || error === null || seen.has(error)) return [];
  seen.add(error);
  const node = error as { message?: unknown; errors?: unknown; cause?: unknown };
  const out = typeof node.message === 'string' ? [node.message] : [];
  if (Array.isArray(node.errors))
    for (const e of node.errors) out.push(...collectMessages(e, seen));
  out.push(...collectMessages(node.cause, seen));
  return out;
}
