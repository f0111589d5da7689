import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCollectorConfig } from '../../../services/collector/config.ts';
import {
  libvirtSource,
  parseLibvirtTarget,
} from '../../../services/collector/core/libvirt-target.ts';

test('libvirt URIs and socket paths: the URI name and the sockets to try', () => {
  const cases: [string, unknown][] = [
    [
      'qemu:///system',
      {
        text: 'qemu:///system',
        name: 'qemu:///system',
        sockets: ['/run/libvirt/virtqemud-sock', '/run/libvirt/libvirt-sock'],
      },
    ],
    [
      'qemu:///session',
      {
        text: 'qemu:///session',
        name: 'qemu:///session',
        sockets: ['/run/user/7/libvirt/virtqemud-sock', '/run/user/7/libvirt/libvirt-sock'],
      },
    ],
    [
      'qemu+unix:///session?socket=/t/run/libvirt/libvirt-sock',
      {
        text: 'qemu+unix:///session?socket=/t/run/libvirt/libvirt-sock',
        name: 'qemu:///session',
        sockets: ['/t/run/libvirt/libvirt-sock'],
      },
    ],
    [
      '/var/run/libvirt/libvirt-sock',
      {
        text: '/var/run/libvirt/libvirt-sock',
        name: null,
        sockets: ['/var/run/libvirt/libvirt-sock'],
      },
    ],
  ];
  for (const [text, expected] of cases) {
    assert.deepEqual(parseLibvirtTarget(text, '/run/user/7'), expected, text);
  }
});

test('anything else is a problem naming the accepted forms', () => {
  for (const text of [
    'qemu+ssh://h/system',
    'xen:///system',
    'qemu+unix:///system',
    'relative/sock',
  ]) {
    const r = parseLibvirtTarget(text, '/run/user/7');
    assert.ok('problem' in r, text);
  }
  const session = parseLibvirtTarget('qemu:///session', null);
  assert.ok('problem' in session && /XDG_RUNTIME_DIR/.test(session.problem));
});

test('a domain is claimed under its libvirt source', () => {
  const target = parseLibvirtTarget('qemu:///system', null);
  assert.ok(!('problem' in target));
  assert.equal(libvirtSource(target, 'web-1'), 'libvirt:qemu:///system/web-1');
});

test('the libvirt options: a libvirt URI alone is a source; bad URIs and event names are problems', () => {
  const parse = (flags: Record<string, string | string[]>) =>
    parseCollectorConfig('box', {
      env: { KAFKA_BROKERS: 'k:9092', VFIO_COLLECTOR_SPOOL_DIR: '/s' },
      flags,
    });
  const config = parse({ libvirt: ['qemu:///system'] });
  assert.deepEqual(config.libvirt, ['qemu:///system']);
  assert.deepEqual(config.libvirtEvents, [
    'VFIO_MIGRATION',
    'MIGRATION',
    'STOP',
    'RESUME',
    'SHUTDOWN',
  ]);
  assert.equal(config.libvirtVmName, 'name');
  assert.equal(config.libvirtKeepaliveMs, 5000);
  const problems = (flags: Record<string, string | string[]>): string => {
    try {
      parse(flags);
      return '';
    } catch (error) {
      return error instanceof Error ? error.message : '';
    }
  };
  assert.match(problems({ libvirt: ['qemu+ssh://h/system'] }), /is not qemu:\/\/\/system/);
  assert.match(problems({ libvirt: ['qemu:///system'], 'libvirt-event': ['stop'] }), /upper case/);
  assert.match(problems({ libvirt: ['qemu:///system'], 'libvirt-vm-name': 'id' }), /name, uuid/);
  assert.equal(problems({ libvirt: ['/run/libvirt/libvirt-sock'], 'libvirt-event': ['*'] }), '');
});
