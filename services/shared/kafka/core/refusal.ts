/**
 * Why Kafka refused a client, from what its errors say: the SASL login (authentication), an
 * ACL (authorization, naming the resource), or TLS (the broker's certificate, or ours). Each
 * needs a different fix by a different person, so each is reported on its own; anything else
 * (a broker down, a timeout) is not a refusal and gives undefined.
 *
 * The facts are gathered from the error tree by kafka/io/errors.ts: Kafka error names (`apiId`,
 * e.g. TOPIC_AUTHORIZATION_FAILED), codes (node:tls's, e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE, and
 * OpenSSL's alerts from the broker, e.g. ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN), messages,
 * and the resources the failed call was about.
 */
export const REFUSAL_REASONS = ['authentication', 'authorization', 'tls'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export interface Refusal {
  readonly reason: RefusalReason;
  /** One sentence for the log line and /readyz: what was refused and what to check. */
  readonly detail: string;
  /** `topic vfio.events.v1`, `group vfio-exporter`, `transactional id ...` for authorization. */
  readonly resource?: string;
}

export interface RefusalFacts {
  readonly kafkaErrors: readonly string[];
  readonly codes: readonly string[];
  readonly messages: readonly string[];
  /** What the failed call was about (from its error's details). */
  readonly topics?: readonly string[];
  readonly groupId?: string;
  readonly transactionalId?: string;
}

const UNTRUSTED_SERVER = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

/**
 * OpenSSL alerts a broker sends when it refuses our certificate (or its absence), by the end of
 * node's error code: `ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN`, or `ERR_SSL_SSL/TLS_ALERT_...`
 * with other OpenSSL builds.
 */
const CLIENT_CERT_ALERTS: Readonly<Record<string, string>> = {
  CERTIFICATE_UNKNOWN: 'not signed by a CA it trusts',
  UNKNOWN_CA: 'not signed by a CA it trusts',
  BAD_CERTIFICATE: 'missing or unusable',
  CERTIFICATE_REQUIRED: 'missing (the listener requires one)',
  CERTIFICATE_EXPIRED: 'expired',
  CERTIFICATE_REVOKED: 'revoked',
};

function clientCertAlert(code: string): string | undefined {
  const match = /^ERR_SSL_.*_ALERT_([A-Z_]+)$/.exec(code);
  return match === null ? undefined : CLIENT_CERT_ALERTS[match[1]!];
}

export function classifyRefusal(facts: RefusalFacts): Refusal | undefined {
  const names = new Set(facts.kafkaErrors);
  const codes = new Set(facts.codes);
  const topics = facts.topics ?? [];
  const topicText = topics.length === 0 ? 'topic (unnamed)' : `topic ${topics.join(', ')}`;
  if (names.has('TRANSACTIONAL_ID_AUTHORIZATION_FAILED')) {
    const resource = `transactional id ${facts.transactionalId ?? '(unnamed)'}`;
    return { reason: 'authorization', resource, detail: `no ACL allows WRITE on ${resource}` };
  }
  if (names.has('GROUP_AUTHORIZATION_FAILED')) {
    const resource = `group ${facts.groupId ?? '(unnamed)'}`;
    return { reason: 'authorization', resource, detail: `no ACL allows READ on ${resource}` };
  }
  if (names.has('TOPIC_AUTHORIZATION_FAILED')) {
    return {
      reason: 'authorization',
      resource: topicText,
      detail: `no ACL allows this principal the operation on ${topicText}`,
    };
  }
  if (names.has('CLUSTER_AUTHORIZATION_FAILED')) {
    return {
      reason: 'authorization',
      resource: 'cluster',
      detail: 'no ACL allows this principal the operation on the cluster',
    };
  }
  if (
    names.has('SASL_AUTHENTICATION_FAILED') ||
    names.has('UNSUPPORTED_SASL_MECHANISM') ||
    codes.has('PLT_KFK_AUTHENTICATION')
  ) {
    return {
      reason: 'authentication',
      detail:
        'the broker refused the SASL login: check the user, its password (token) file and the mechanism',
    };
  }
  for (const code of codes) {
    if (UNTRUSTED_SERVER.has(code))
      return {
        reason: 'tls',
        detail: `the broker's certificate is not signed by a trusted CA (${code}): check kafkaTlsCaFile`,
      };
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
      return {
        reason: 'tls',
        detail:
          "the broker's certificate does not name the host connected to (ERR_TLS_CERT_ALTNAME_INVALID)",
      };
    if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID')
      return { reason: 'tls', detail: `the broker's certificate is not valid now (${code})` };
    const alert = clientCertAlert(code);
    if (alert !== undefined)
      return {
        reason: 'tls',
        detail: `the broker refused our client certificate: ${alert} (${code}); check kafkaTlsCertFile`,
      };
  }
  if (facts.messages.some((m) => m.includes('Broker requires TLS')))
    return {
      reason: 'tls',
      detail: 'the broker requires TLS: set kafkaSecurityProtocol to SSL or SASL_SSL',
    };
  return undefined;
}

/** The refusal as a `/readyz` reason: `kafka: refused (authorization: no ACL allows ...)`. */
export function describeRefusal(refusal: Refusal): string {
  return `kafka: refused (${refusal.reason}: ${refusal.detail})`;
}
