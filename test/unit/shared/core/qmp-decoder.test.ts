import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { decodeQmpBytes, QmpDecoder } from '../../../../services/shared/core/qmp-decoder.ts';
import { MAX_JSON_DEPTH, type QmpMessage } from '../../../../services/shared/core/qmp-message.ts';

const enc = (s: string): Buffer => Buffer.from(s, 'utf8');
const STOP = '{"timestamp": {"seconds": 1795798179, "microseconds": 276210}, "event": "STOP"}';
const NORMAL_SRC = readFileSync(
  new URL('../../../fixtures/qmp/qemu-7.2/normal-src.qmp', import.meta.url),
);
const PRETTY = readFileSync(
  new URL('../../../fixtures/qmp/vfio/pretty-source.qmp', import.meta.url),
);

function kinds(messages: QmpMessage[]): string[] {
  return messages.map((m) => (m.kind === 'invalid' ? `invalid:${m.reason}` : m.kind));
}

function decodeInChunks(bytes: Buffer, size: number): QmpMessage[] {
  const decoder = new QmpDecoder();
  const out: QmpMessage[] = [];
  for (let i = 0; i < bytes.length; i += size)
    out.push(...decoder.push(bytes.subarray(i, i + size)));
  return [...out, ...decoder.end()];
}

describe('QMP decoder: message kinds', () => {
  test('greeting, return, error, event', () => {
    const messages = decodeQmpBytes(
      enc(
        '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}\r\n' +
          '{"return": {}, "id": 1}\r\n' +
          '{"id": 2, "error": {"class": "CommandNotFound", "desc": "The command x has not been found"}}\r\n' +
          STOP +
          '\r\n',
      ),
    );
    assert.deepEqual(messages, [
      { kind: 'greeting', qemuVersion: '7.2.22', capabilities: ['oob'] },
      { kind: 'return', id: 1, value: {} },
      {
        kind: 'error',
        id: 2,
        errorClass: 'CommandNotFound',
        desc: 'The command x has not been found',
      },
      { kind: 'event', name: 'STOP', timestampMicros: 1795798179276210, data: {} },
    ]);
  });

  test('an event keeps its data, and an unknown event is not rejected', () => {
    const [message] = decodeQmpBytes(
      enc(
        '{"event": "FROM_THE_FUTURE", "data": {"x": [1]}, "timestamp": {"seconds": 5, "microseconds": 999999}}\n',
      ),
    );
    assert.deepEqual(message, {
      kind: 'event',
      name: 'FROM_THE_FUTURE',
      timestampMicros: 5_999_999,
      data: { x: [1] },
    });
  });

  const REJECTED: Array<[string, string]> = [
    ['not json', 'not_json'],
    ['[1, 2]', 'not_object'],
    ['42', 'not_object'],
    ['{"hello": 1}', 'not_qmp'],
    ['{"event": 7, "timestamp": {"seconds": 1, "microseconds": 1}}', 'not_qmp'],
    ['{"event": "STOP"}', 'bad_timestamp'],
    ['{"event": "STOP", "timestamp": {"seconds": -1, "microseconds": -1}}', 'bad_timestamp'],
    ['{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 1000000}}', 'bad_timestamp'],
    ['{"event": "STOP", "timestamp": {"seconds": 1.5, "microseconds": 0}}', 'bad_timestamp'],
    ['{"event": "STOP", "timestamp": {"seconds": "1", "microseconds": 0}}', 'bad_timestamp'],
    ['{"event": "STOP", "data": [], "timestamp": {"seconds": 1, "microseconds": 0}}', 'not_qmp'],
    ['{"event": "STOP", "timestamp": {"seconds": 1, "micro', 'not_json'],
    // The rest of a line after a rejected object is skipped with it: one line, one rejection.
    ['{"a": 1} trailing', 'not_qmp'],
    ['garbage {"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 0}}', 'not_json'],
  ];
  for (const [line, reason] of REJECTED) {
    test(`rejects ${JSON.stringify(line)} as ${reason}, then decodes the next message`, () => {
      const messages = decodeQmpBytes(enc(`${line}\r\n${STOP}\r\n`));
      assert.deepEqual(kinds(messages).slice(-1), ['event']);
      assert.deepEqual(kinds(messages), [`invalid:${reason}`, 'event']);
    });
  }

  test('invalid UTF-8 is rejected and skipped to the next newline', () => {
    const bytes = Buffer.concat([
      enc('{"event": "ST'),
      Buffer.from([0xff, 0xfe]),
      enc(`OP"}\n${STOP}\n`),
    ]);
    assert.deepEqual(kinds(decodeQmpBytes(bytes)), ['invalid:invalid_utf8', 'event']);
    const garbage = Buffer.concat([Buffer.from([0xc3, 0x28]), enc(`\n${STOP}\n`)]);
    assert.deepEqual(kinds(decodeQmpBytes(garbage)), ['invalid:invalid_utf8', 'event']);
  });

  test('valid non-ASCII UTF-8 inside strings is kept', () => {
    const [message] = decodeQmpBytes(enc('{"return": "déjà vu ✓"}\r\n'));
    assert.deepEqual(message, { kind: 'return', id: undefined, value: 'déjà vu ✓' });
  });
});

