import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { isTelemetryError } from '../../../services/shared/core/errors.ts';
import type { EventRecord } from '../../../services/shared/core/event-record.ts';
import type {
  DwellRecord,
  PrepareRecord,
} from '../../../services/shared/core/transition-record.ts';
import {
  createCodec,
  createEventCodec,
  createTransitionCodec,
  fingerprintHex,
  parsingCanonicalForm,
} from '../../../services/shared/io/avro-codec.ts';
import type { AvroSchema } from '../../../services/shared/io/avro-codec.ts';

const EVENT_V2_SCHEMA = JSON.parse(
  readFileSync(new URL('../../fixtures/avro/vfio-event-v2.avsc', import.meta.url), 'utf8'),
) as AvroSchema;

const MICROS = 1_800_000_000_123_456;

function vfioEvent(overrides: Partial<EventRecord> = {}): EventRecord {
  return {
    host: 'host-a',
    vm: 'vm1',
    sessionId: '6f1c2d3e-0000-4000-8000-1234567890ab',
    sequence: 7,
    qemuTimestampMicros: MICROS,
    receivedMicros: MICROS + 250,
    event: 'VFIO_MIGRATION',
    qomPath: '/machine/peripheral/hostdev0/vfio-pci',
    deviceId: 'hostdev0',
    deviceState: 'pre-copy-p2p-prepare',
    migrationStatus: null,
    data: null,
    ...overrides,
  };
}

/** avsc decodes into instances of a generated record class; compare the fields only. */
function fieldsOf(value: object): Record<string, unknown> {
  return { ...value };
}

void test('event records round-trip, state names verbatim', () => {
  const codec = createEventCodec();
  const records: EventRecord[] = [
    vfioEvent(),
    vfioEvent({ deviceState: 'pre-copy-p3p-prepare', sequence: 8 }),
    vfioEvent({ deviceState: 'postcopy-device', deviceId: '' }),
    vfioEvent({
      event: 'MIGRATION',
      qomPath: null,
      deviceId: null,
      deviceState: null,
      migrationStatus: 'postcopy-device',
    }),
    vfioEvent({
      event: 'SHUTDOWN',
      qomPath: null,
      deviceId: null,
      deviceState: null,
      data: '{"guest":false,"reason":"host-qmp-quit"}',
    }),
    // avsc's largest long without precision loss: 2^53 - 2.
    vfioEvent({ qemuTimestampMicros: 9_007_199_254_740_990, receivedMicros: 0, sequence: 1 }),
    vfioEvent({ host: 'hôte-é', vm: 'vm ✓' }),
  ];
  for (const record of records) {
    const frame = codec.encode(record);
    assert.deepEqual([...frame.subarray(0, 2)], [0xc3, 0x01]);
    const result = codec.decode(frame);
    assert.equal(result.kind, 'record');
    assert.deepEqual(result.kind === 'record' && fieldsOf(result.value), record);
  }
});

void test('timestamps decode as plain numbers, not Dates', () => {
  const codec = createEventCodec();
  const result = codec.decode(codec.encode(vfioEvent()));
  assert.equal(result.kind === 'record' && result.value.qemuTimestampMicros, MICROS);
  assert.equal(result.kind === 'record' && typeof result.value.receivedMicros, 'number');
});

