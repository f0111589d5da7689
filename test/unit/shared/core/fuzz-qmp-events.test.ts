/**
 * QMP events with hostile content, through everything the collector and `replay` run on them:
 * the decoder (in random chunks), the record builder, the Avro event codec, the event model and
 * the transition engine. Content: nesting up to 3,000 levels, strings up to 20 KB, messages over 1 MiB and with
 * escapes, lone surrogates and raw non-UTF-8 bytes, numbers out of range (1e400, -0, 2^53 + 1,
 * fractions, negatives) in the timestamp and the data, timestamps far in the future or the past,
 * members missing or of the wrong type. Nothing throws; each message is one event or one
 * rejection with a known reason; every record encodes and decodes back to itself; and an event
 * that follows on the next line always gets through.
 *
 * fast-check runs with a fixed seed, so CI sees the same cases every time. A longer run with new
 * cases, for developers: `FUZZ_RUNS=20000 FUZZ_SEED=$RANDOM node --import tsx --test
 * test/unit/shared/core/fuzz-qmp-events.test.ts` (a failure prints the seed and path to replay).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { buildEventRecord } from '../../../../services/shared/core/event-record-builder.ts';
import { QmpDecoder } from '../../../../services/shared/core/qmp-decoder.ts';
import { REJECT_REASONS, type QmpMessage } from '../../../../services/shared/core/qmp-message.ts';
import { TransitionEngine } from '../../../../services/shared/core/transition-engine.ts';
import { vmEventFromRecord } from '../../../../services/shared/core/vm-event.ts';
import { createEventCodec } from '../../../../services/shared/io/avro-codec.ts';

const SEED = Number(process.env['FUZZ_SEED'] ?? 20261202);
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 400);

const codec = createEventCodec();
const KNOWN_REASONS = new Set<string>(REJECT_REASONS);

/** JSON number text, including what JSON.stringify never writes. */
const numberText = fc.oneof(
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
  fc.constantFrom(
    '1e400',
    '-1e400',
    '-0',
    '0.0',
    '1.5',
    '9007199254740993',
    '18446744073709551616',
    '4952000000',
    '99999999999',
    '-1',
    '1e-400',
    '1E3',
  ),
);
const stringText = fc.oneof(
  fc.string({ maxLength: 30 }).map((s) => JSON.stringify(s)),
  fc.string({ unit: 'grapheme', maxLength: 20 }).map((s) => JSON.stringify(s)),
  fc.constantFrom(
    '"\\ud800"',
    '"\\udfff\\ud800"',
    '"\\u0000"',
    '"pre-copy-p2p-prepare"',
    '"-prepare"',
    '"/machine/peripheral/vf0"',
    '""',
  ),
  fc.integer({ min: 1, max: 20_000 }).map((n) => `"${'x'.repeat(n)}"`),
);
const leafText = fc.oneof(numberText, stringText, fc.constantFrom('true', 'false', 'null'));
const valueText: fc.Arbitrary<string> = fc.letrec<{ v: string }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leafText,
    fc.array(tie('v'), { maxLength: 4 }).map((items) => `[${items.join(',')}]`),
    fc
      .array(fc.tuple(stringText, tie('v')), { maxLength: 4 })
      .map((members) => `{${members.map(([k, v]) => `${k}:${v}`).join(',')}}`),
  ),
})).v;
const nested = fc
  .tuple(fc.integer({ min: 1, max: 3000 }), fc.boolean())
  .map(([depth, arrays]) =>
    arrays
      ? '['.repeat(depth) + ']'.repeat(depth)
      : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth),
  );