describe('QMP decoder: framing', () => {
  test('LF and CRLF line ends decode alike', () => {
    const crlf = decodeQmpBytes(NORMAL_SRC);
    const lf = decodeQmpBytes(
      Buffer.from(NORMAL_SRC.toString('latin1').replaceAll('\r\n', '\n'), 'latin1'),
    );
    assert.equal(crlf.length, 20);
    assert.deepEqual(lf, crlf);
  });

  test('pretty=on objects over many lines decode like one-line objects', () => {
    const pretty = decodeQmpBytes(PRETTY);
    const compact = pretty.map((m) => (m.kind === 'event' ? m : null)).filter((m) => m !== null);
    assert.deepEqual(kinds(pretty), [
      'greeting',
      'return',
      'event',
      'event',
      'event',
      'event',
      'event',
    ]);
    assert.equal(compact[1]?.data['device-state'], 'pre-copy-p2p-prepare');
  });

  for (const size of [1, 2, 3, 7, 64, 4096]) {
    test(`chunks of ${size} byte(s) give the same messages as one chunk`, () => {
      assert.deepEqual(decodeInChunks(NORMAL_SRC, size), decodeQmpBytes(NORMAL_SRC));
      assert.deepEqual(decodeInChunks(PRETTY, size), decodeQmpBytes(PRETTY));
    });
  }

  test('a truncated object is abandoned when a new object starts a line', () => {
    const messages = decodeQmpBytes(enc(`{"event": "STOP", "timestamp": {\r\n${STOP}\r\n`));
    assert.deepEqual(kinds(messages), ['invalid:not_json', 'event']);
  });

  test('input that ends inside an object is rejected at end()', () => {
    const decoder = new QmpDecoder();
    assert.deepEqual(decoder.push(enc('{"return": {')), []);
    assert.deepEqual(kinds(decoder.end()), ['invalid:not_json']);
  });

  test('a message is emitted at its closing brace, before any newline arrives', () => {
    const decoder = new QmpDecoder();
    assert.deepEqual(kinds(decoder.push(enc(STOP.slice(0, 20)))), []);
    assert.deepEqual(kinds(decoder.push(enc(STOP.slice(20)))), ['event']);
  });

  test('a message over the limit is rejected without being buffered whole', () => {
    const decoder = new QmpDecoder(1024 * 1024);
    const out: QmpMessage[] = [];
    const filler = enc('x'.repeat(64 * 1024));
    out.push(...decoder.push(enc('{"return": "')));
    let maxPending = 0;
    for (let i = 0; i < 48; i++) {
      out.push(...decoder.push(filler));
      maxPending = Math.max(maxPending, decoder.pendingBytes);
    }
    out.push(...decoder.push(enc(`"}\r\n${STOP}\r\n`)), ...decoder.end());
    assert.deepEqual(kinds(out), ['invalid:too_large', 'event']);
    assert.ok(maxPending <= 1024 * 1024, `held ${maxPending} bytes`);
  });

  test('a one-line message over the limit is rejected whole in one chunk or byte by byte', () => {
    const big = `{"return": "${'x'.repeat(200)}"}\r\n${STOP}\r\n`;
    const whole = new QmpDecoder(100);
    assert.deepEqual(kinds([...whole.push(enc(big)), ...whole.end()]), [
      'invalid:too_large',
      'event',
    ]);
    const bytes = new QmpDecoder(100);
    const out: QmpMessage[] = [];
    for (const byte of enc(big)) out.push(...bytes.push(Buffer.from([byte])));
    assert.deepEqual(kinds([...out, ...bytes.end()]), ['invalid:too_large', 'event']);
  });

  test('a garbage line over the limit is rejected as too large', () => {
    const decoder = new QmpDecoder(1000);
    const messages = [...decoder.push(enc('y'.repeat(5000) + `\n${STOP}\n`)), ...decoder.end()];
    assert.deepEqual(kinds(messages), ['invalid:too_large', 'event']);
  });
});

