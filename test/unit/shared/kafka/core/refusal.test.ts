import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  classifyRefusal,
  describeRefusal,
} from '../../../../../services/shared/kafka/core/refusal.ts';

const facts = (over: Partial<Parameters<typeof classifyRefusal>[0]>) => ({
  kafkaErrors: [],
  codes: [],
  messages: [],
  ...over,
});

test('authorization names the resource: topic, group, transactional id', () => {
  assert.deepEqual(
    classifyRefusal(facts({ kafkaErrors: ['TOPIC_AUTHORIZATION_FAILED'], topics: ['t1'] })),
    {
      reason: 'authorization',
      resource: 'topic t1',
      detail: 'no ACL allows this principal the operation on topic t1',
    },
  );
  assert.equal(
    classifyRefusal(facts({ kafkaErrors: ['GROUP_AUTHORIZATION_FAILED'], groupId: 'g' }))?.resource,
    'group g',
  );
  assert.equal(
    classifyRefusal(
      facts({
        kafkaErrors: ['TRANSACTIONAL_ID_AUTHORIZATION_FAILED', 'TOPIC_AUTHORIZATION_FAILED'],
        transactionalId: 'vfio-processor-1',
      }),
    )?.resource,
    'transactional id vfio-processor-1',
  );
});

test('a refused SASL login is authentication', () => {
  assert.equal(
    classifyRefusal(facts({ kafkaErrors: ['SASL_AUTHENTICATION_FAILED'] }))?.reason,
    'authentication',
  );
  assert.equal(
    classifyRefusal(facts({ codes: ['PLT_KFK_AUTHENTICATION'] }))?.reason,
    'authentication',
  );
});

test('TLS: untrusted or misnamed broker, our certificate refused, TLS required', () => {
  const tls = (codes: string[], messages: string[] = []) =>
    classifyRefusal(facts({ codes, messages }));
  assert.match(tls(['UNABLE_TO_VERIFY_LEAF_SIGNATURE'])!.detail, /not signed by a trusted CA/);
  assert.match(tls(['ERR_TLS_CERT_ALTNAME_INVALID'])!.detail, /does not name the host/);
  assert.match(tls(['CERT_HAS_EXPIRED'])!.detail, /not valid now/);
  assert.match(
    tls(['ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN'])!.detail,
    /refused our client certificate: not signed by a CA it trusts/,
  );
  assert.match(tls(['ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED'])!.detail, /expired/);
  assert.match(tls(['ERR_SSL_SSL/TLS_ALERT_CERTIFICATE_UNKNOWN'])!.detail, /client certificate/);
  assert.match(tls([], ['Broker requires TLS.'])!.detail, /requires TLS/);
});

test('a broker that is down is no refusal', () => {
  assert.equal(classifyRefusal(facts({ codes: ['ECONNREFUSED', 'PLT_KFK_NETWORK'] })), undefined);
  assert.equal(classifyRefusal(facts({ kafkaErrors: ['NOT_LEADER_OR_FOLLOWER'] })), undefined);
});

test('the /readyz reason names the reason and what to check', () => {
  const refusal = classifyRefusal(
    facts({ kafkaErrors: ['TRANSACTIONAL_ID_AUTHORIZATION_FAILED'], transactionalId: 'p-1' }),
  );
  assert.ok(refusal !== undefined);
  assert.equal(
    describeRefusal(refusal),
    'kafka: refused (authorization: no ACL allows WRITE on transactional id p-1)',
  );
});
