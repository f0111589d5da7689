/**
 * fast-check generators of hostile QMP input, shared by the QMP fuzz suites (the pure path in
 * test/unit/shared/core/fuzz-qmp-events.test.ts, the collector's connection handler in
 * test/io/collector/fuzz-qmp-connection.test.ts): JSON texts with what JSON.stringify never
 * writes (1e400, -0, lone surrogate escapes), nesting up to 3,000 levels, messages over 1 MiB,
 * events with members missing, misplaced or of the wrong type, raw and non-UTF-8 bytes.
 *
 * fast-check runs with a fixed seed, so CI sees the same cases every time; `FUZZ_SEED` and
 * `FUZZ_RUNS` replace the seed and the number of runs for a longer hunt.
 */
import fc from 'fast-check';

export const FUZZ_SEED = Number(process.env['FUZZ_SEED'] ?? 20261202);

/** The number of runs: `ci` unless FUZZ_RUNS says otherwise. */
export function fuzzRuns(ci: number): number {
  return Number(process.env['FUZZ_RUNS'] ?? ci);
}

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
export const message = fc
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
/** One piece of hostile input: mostly messages, some raw bytes, some over the size limit. */
export const piece = fc.oneof(
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