const dataText = fc.oneof(
  valueText,
  nested.map((n) => `{"deep":${n}}`),
  fc
    .record({
      qomPath: fc.oneof(stringText, numberText),
      state: fc.oneof(stringText, nested),
      id: fc.oneof(stringText, fc.constant('null')),
    })
    .map(
      ({ qomPath, state, id }) =>
        `{"qom-path":${qomPath},"device-state":${state},"device-id":${id}}`,
    ),
);
const timestampText = fc.oneof(
  fc.tuple(numberText, numberText).map(([s, us]) => `{"seconds":${s},"microseconds":${us}}`),
  fc
    .tuple(fc.integer({ min: 0, max: 9_007_199_254 }), fc.integer({ min: 0, max: 999_999 }))
    .map(([s, us]) => `{"seconds":${s},"microseconds":${us}}`),
  valueText,
  nested,
);
const eventName = fc.oneof(
  fc.constantFrom('VFIO_MIGRATION', 'MIGRATION', 'SHUTDOWN', 'STOP', 'RESUME'),
  stringText,
  numberText,
);
/** One hostile message: members in any order, any of them missing. */
const message = fc
  .record(
    { event: eventName, timestamp: timestampText, data: dataText, extra: valueText },
    { requiredKeys: [] },
  )
  .chain((members) =>
    fc
      .shuffledSubarray(Object.entries(members), { minLength: Object.keys(members).length })
      .map((entries) => `{${entries.map(([k, v]) => `"${k}":${v}`).join(',')}}`),
  );
const rawBytes = fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b));
/** Over the 1 MiB message limit, as one string or as a flood of members. */
const huge = fc.constantFrom(
  `{"event":"X","timestamp":{"seconds":1,"microseconds":0},"data":{"s":"${'x'.repeat(1_100_000)}"}}`,
  `{"event":"X","timestamp":{"seconds":1,"microseconds":0},"data":{${Array.from({ length: 120_000 }, (_, i) => `"k${i}":1`).join(',')}}}`,
);
const piece = fc.oneof(
  { weight: 6, arbitrary: message.map((m) => Buffer.from(m)) },
  { weight: 1, arbitrary: rawBytes },
  { weight: 1, arbitrary: huge.map((m) => Buffer.from(m)) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(message, fc.nat(), fc.integer({ min: 0x80, max: 0xff }))
      .map(([m, at, byte]) => {
        const b = Buffer.from(m);
        if (b.length > 0) b[at % b.length] = byte;
        return b;
      }),
  },
);

const SENTINEL =
  '{"event":"SENTINEL","timestamp":{"seconds":1795798000,"microseconds":1},"data":{"n":1}}';

function decodeInChunks(bytes: Buffer, chunkSizes: readonly number[]): QmpMessage[] {
  const decoder = new QmpDecoder();
  const out: QmpMessage[] = [];
  for (let i = 0, k = 0; i < bytes.length; k++) {
    const size = chunkSizes[k % chunkSizes.length] as number;
    out.push(...decoder.push(bytes.subarray(i, i + size)));
    i += size;
  }
  out.push(...decoder.end());
  return out;
}

test('hostile QMP events: decoded, built, encoded and applied without a throw; the next line always gets through', () => {
  fc.assert(
    fc.property(
      fc.array(piece, { minLength: 1, maxLength: 6 }),
      fc.array(fc.integer({ min: 1, max: 4096 }), { minLength: 1, maxLength: 4 }),
      (pieces, chunkSizes) => {
        const bytes = Buffer.concat(pieces.flatMap((p) => [p, Buffer.from(`\r\n${SENTINEL}\r\n`)]));
        const messages = decodeInChunks(bytes, chunkSizes);
        const engine = new TransitionEngine();
        let sentinels = 0;
        for (const m of messages) {
          if (m.kind === 'invalid') {
            assert.ok(KNOWN_REASONS.has(m.reason), m.reason);
            assert.ok(m.detail.length <= 80, 'details are excerpts');
            continue;
          }
          if (m.kind !== 'event') continue;
          if (m.name === 'SENTINEL') sentinels++;
          assert.ok(Number.isSafeInteger(m.timestampMicros) && m.timestampMicros >= 0);
          const record = buildEventRecord(
            {
              host: 'h',
              vm: 'vm',
              sessionId: 's',
              sequence: 1,
              receivedMicros: 1_795_798_000_000_000,
            },
            m,
          );
          if ('kind' in record) {
            assert.ok(KNOWN_REASONS.has(record.reason), record.reason);
            continue;
          }
          const decoded = codec.decode(codec.encode(record));
          assert.equal(decoded.kind, 'record');
          assert.deepEqual(decoded.kind === 'record' ? { ...decoded.value } : null, record);
          const event = vmEventFromRecord(record);
          if (event.kind !== 'invalid') engine.apply(event);
        }
        engine.finish();
        assert.equal(sentinels, pieces.length, 'the event on the next line after each piece');
      },
    ),
    { seed: SEED, numRuns: RUNS },
  );
});