void test('transition records round-trip; fields the variant lacks come back null', () => {
  const codec = createTransitionCodec();
  const prepare: PrepareRecord = {
    type: 'prepare',
    host: 'host-a',
    vm: 'vm1',
    qomPath: '/machine/peripheral/hostdev0/vfio-pci',
    deviceId: 'hostdev0',
    target: 'pre-copy-p3p',
    prepareState: 'pre-copy-p3p-prepare',
    outcome: 'completed',
    next: 'pre-copy-p3p',
    seconds: 0.012345,
    startMicros: MICROS,
    endMicros: MICROS + 12_345,
  };
  const timedOut: PrepareRecord = {
    ...prepare,
    target: 'pre-copy-p2p',
    prepareState: 'pre-copy-p2p-prepare',
    outcome: 'timed_out',
    next: null,
    seconds: null,
    endMicros: null,
  };
  const dwell: DwellRecord = {
    type: 'dwell',
    host: 'host-a',
    vm: 'vm1',
    qomPath: '/machine/peripheral/hostdev0/vfio-pci',
    deviceId: '',
    state: 'running-p2p',
    next: 'stop-copy',
    seconds: 3.5,
    startMicros: MICROS,
    endMicros: MICROS + 3_500_000,
  };
  const absent = { target: null, prepareState: null, outcome: null, state: null, sessionId: null };
  for (const record of [prepare, timedOut, dwell]) {
    const result = codec.decode(codec.encode(record));
    assert.equal(result.kind, 'record');
    assert.deepEqual(result.kind === 'record' && fieldsOf(result.value), {
      ...absent,
      ...record,
    });
  }
});

void test('an invalid record is a programmer error: encode throws AVRO_INVALID_RECORD', () => {
  const codec = createEventCodec();
  const bad: unknown[] = [
    { ...vfioEvent(), host: null },
    { ...vfioEvent(), sequence: 1.5 },
    { ...vfioEvent(), qemuTimestampMicros: 2 ** 60 },
    { ...vfioEvent(), deviceState: 7 },
  ];
  for (const record of bad) {
    assert.throws(
      () => codec.encode(record as EventRecord),
      (error: unknown) => isTelemetryError(error, 'AVRO_INVALID_RECORD'),
    );
  }
});

void test('a record larger than the scratch buffer is encoded whole', () => {
  const codec = createEventCodec();
  const record = vfioEvent({ data: 'x'.repeat(100_000) });
  const result = codec.decode(codec.encode(record));
  assert.deepEqual(result.kind === 'record' && fieldsOf(result.value), record);
  const small = vfioEvent();
  assert.deepEqual(fieldsOf((codec.decode(codec.encode(small)) as { value: object }).value), small);
});

void test('Parsing Canonical Form follows the spec (schema-tests.txt cases)', () => {
  // Inputs and canonical forms from apache/avro share/test/data/schema-tests.txt.
  const cases: readonly [input: AvroSchema, canonical: string][] = [
    [{ type: 'int' }, '"int"'],
    [['int', { type: 'boolean' }], '["int","boolean"]'],
    [
      { fields: [], type: 'record', name: 'foo', namespace: 'x.y' },
      '{"name":"x.y.foo","type":"record","fields":[]}',
    ],
    [
      { fields: [], type: 'record', name: 'a.b.foo', namespace: 'x.y' },
      '{"name":"a.b.foo","type":"record","fields":[]}',
    ],
    [
      { fields: [], type: 'record', name: 'foo', doc: 'foo', aliases: ['foo', 'bar'] },
      '{"name":"foo","type":"record","fields":[]}',
    ],
    [
      {
        fields: [
          { type: 'boolean', aliases: [], name: 'f1', default: true },
          { order: 'descending', name: 'f2', doc: 'Hello', type: 'int' },
        ],
        type: 'record',
        name: 'foo',
      } as AvroSchema, // avsc's typings lack field aliases; the spec's default "true" made valid
      '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}',
    ],
    [
      { namespace: 'x.y.z', type: 'enum', name: 'foo', doc: 'foo bar', symbols: ['A1', 'A2'] },
      '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}',
    ],
    [
      { namespace: 'x.y.z', type: 'fixed', name: 'foo', doc: 'foo bar', size: 32 },
      '{"name":"x.y.z.foo","type":"fixed","size":32}',
    ],
    [{ items: { type: 'null' }, type: 'array' }, '{"type":"array","items":"null"}'],
    [{ values: 'string', type: 'map' }, '{"type":"map","values":"string"}'],
    [
      {
        name: 'PigValue',
        type: 'record',
        fields: [{ name: 'value', type: ['null', 'int', 'long', 'PigValue'] }],
      },
      '{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}',
    ],
    // Not in schema-tests.txt: [STRIP] keeps only parsing attributes, so logicalType goes too.
    [{ type: 'long', logicalType: 'timestamp-micros' }, '"long"'],
  ];
  for (const [input, canonical] of cases) assert.equal(parsingCanonicalForm(input), canonical);
});

