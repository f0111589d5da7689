import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCollectorConfig } from '../../../services/collector/config.ts';
import { parseQmpTarget } from '../../../services/collector/core/qmp-target.ts';
import {
  renderOptionsHelp,
  option,
  parseConfig,
} from '../../../services/shared/core/config-spec.ts';
import { isTelemetryError } from '../../../services/shared/core/errors.ts';

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    assert.ok(isTelemetryError(error, 'CONFIG_INVALID'), String(error));
    return error.details['problems'] as string[];
  }
  assert.fail('expected CONFIG_INVALID');
}

test('a valid config takes flags over env over file over defaults, and is frozen', () => {
  const config = parseCollectorConfig('box', {
    file: { spoolDir: '/file/spool', lingerMs: 7, topic: 'from-file' },
    fileName: 'c.yaml',
    env: { KAFKA_BROKERS: 'a:1, b:2', VFIO_COLLECTOR_TOPIC: 'from-env', PATH: '/bin' },
    flags: { 'socket-dir': '/run/vms', topic: 'from-flag', socket: ['x=/tmp/x.qmp,tcp:h:4444'] },
  });
  assert.equal(config.host, 'box');
  assert.deepEqual(config.brokers, ['a:1', 'b:2']);
  assert.equal(config.topic, 'from-flag');
  assert.equal(config.lingerMs, 7);
  assert.equal(config.spoolDir, '/file/spool');
  assert.deepEqual(config.sockets, ['x=/tmp/x.qmp', 'tcp:h:4444']);
  assert.equal(config.fsyncIntervalMs, 100);
  assert.ok(Object.isFrozen(config));
});

test('every problem is listed at once, not just the first', () => {
  const problems = problemsOf(() =>
    parseCollectorConfig('box', {
      file: { lingerMs: -1, spoolMaxBytes: 'big', colour: 'red' },
      fileName: 'c.yaml',
      env: {
        KAFKA_BROKERS: 'nocolon',
        VFIO_COLLECTOR_HTTP_PORT: 'eighty',
        VFIO_COLLECTOR_TYPO: '1',
      },
      flags: { socket: ['tcp:host:99999'], 'log-level': 'loud' },
    }),
  );
  const expected = [
    /--socket: "tcp:host:99999" is not tcp:HOST:PORT/,
    /KAFKA_BROKERS \(environment\): "nocolon" is not HOST:PORT/,
    /spoolDir is required/,
    /spoolMaxBytes \(c\.yaml\): must be an integer/,
    /lingerMs \(c\.yaml\): must be at least 0/,
    /VFIO_COLLECTOR_HTTP_PORT \(environment\): must be an integer/,
    /--log-level: must be one of debug, info, warn, error/,
    /c\.yaml: unknown key "colour"/,
    /VFIO_COLLECTOR_TYPO \(environment\): no such option/,
  ];
  assert.equal(problems.length, expected.length, problems.join('\n'));
  for (const re of expected)
    assert.ok(
      problems.some((p) => re.test(p)),
      `${re} in ${problems.join('\n')}`,
    );
});

test('cross-option rules run once each option is valid', () => {
  const problems = problemsOf(() =>
    parseCollectorConfig('box', {
      env: { KAFKA_BROKERS: 'k:9092', VFIO_COLLECTOR_SPOOL_DIR: '/s' },
      flags: { 'spool-max-bytes': '100000', 'spool-segment-bytes': '60000' },
    }),
  );
  assert.deepEqual(problems, [
    'no QMP sockets: set socketDir (--socket-dir), sockets (--socket), libvirt (--libvirt) or libvirtGlobs (--libvirt-glob)',
    'spoolMaxBytes must be at least twice spoolSegmentBytes',
  ]);
});

test('a config file that is not a mapping is a problem, not a crash', () => {
  const problems = problemsOf(() =>
    parseConfig(
      { a: option({ type: 'string', default: 'x', doc: 'a' }) },
      { file: [1, 2], fileName: 'f.json' },
    ),
  );
  assert.deepEqual(problems, ['f.json: must be a mapping of option keys']);
});

test('help lists flag, env, default and doc of each option', () => {
  const help = renderOptionsHelp({
    port: option({ type: 'integer', default: 80, env: 'X_PORT', flag: 'port', doc: 'the port' }),
    name: option({ type: 'string', flag: 'name', doc: 'a name' }),
  });
  assert.match(help, /--port N\s+the port \[env X_PORT; default 80\]/);
  assert.match(help, /--name TEXT\s+a name \[required\]/);
});

test('QMP targets: paths, named paths and TCP addresses', () => {
  assert.deepEqual(parseQmpTarget('/run/vms/web-1.qmp'), {
    vm: 'web-1',
    address: { kind: 'unix', path: '/run/vms/web-1.qmp' },
  });
  assert.deepEqual(parseQmpTarget('db=unix:/tmp/q.sock'), {
    vm: 'db',
    address: { kind: 'unix', path: '/tmp/q.sock' },
  });
  assert.deepEqual(parseQmpTarget('tcp:127.0.0.1:4444'), {
    vm: '127.0.0.1:4444',
    address: { kind: 'tcp', host: '127.0.0.1', port: 4444 },
  });
  assert.ok('problem' in parseQmpTarget('tcp:nohostport'));
});

test('stallTimeoutMs: 30 s by default, settable by flag and env, at least 100 ms', () => {
  const base = {
    env: {},
    flags: { 'socket-dir': '/run/vms', 'spool-dir': '/s', brokers: ['k:9092'] },
  };
  assert.equal(parseCollectorConfig('box', base).stallTimeoutMs, 30_000);
  assert.equal(
    parseCollectorConfig('box', { ...base, flags: { ...base.flags, 'stall-timeout-ms': '5000' } })
      .stallTimeoutMs,
    5000,
  );
  assert.equal(
    parseCollectorConfig('box', { ...base, env: { VFIO_COLLECTOR_STALL_TIMEOUT_MS: '7000' } })
      .stallTimeoutMs,
    7000,
  );
  const problems = problemsOf(() =>
    parseCollectorConfig('box', { ...base, flags: { ...base.flags, 'stall-timeout-ms': '50' } }),
  );
  assert.equal(problems.length, 1);
  assert.match(problems[0] as string, /stall-timeout-ms: must be at least 100/);
});

test('--libvirt-glob alone is a source; a pattern that is not one is refused with its reason', () => {
  const config = parseCollectorConfig('box', {
    env: {
      KAFKA_BROKERS: 'k:9092',
      VFIO_COLLECTOR_SPOOL_DIR: '/s',
      VFIO_COLLECTOR_LIBVIRT_GLOBS: '/var/lib/kubelet/pods/*/libvirt-runtime/virtqemud-sock',
    },
  });
  assert.deepEqual(config.libvirtGlobs, ['/var/lib/kubelet/pods/*/libvirt-runtime/virtqemud-sock']);
  assert.equal(config.libvirtGlobIntervalMs, 2000);
  const problems = problemsOf(() =>
    parseCollectorConfig('box', {
      env: { KAFKA_BROKERS: 'k:9092', VFIO_COLLECTOR_SPOOL_DIR: '/s' },
      flags: { 'libvirt-glob': '/run/libvirt/virtqemud-sock' },
    }),
  );
  assert.equal(problems.length, 1, problems.join('\n'));
  assert.match(problems[0] ?? '', /libvirt-glob.*has no \* or \?: use --libvirt for one socket/);
});
