import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  describeAddress,
  parseQmpTarget,
  vmNameOfSocket,
} from '../../../services/collector/core/qmp-target.ts';

test('a VM is named for its socket file without the extension', () => {
  assert.equal(vmNameOfSocket('/run/vms/web-1.qmp'), 'web-1');
  assert.equal(vmNameOfSocket('/run/vms/db.prod.sock'), 'db.prod');
  assert.equal(vmNameOfSocket('/run/vms/.hidden'), '.hidden');
  assert.equal(vmNameOfSocket('plain'), 'plain');
});

test('[NAME=]ADDRESS targets: unix paths, unix: prefix, tcp:HOST:PORT', () => {
  const cases: [string, unknown][] = [
    ['/run/vms/web-1.qmp', { vm: 'web-1', address: { kind: 'unix', path: '/run/vms/web-1.qmp' } }],
    ['unix:/run/a.sock', { vm: 'a', address: { kind: 'unix', path: '/run/a.sock' } }],
    ['db=/run/x.qmp', { vm: 'db', address: { kind: 'unix', path: '/run/x.qmp' } }],
    ['/run/a=b.qmp', { vm: 'a=b', address: { kind: 'unix', path: '/run/a=b.qmp' } }],
    [
      'tcp:10.0.0.5:4444',
      { vm: '10.0.0.5:4444', address: { kind: 'tcp', host: '10.0.0.5', port: 4444 } },
    ],
    ['web=tcp:[::1]:4444', { vm: 'web', address: { kind: 'tcp', host: '::1', port: 4444 } }],
  ];
  for (const [text, expected] of cases) assert.deepEqual(parseQmpTarget(text), expected, text);
});

test('a bad target is a problem naming it, not a throw', () => {
  for (const text of [
    'tcp:host',
    'tcp::4444',
    'tcp:h:0',
    'tcp:h:65536',
    'tcp:h:x',
    'unix:',
    'vm=',
  ]) {
    const parsed = parseQmpTarget(text);
    assert.ok('problem' in parsed && parsed.problem.includes(`"${text}"`), text);
  }
});

test('an address is described as it would be given', () => {
  assert.equal(describeAddress({ kind: 'unix', path: '/run/a.qmp' }), '/run/a.qmp');
  assert.equal(describeAddress({ kind: 'tcp', host: 'h', port: 1 }), 'tcp:h:1');
});