void test('the PCF and fingerprint of vfio-event.avsc are pinned', () => {
  const codec = createEventCodec();
  assert.equal(
    codec.canonicalForm,
    '{"name":"io.vfiotelemetry.v1.EventRecord","type":"record","fields":[' +
      '{"name":"host","type":"string"},{"name":"vm","type":"string"},' +
      '{"name":"sessionId","type":"string"},{"name":"sequence","type":"long"},' +
      '{"name":"qemuTimestampMicros","type":"long"},{"name":"receivedMicros","type":"long"},' +
      '{"name":"event","type":"string"},{"name":"qomPath","type":["null","string"]},' +
      '{"name":"deviceId","type":["null","string"]},{"name":"deviceState","type":["null","string"]},' +
      '{"name":"migrationStatus","type":["null","string"]},{"name":"data","type":["null","string"]}]}',
  );
  assert.equal(fingerprintHex(codec.fingerprint), '6d42139b06b4edff');
});

void test('the PCF and fingerprint of vfio-transition.avsc are pinned', () => {
  const codec = createTransitionCodec();
  assert.equal(
    codec.canonicalForm,
    '{"name":"io.vfiotelemetry.v1.TransitionRecord","type":"record","fields":[' +
      '{"name":"type","type":"string"},{"name":"host","type":"string"},' +
      '{"name":"vm","type":"string"},{"name":"qomPath","type":"string"},' +
      '{"name":"deviceId","type":"string"},{"name":"target","type":["null","string"]},' +
      '{"name":"prepareState","type":["null","string"]},{"name":"outcome","type":["null","string"]},' +
      '{"name":"state","type":["null","string"]},{"name":"next","type":["null","string"]},' +
      '{"name":"seconds","type":["null","double"]},{"name":"startMicros","type":"long"},' +
      '{"name":"endMicros","type":["null","long"]},{"name":"sessionId","type":["null","string"]}]}',
  );
  assert.equal(fingerprintHex(codec.fingerprint), 'b7f3f78e5d3caaa1');
});

void test('every field of both schemas has a doc and no state is an enum', () => {
  for (const file of ['vfio-event.avsc', 'vfio-transition.avsc']) {
    const text = readFileSync(new URL(`../../../schemas/${file}`, import.meta.url), 'utf8');
    const schema = JSON.parse(text) as { doc?: string; fields: { name: string; doc?: string }[] };
    assert.ok(schema.doc, file);
    for (const field of schema.fields) assert.ok(field.doc, `${file} ${field.name}`);
    assert.doesNotMatch(text, /"enum"/);
  }
});

void test('evolution: a reader with an added optional field reads old data and gets the default', () => {
  const v1 = createEventCodec();
  const v2 = createCodec<EventRecord & { collectorVersion: string | null }>({
    writer: EVENT_V2_SCHEMA,
    knownWriters: [v1.type],
  });
  assert.notEqual(v2.fingerprint, v1.fingerprint);
  const result = v2.decode(v1.encode(vfioEvent()));
  assert.equal(result.kind, 'record');
  assert.deepEqual(result.kind === 'record' && fieldsOf(result.value), {
    ...vfioEvent(),
    collectorVersion: null,
  });
});

