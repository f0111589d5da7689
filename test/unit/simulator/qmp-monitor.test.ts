import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { QmpInputSplitter } from '../../../services/simulator/core/qmp-input-splitter.ts';
import { formatQmpMessage, type QmpJson } from '../../../services/simulator/core/qmp-json.ts';
import { answerQmpInput } from '../../../services/simulator/core/qmp-monitor.ts';

const QEMU_72_GREETING: QmpJson = {
  QMP: {
    version: {
      qemu: { micro: 22, minor: 2, major: 7 },
      package: 'Debian 1:7.2+dfsg-7+deb12u18+b3',
    },
    capabilities: ['oob'],
  },
};

describe('formatQmpMessage', () => {
  test('pretty output is byte for byte what QEMU 7.2 sent', () => {
    const captured = readFileSync(
      new URL('../../fixtures/qmp/qemu-7.2/pretty-greeting.qmp', import.meta.url),
      'utf8',
    );
    assert.equal(formatQmpMessage(QEMU_72_GREETING, true), captured);
  });

  test('compact output matches the captured lines', () => {
    const lines = readFileSync(
      new URL('../../fixtures/qmp/qemu-7.2/normal-src.qmp', import.meta.url),
      'utf8',
    ).split(/(?<=\r?\n)/);
    for (const line of lines.slice(0, 14)) {
      const crlf = line.replace(/\r?\n$/, '\r\n');
      // Captured floats (mbps) are the one thing the simulator never writes.
      if (crlf.includes('"mbps"')) continue;
      assert.equal(formatQmpMessage(JSON.parse(line) as QmpJson, false), crlf);
    }
  });

  test('empty containers, escapes, ASCII only', () => {
    assert.equal(formatQmpMessage({ return: {} }, true), '{\r\n    "return": {\r\n    }\r\n}\r\n');
    assert.equal(formatQmpMessage({ a: [] }, false), '{"a": []}\r\n');
    assert.equal(
      formatQmpMessage('é\u0001"\\\n\u{1F600}\u007f', false),
      '"\\u00E9\\u0001\\"\\\\\\n\\uD83D\\uDE00\\u007F"\r\n',
    );
  });

  test('whatever the value, compact output is one CRLF-terminated line that parses back', () => {
    const json = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        fc.string(),
        fc.integer(),
        fc.boolean(),
        fc.constant(null),
        fc.array(tie('value')),
        fc.dictionary(fc.string(), tie('value')),
      ),
    })).value as fc.Arbitrary<QmpJson>;
    fc.assert(
      fc.property(json, (value) => {
        for (const pretty of [false, true]) {
          const text = formatQmpMessage(value, pretty);
          assert.ok(text.endsWith('\r\n'));
          assert.ok(/^[\x20-\x7e\r\n]*$/.test(text), 'ASCII only');
          if (!pretty) assert.equal(text.indexOf('\n'), text.length - 1);
          assert.deepEqual(JSON.parse(text), JSON.parse(JSON.stringify(value)));
        }
      }),
    );
  });
});

describe('QmpInputSplitter', () => {
  test('splits a JSON stream however it is chunked', () => {
    const stream = '{"execute":"a","id":"}{"}\n  {"execute":"b"}{"x":[1,{"y":"\\""}]} 42 }\n';
    const whole = new QmpInputSplitter().push(stream);
    assert.deepEqual(
      whole.map((i) => i.kind),
      ['value', 'value', 'value', 'value', 'parse-error'],
    );
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 6 }),
        (cuts) => {
          const splitter = new QmpInputSplitter();
          const points = [0, ...[...new Set(cuts)].sort((a, b) => a - b), stream.length];
          const out = points
            .slice(1)
            .flatMap((end, i) => splitter.push(stream.slice(points[i], end)));
          assert.deepEqual(out, whole);
        },
      ),
    );
  });

  test('drops input over the size limit instead of buffering it', () => {
    const splitter = new QmpInputSplitter(100);
    const out = splitter.push(`{"execute":"${'x'.repeat(500)}"}{"execute":"ok"}`);
    assert.deepEqual(
      out.map((i) => i.kind),
      ['too-large', 'value'],
    );
  });
});

describe('answerQmpInput', () => {
  const input = (text: string) => new QmpInputSplitter().push(text)[0]!;
  const answer = (text: string, negotiated: boolean) =>
    formatQmpMessage(answerQmpInput(input(text), negotiated, 'finish-migrate').reply, false).trim();

  test('before and after negotiation', () => {
    assert.equal(
      answer('{"execute":"query-status","id":7}', false),
      '{"id": 7, "error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with \'qmp_capabilities\'"}}',
    );
    assert.equal(
      answerQmpInput(input('{"execute":"qmp_capabilities"}'), false, 'running').negotiated,
      true,
    );
    assert.equal(
      answer('{"execute":"qmp_capabilities"}', true),
      '{"error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete, command ignored"}}',
    );
    assert.equal(
      answer('{"execute":"query-status"}', true),
      '{"return": {"status": "finish-migrate", "running": false}}',
    );
    assert.equal(
      answer('{"execute":"migrate","id":{"a":[1]}}', true),
      '{"id": {"a": [1]}, "error": {"class": "CommandNotFound", "desc": "The command migrate has not been found"}}',
    );
    assert.equal(
      answer('[1]', true),
      '{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}',
    );
    assert.equal(
      answer('{"id":1}', true),
      '{"id": 1, "error": {"class": "GenericError", "desc": "QMP input lacks member \'execute\'"}}',
    );
  });
});
