/**
 * Config files against hostile content, for every service: whatever a YAML or JSON file holds
 * (any JSON value, YAML's own constructs — tags, anchors and alias bombs, merge keys, duplicate
 * keys, deep nesting —, raw bytes, numbers out of range, keys that look like prototypes), reading
 * it the way every command does (`parseCommandArgs` → `readConfigFile` → the service's parse)
 * either gives a valid config or throws TelemetryError CONFIG_INVALID; nothing else escapes.
 *
 * fast-check runs with a fixed seed, so CI sees the same cases every time. A longer run with new
 * cases, for developers: `FUZZ_RUNS=5000 FUZZ_SEED=$RANDOM node --import tsx --test
 * test/io/shared/fuzz-config-file.test.ts` (a failure prints the seed and path to replay).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { collectorConfigSpec, parseCollectorConfig } from '../../../services/collector/config.ts';
import { exporterConfigSpec, parseExporterConfig } from '../../../services/exporter/config.ts';
import { parseProcessorConfig, processorConfigSpec } from '../../../services/processor/config.ts';
import { parseSimulateConfig, simulatorConfigSpec } from '../../../services/simulator/config.ts';
import type { ConfigSources, ConfigSpec } from '../../../services/shared/core/config-spec.ts';
import { isTelemetryError } from '../../../services/shared/core/errors.ts';
import { parseCommandArgs } from '../../../services/shared/io/command-args.ts';

const SEED = Number(process.env['FUZZ_SEED'] ?? 20261202);
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 150);

const SERVICES: { name: string; spec: ConfigSpec; parse: (s: ConfigSources) => unknown }[] = [
  {
    name: 'collector',
    spec: collectorConfigSpec('fuzz-host'),
    parse: (s) => parseCollectorConfig('fuzz-host', s),
  },
  { name: 'processor', spec: processorConfigSpec(), parse: parseProcessorConfig },
  { name: 'exporter', spec: exporterConfigSpec(), parse: parseExporterConfig },
  {
    name: 'simulator',
    spec: simulatorConfigSpec('/tmp'),
    parse: (s) => parseSimulateConfig('/tmp', s),
  },
];

/** The keys each service knows, so that generated files often hit real options. */
const KEYS = [...new Set(SERVICES.flatMap((s) => Object.keys(s.spec)))];

const hostileNumber = fc.oneof(
  fc.double(),
  fc.constantFrom(
    Number.MAX_SAFE_INTEGER + 2,
    -0,
    1e308,
    -1e308,
    2 ** 31,
    2 ** 32 + 1,
    Number.MIN_VALUE,
    0.5,
    -1,
  ),
  fc.integer(),
);
const hostileString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(
    '',
    ' ',
    '__proto__',
    'constructor',
    'toString',
    '0x10',
    '1e400',
    'NaN',
    'Infinity',
    '-0',
    'tcp:',
    'tcp::0',
    '=',
    'a=b=c',
    '127.0.0.1:99999',
    '\u0000',
    '../../etc/passwd',
    'x'.repeat(10_000),
  ),
);
const leaf = fc.oneof(hostileNumber, hostileString, fc.boolean(), fc.constant(null));
const value = fc.letrec((tie) => ({
  any: fc.oneof({ depthSize: 'small' }, leaf, tie('array'), tie('object')),
  array: fc.array(tie('any'), { maxLength: 4 }),
  object: fc.dictionary(fc.oneof(fc.constantFrom(...KEYS), hostileString), tie('any'), {
    maxKeys: 6,
  }),
})).any;
/** A mapping of real keys to hostile values: the validators' own ground. */
const mapping = fc.dictionary(fc.constantFrom(...KEYS), value, { maxKeys: 8 });

const deep = (depth: number, open: string, close: string): string =>
  open.repeat(depth) + close.repeat(depth);

/** YAML constructs that are not plain data; each is also tried once per service. */
const YAML_ODDITIES = [
  // The "billion laughs" alias bomb.
  [
    'a: &a ["x","x","x","x","x","x","x","x","x"]',
    'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
    'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
    'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
    'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
    'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
    'g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]',
    'brokers: *g',
  ].join('\n'),
  'topic: !!js/function "function(){ return 1 }"',
  'topic: !!binary aGVsbG8=',
  'topic: !!timestamp 2001-12-14t21:59:43.10-05:00',
  'httpPort: !!float 1e400',
  'spoolDir: !custom-tag {a: 1}',
  'base: &b {topic: t}\n<<: *b\n',
  'topic: a\ntopic: b\n',
  'topic: *undefined_alias',
  '? [complex, key]\n: value',
  '%YAML 1.1\n---\nhttpPort: 0o777\n',
  '---\ntopic: a\n---\ntopic: b\n',
  '\ufeff{"topic": "bom"}',
  `brokers: ${deep(5000, '[', ']')}`,
  `x: ${deep(5000, '{a: ', '}')}`,
  deep(100_000, '[', ']'),
  '{"__proto__": {"polluted": true}, "constructor": {"prototype": {"x": 1}}}',
  `topic: "${'\\u'.repeat(3)}"`,
  '\t- tab indented',
  'a:\n  - b\n c: d',
];
const yamlOddity = fc.constantFrom(...YAML_ODDITIES);

const file = fc.oneof(
  mapping.map((m) => JSON.stringify(m)),
  mapping.map((m) => stringify(m)),
  value.map((v) => JSON.stringify(v) ?? 'null'),
  value.map((v) => stringify(v)),
  yamlOddity,
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  fc.string({ maxLength: 200 }),
);

describe('config files for every service: a valid config or CONFIG_INVALID, nothing else', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fuzz-config-'));
  const path = join(dir, 'config.yaml');
  after(() => rmSync(dir, { recursive: true, force: true }));

  const check = async (service: (typeof SERVICES)[number], content: string | Buffer) => {
    writeFileSync(path, content);
    try {
      const parsed = await parseCommandArgs(['--config', path], service.spec, { env: {} });
      if (parsed.help) return;
      service.parse(parsed.sources);
    } catch (error) {
      assert.ok(
        isTelemetryError(error, 'CONFIG_INVALID'),
        `expected CONFIG_INVALID, got ${String(error)}`,
      );
    }
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined, 'prototype intact');
  };

  for (const service of SERVICES) {
    test(`${service.name}: every YAML oddity`, async () => {
      for (const content of YAML_ODDITIES) await check(service, content);
    });
    test(`${service.name}: generated files`, async () => {
      await fc.assert(
        fc.asyncProperty(file, (content) => check(service, content)),
        { seed: SEED, numRuns: RUNS },
      );
    });
  }
});