void test('evolution: an old reader reads new data once it knows the new writer schema', () => {
  const v2 = createCodec<EventRecord & { collectorVersion: string | null }>({
    writer: EVENT_V2_SCHEMA,
  });
  const frame = v2.encode({
    ...vfioEvent({ deviceState: 'pre-copy-p3p-prepare' }),
    collectorVersion: '2.0.0',
  });

  const v1 = createEventCodec({ knownWriters: [EVENT_V2_SCHEMA] });
  const result = v1.decode(frame);
  assert.equal(result.kind, 'record');
  assert.deepEqual(
    result.kind === 'record' && fieldsOf(result.value),
    vfioEvent({ deviceState: 'pre-copy-p3p-prepare' }),
  );

  const unaware = createEventCodec().decode(frame);
  assert.equal(unaware.kind, 'invalid');
  assert.equal(unaware.kind === 'invalid' && unaware.reason, 'unknown_schema');
  assert.equal(unaware.kind === 'invalid' && unaware.code, 'AVRO_UNKNOWN_SCHEMA');
  assert.equal(unaware.kind === 'invalid' && unaware.fingerprint, fingerprintHex(v2.fingerprint));
});

void test('a known writer schema that cannot be resolved is a config error', () => {
  assert.throws(
    () =>
      createEventCodec({
        knownWriters: [
          { type: 'record', name: 'EventRecord', fields: [{ name: 'x', type: 'int' }] },
        ],
      }),
    (error: unknown) => isTelemetryError(error, 'CONFIG_INVALID'),
  );
});

void test('poison: bad frames, unknown schemas, truncated and padded bodies are invalid', () => {
  const codec = createEventCodec();
  const frame = codec.encode(vfioEvent());
  const expectInvalid = (bytes: Uint8Array, reason: string, code: string): void => {
    const result = codec.decode(bytes);
    assert.equal(result.kind, 'invalid', `${reason}: ${Buffer.from(bytes).toString('hex')}`);
    assert.equal(result.kind === 'invalid' && result.reason, reason);
    assert.equal(result.kind === 'invalid' && result.code, code);
  };

  expectInvalid(new Uint8Array(0), 'short_frame', 'AVRO_BAD_FRAME');
  expectInvalid(Buffer.from('{"host":"host-a"}'), 'bad_marker', 'AVRO_BAD_FRAME');
  expectInvalid(frame.subarray(0, 9), 'short_frame', 'AVRO_BAD_FRAME');

  const unknown = Buffer.from(frame);
  unknown[9] = unknown[9]! ^ 0xff;
  expectInvalid(unknown, 'unknown_schema', 'AVRO_UNKNOWN_SCHEMA');

  for (let end = 10; end < frame.length; end++) {
    expectInvalid(frame.subarray(0, end), 'truncated_body', 'AVRO_INVALID_RECORD');
  }
  expectInvalid(Buffer.concat([frame, Buffer.from([0])]), 'trailing_bytes', 'AVRO_INVALID_RECORD');

  // host, vm, sessionId empty; then a sequence varint beyond 2^53.
  const overflow = Buffer.concat([
    frame.subarray(0, 10),
    Buffer.from([0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
  ]);
  const result = codec.decode(overflow);
  assert.equal(result.kind === 'invalid' && result.reason, 'bad_body');
  assert.ok(result.kind === 'invalid' && isTelemetryError(result.error, 'AVRO_INVALID_RECORD'));
});

void test('poison: a plain Uint8Array decodes like a Buffer', () => {
  const codec = createEventCodec();
  const frame = Uint8Array.from(codec.encode(vfioEvent()));
  assert.equal(codec.decode(frame).kind, 'record');
});

void test('poison: random bytes, with or without a valid header, never throw', () => {
  const codec = createEventCodec();
  const header = codec.encode(vfioEvent()).subarray(0, 10);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (body, framed) => {
      const bytes = framed ? Buffer.concat([header, body]) : body;
      const result = codec.decode(bytes);
      assert.ok(result.kind === 'record' || result.kind === 'invalid');
    }),
    { seed: 20240917, numRuns: 5000 },
  );
});