describe('QMP decoder: properties', () => {
  const validEvent = fc
    .record({
      name: fc.constantFrom('STOP', 'RESUME', 'VFIO_MIGRATION', 'MIGRATION'),
      seconds: fc.integer({ min: 0, max: 4_000_000_000 }),
      micros: fc.integer({ min: 0, max: 999_999 }),
      state: fc.string({ maxLength: 12 }),
    })
    .map(({ name, seconds, micros, state }) => ({
      line: JSON.stringify({
        timestamp: { seconds, microseconds: micros },
        event: name,
        data: { s: state },
      }),
      name,
      timestampMicros: seconds * 1_000_000 + micros,
    }));
  const segment = fc.oneof(
    fc.uint8Array({ maxLength: 40 }).map((bytes) => ({ garbage: Buffer.from(bytes) })),
    fc
      .constantFrom('{', '{"a": "', '{"a": [', '"', '\\', '}', '{"event": "X", ', '\r', '\n', ']')
      .map((s) => ({ garbage: enc(s) })),
    validEvent.map((event) => ({ event })),
  );

  test('random bytes in random chunks never throw, and never lose a valid message that follows a newline', () => {
    fc.assert(
      fc.property(
        fc.array(segment, { maxLength: 25 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 10 }),
        (segments, chunkSizes) => {
          const parts: Buffer[] = [];
          const expected: Array<{ name: string; timestampMicros: number }> = [];
          for (const s of segments) {
            if ('garbage' in s) parts.push(s.garbage);
            else {
              parts.push(enc(`\n${s.event.line}\r\n`));
              expected.push({ name: s.event.name, timestampMicros: s.event.timestampMicros });
            }
          }
          const bytes = Buffer.concat(parts);
          const decoder = new QmpDecoder();
          const out: QmpMessage[] = [];
          for (let i = 0, k = 0; i < bytes.length; k++) {
            const size = chunkSizes[k % chunkSizes.length] as number;
            out.push(...decoder.push(bytes.subarray(i, i + size)));
            i += size;
          }
          out.push(...decoder.end());
          // Every expected event appears, in order (garbage may add messages, never remove them).
          let next = 0;
          for (const m of out) {
            const want = expected[next];
            if (
              want &&
              m.kind === 'event' &&
              m.name === want.name &&
              m.timestampMicros === want.timestampMicros
            )
              next++;
          }
          assert.equal(next, expected.length, `found ${next} of ${expected.length} valid events`);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('QMP decoder: the per-chunk fast path', () => {
  const asciiLine = fc.oneof(
    fc
      .record({
        event: fc.constantFrom('STOP', 'VFIO_MIGRATION'),
        seconds: fc.integer({ min: 0, max: 4_000_000_000 }),
        state: fc.string({ unit: 'binary-ascii', maxLength: 8 }),
      })
      .map(({ event, seconds, state }) =>
        enc(
          `{"timestamp": {"seconds": ${seconds}, "microseconds": 1}, "event": "${event}", "data": ${JSON.stringify({ s: state })}}`,
        ),
      ),
    fc
      .constantFrom(
        '{"return": {}} {"return": {}}',
        '{"event": "X"}}',
        '{"a": [1, 2}',
        '{\r\n  "return": {}\r\n}',
        '{"return": "\\uFFFD"}',
        'not json',
        '[1]',
        '   ',
        '{',
        '}',
      )
      .map(enc),
    fc.uint8Array({ max: 0x7f, maxLength: 12 }).map((bytes) => Buffer.from(bytes)),
  );
  const otherLine = fc.oneof(
    fc.constantFrom('{"return": "déjà vu ✓"}', '{"return": "\uFFFD"}').map(enc),
    fc.uint8Array({ maxLength: 12 }).map((bytes) => Buffer.from(bytes)),
  );
  const streamOf = (line: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer[]> =>
    fc
      .array(fc.tuple(line, fc.constantFrom('\n', '\r\n')), { maxLength: 30 })
      .map((lines) => lines.map(([l, end]) => Buffer.concat([l, enc(end)])));

  test('ASCII input decodes to the same messages whole, in any chunking and byte by byte', () => {
    fc.assert(
      fc.property(streamOf(asciiLine), fc.integer({ min: 1, max: 400 }), (lines, size) => {
        const bytes = Buffer.concat(lines);
        const byteByByte = decodeInChunks(bytes, 1);
        assert.deepEqual(decodeQmpBytes(bytes), byteByByte);
        assert.deepEqual(decodeInChunks(bytes, size), byteByByte);
      }),
      { numRuns: 1000 },
    );
  });

  test('input with non-ASCII bytes decodes whole as it does pushed one line at a time', () => {
    fc.assert(
      fc.property(streamOf(fc.oneof(asciiLine, otherLine)), (lines) => {
        // A line of random bytes may hold newlines of its own: push what lies between them.
        const bytes = Buffer.concat(lines);
        const decoder = new QmpDecoder();
        const lineByLine: QmpMessage[] = [];
        for (let i = 0; i < bytes.length;) {
          const next = bytes.indexOf(0x0a, i) + 1 || bytes.length;
          lineByLine.push(...decoder.push(bytes.subarray(i, next)));
          i = next;
        }
        lineByLine.push(...decoder.end());
        assert.deepEqual(decodeQmpBytes(bytes), lineByLine);
      }),
      { numRuns: 1000 },
    );
  });

  test('an ASCII chunk and the same lines with one non-ASCII line decode alike', () => {
    const ascii = `${STOP}\r\n{"return": {}}\r\n${STOP}\r\n`;
    assert.deepEqual(kinds(decodeQmpBytes(enc(ascii))), ['event', 'return', 'event']);
    const mixed = `${STOP}\r\n{"return": "ü"}\r\n${STOP}\r\n`;
    assert.deepEqual(kinds(decodeQmpBytes(enc(mixed))), ['event', 'return', 'event']);
  });
});

describe('QMP decoder: nesting depth (the walk is skipped only for texts too short to be too deep)', () => {
  // Depth counts the message itself and `data`: arrays add the rest.
  const nested = (depth: number, separator: string): string =>
    `{"event": "X", "timestamp": {"seconds": 1, "microseconds": 2},${separator}"data": {"a": ${'['.repeat(depth - 2)}${']'.repeat(depth - 2)}}}`;

  for (const [name, separator] of [
    ['one line (fast path)', ' '],
    ['over two lines (structural scan)', '\r\n '],
  ] as const) {
    test(`${name}: ${MAX_JSON_DEPTH} levels is an event, ${MAX_JSON_DEPTH + 1} is too_deep`, () => {
      const ok = decodeQmpBytes(Buffer.from(`${nested(MAX_JSON_DEPTH, separator)}\r\n`));
      assert.deepEqual(
        ok.map((m) => m.kind),
        ['event'],
      );
      const deep = decodeQmpBytes(Buffer.from(`${nested(MAX_JSON_DEPTH + 1, separator)}\r\n`));
      assert.deepEqual(
        deep.map((m) => (m.kind === 'invalid' ? m.reason : m.kind)),
        ['too_deep'],
      );
    });
  }

  test('the shortest text that can be too deep is still walked', () => {
    // 1,025 levels (the message and 1,024 arrays as data): a text only a little over the 2,050
    // characters a too-deep message needs.
    const deep = `{"event": "X", "timestamp": {"seconds": 1, "microseconds": 2}, "data": ${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}}`;
    const [message] = decodeQmpBytes(Buffer.from(`${deep}\r\n`));
    assert.equal(message?.kind === 'invalid' && message.reason, 'too_deep');
  });
});
