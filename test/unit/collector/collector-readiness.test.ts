import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  collectorReadiness,
  type CollectorHealth,
} from '../../../services/collector/core/collector-readiness.ts';

const healthy: CollectorHealth = {
  kafkaConnected: true,
  kafkaRefusal: undefined,
  spoolAccepting: true,
  watcher: { dir: '/run/vfio-telemetry', running: true },
  stall: null,
  libvirtUnconnected: [],
};

test('the collector readiness rule, case by case', () => {
  const cases: [string, Partial<CollectorHealth>, boolean, string[]][] = [
    ['all well', {}, true, []],
    ['no socket directory configured', { watcher: null }, true, []],
    [
      'a --libvirt-glob whose directory cannot be listed',
      { libvirtGlobsUnlisted: ['/var/lib/kubelet/pods/*/sock'] },
      false,
      ['libvirt-glob: /var/lib/kubelet/pods/*/sock cannot be listed'],
    ],
    ['every --libvirt-glob listable', { libvirtGlobsUnlisted: [] }, true, []],
    [
      'Kafka down, spool taking events',
      { kafkaConnected: false },
      true,
      ['kafka: unreachable, spooling'],
    ],
    [
      'Kafka down and spool full',
      { kafkaConnected: false, spoolAccepting: false },
      false,
      ['kafka: unreachable and spool full'],
    ],
    [
      'Kafka refused the login, spool taking events: ready, the reason named',
      {
        kafkaConnected: false,
        kafkaRefusal: { reason: 'authentication', detail: 'the broker refused the SASL login' },
      },
      true,
      ['kafka: refused (authentication: the broker refused the SASL login), spooling'],
    ],
    [
      'Kafka refused by an ACL and spool full',
      {
        kafkaConnected: false,
        spoolAccepting: false,
        kafkaRefusal: {
          reason: 'authorization',
          detail: 'no WRITE on topic t',
          resource: 'topic t',
        },
      },
      false,
      ['kafka: refused (authorization: no WRITE on topic t) and spool full'],
    ],
    ['Kafka up, spool full (it drains)', { spoolAccepting: false }, true, []],
    [
      'socket directory cannot be listed',
      { watcher: { dir: '/run/x', running: false } },
      false,
      ['watcher: /run/x cannot be listed'],
    ],
    [
      'Kafka stalled',
      { stall: { sinceMs: 61_400, pendingEvents: 12, lastError: 'NOT_LEADER' } },
      false,
      ['kafka: no event acknowledged for 61 s while 12 wait in the spool (last error: NOT_LEADER)'],
    ],
    [
      'stalled without an error',
      { stall: { sinceMs: 30_000, pendingEvents: 1, lastError: null } },
      false,
      ['kafka: no event acknowledged for 30 s while 1 wait in the spool'],
    ],
    [
      'a libvirt daemon not connected',
      { libvirtUnconnected: ['qemu:///system'] },
      false,
      ['libvirt: qemu:///system not connected'],
    ],
  ];
  for (const [name, change, ready, reasons] of cases) {
    assert.deepEqual(collectorReadiness({ ...healthy, ...change }), { ready, reasons }, name);
  }
});
