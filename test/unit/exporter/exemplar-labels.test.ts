import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  EXEMPLAR_LABEL_LIMIT,
  deviceLabel,
  exemplarLabelSetLength,
  exemplarLabelsOf,
  fairShares,
  qemuTimestampLabel,
  shorten,
  writtenLength,
} from '../../../services/exporter/core/exemplar-labels.ts';

const T = 1_733_150_000_123_456;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

describe('exemplarLabelsOf', () => {
  test('short names pass unchanged, with the QEMU timestamp as seconds.micros', () => {
    assert.deepEqual(
      exemplarLabelsOf({
        host: 'hv-7',
        vm: 'web-1',
        deviceId: 'vf0',
        qomPath: '/machine/peripheral/vf0',
        closingMicros: T,
      }),
      { host: 'hv-7', vm: 'web-1', device: 'vf0', qemu_ts: '1733150000.123456' },
    );
  });

  test('no device-id: the qom-path without /machine/', () => {
    assert.equal(
      deviceLabel('', '/machine/peripheral-anon/device[3]'),
      'peripheral-anon/device[3]',
    );
    assert.equal(deviceLabel('', '/other/x'), '/other/x');
    assert.equal(deviceLabel('nic0', '/machine/peripheral/nic0'), 'nic0');
  });

  test('long values share the space fairly: host and vm keep their heads, device its tail', () => {
    const host = `hv-rack12-node07.${'a'.repeat(60)}.example.com`;
    const vm = `tenant-42-${'b'.repeat(80)}`;
    const qomPath = `/machine/peripheral-anon/${'c'.repeat(70)}/device[12]`;
    const labels = exemplarLabelsOf({ host, vm, deviceId: '', qomPath, closingMicros: T });
    assert.equal(exemplarLabelSetLength(labels), EXEMPLAR_LABEL_LIMIT);
    // 128 − (4 + 2 + 6 + 7) names − 17 qemu_ts = 92 for three values: 31, 31, 30.
    assert.deepEqual(labels, {
      host: `hv-rack12-node07.${'a'.repeat(13)}~`,
      vm: `tenant-42-${'b'.repeat(20)}~`,
      device: `~${'c'.repeat(18)}/device[12]`,
      qemu_ts: '1733150000.123456',
    });
  });

  test('a short value leaves its unused share to the long ones', () => {
    const labels = exemplarLabelsOf({
      host: 'h',
      vm: 'v'.repeat(200),
      deviceId: 'd'.repeat(200),
      qomPath: '',
      closingMicros: T,
    });
    assert.equal(labels.host, 'h');
    assert.equal(labels.vm?.length, 46);
    assert.equal(labels.device?.length, 45);
    assert.equal(exemplarLabelSetLength(labels), EXEMPLAR_LABEL_LIMIT);
  });

  test('escaped characters count twice, as Prometheus reads them from the exposition', () => {
    assert.equal(writtenLength('a"b\\c\nd'), 10);
    const labels = exemplarLabelsOf({
      host: 'h',
      vm: `"${'v'.repeat(200)}`,
      deviceId: 'd',
      qomPath: '',
      closingMicros: T,
    });
    // 128 − 19 names − 17 qemu_ts − 1 host − 1 device = 90 written: the quote (2), 87 v, ~.
    assert.equal(labels.vm, `"${'v'.repeat(87)}~`);
    assert.equal(exemplarLabelSetLength(labels), EXEMPLAR_LABEL_LIMIT);
    assert.equal(shorten('ab\n\ncd', 4, 'tail'), '~cd');
    assert.equal(shorten('"""ab', 4, 'head'), '"~');
  });

  test('empty values are left out', () => {
    assert.deepEqual(
      exemplarLabelsOf({ host: '', vm: 'v', deviceId: '', qomPath: '', closingMicros: 0 }),
      { vm: 'v', qemu_ts: '0.000000' },
    );
  });

  test('any input fits 128 UTF-16 code units (so 128 code points) and never splits a pair', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 300 }),
        fc.string({ unit: 'binary', maxLength: 300 }),
        fc.string({ unit: 'binary', maxLength: 300 }),
        fc.string({ unit: 'binary', maxLength: 300 }),
        fc.oneof(fc.integer(), fc.double(), fc.maxSafeInteger()),
        (host, vm, deviceId, qomPath, closingMicros) => {
          const labels = exemplarLabelsOf({ host, vm, deviceId, qomPath, closingMicros });
          assert.ok(exemplarLabelSetLength(labels) <= EXEMPLAR_LABEL_LIMIT);
          for (const value of Object.values(labels)) {
            assert.doesNotMatch(value, LONE_SURROGATE, JSON.stringify(value));
          }
        },
      ),
      { seed: 11, numRuns: 2000 },
    );
  });
});

describe('the pieces of the rule', () => {
  test('qemuTimestampLabel', () => {
    assert.equal(qemuTimestampLabel(T), '1733150000.123456');
    assert.equal(qemuTimestampLabel(5), '0.000005');
    assert.equal(qemuTimestampLabel(-1_500_000), '-1.500000');
    assert.ok(qemuTimestampLabel(1.5e300).length <= 24);
  });

  test('fairShares', () => {
    assert.deepEqual(fairShares([3, 4, 5], 20), [3, 4, 5]);
    assert.deepEqual(fairShares([1, 100, 100], 92), [1, 46, 45]);
    assert.deepEqual(fairShares([50, 50, 50], 92), [31, 31, 30]);
    assert.deepEqual(fairShares([10, 10], 0), [0, 0]);
  });

  test('shorten keeps head or tail and marks the cut', () => {
    assert.equal(shorten('abcdef', 4, 'head'), 'abc~');
    assert.equal(shorten('abcdef', 4, 'tail'), '~def');
    assert.equal(shorten('abc', 4, 'head'), 'abc');
    assert.equal(shorten('abcdef', 0, 'head'), '');
    // 'a😀b' is a, a surrogate pair, b: cutting after the high surrogate drops the pair.
    assert.equal(shorten('a😀bcd', 3, 'head'), 'a~');
    assert.equal(shorten('abc😀d', 3, 'tail'), '~d');
  });
});
