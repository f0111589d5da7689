/**
 * The layer rules of docs/architecture.md, checked on every import in services/. ESLint keeps
 * `core/` free of Node built-ins and globals; this test keeps the arrows between folders pointing
 * down: cli → stages → shared, and io → core inside each of them.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';

const ROOT = new URL('../../', import.meta.url).pathname;
const STAGES = ['collector', 'processor', 'exporter', 'simulator'];

interface Module {
  /** Path from the repo root, `services/...`. */
  readonly file: string;
  /** `cli`, `shared` or a stage. */
  readonly area: string;
  readonly layer: 'core' | 'io' | 'top';
}

function moduleOf(file: string): Module {
  const parts = file.split('/');
  const area = parts[1] ?? '';
  const layer = parts.includes('core') ? 'core' : parts.includes('io') ? 'io' : 'top';
  return { file, area, layer };
}

const isCommand = (file: string): boolean => /(^|\/)(main|[a-z-]+-command)\.ts$/.test(file);

/** Why `from` may not import `specifier` (resolved to `to`, or a package), or null when it may. */
function layerViolation(from: Module, specifier: string, to: Module | null): string | null {
  if (from.area === 'cli') return null;
  if (to === null) {
    return from.layer === 'core' && !specifier.startsWith('node:')
      ? 'core/ imports no packages (no RxJS, no Kafka client): adapters live in io/'
      : null;
  }
  if (from.layer === 'core') {
    const ownCore = to.layer === 'core' && (to.area === from.area || to.area === 'shared');
    return ownCore ? null : "core/ imports only its own stage's core/ and services/shared/core/";
  }
  if (to.area === 'cli')
    return 'nothing outside services/cli imports services/cli (it sits on top)';
  if (from.area === 'shared' && to.area !== 'shared')
    return 'services/shared imports no stage (every stage builds on it, not the reverse)';
  if (STAGES.includes(from.area) && to.area !== from.area && to.area !== 'shared')
    return 'a stage imports only itself and services/shared, never another stage';
  if (from.layer === 'io' && isCommand(to.file))
    return 'io/ never imports main.ts or a command file (they wire io/, not the reverse)';
  return null;
}

function importsOf(source: string): string[] {
  return ts.preProcessFile(source, true, true).importedFiles.map((f) => f.fileName);
}

function servicesFiles(): string[] {
  return readdirSync(join(ROOT, 'services'), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => `services/${f}`)
    .sort();
}

test('no import in services/ crosses a layer (docs/architecture.md)', () => {
  const problems: string[] = [];
  for (const file of servicesFiles()) {
    const from = moduleOf(file);
    for (const specifier of importsOf(readFileSync(join(ROOT, file), 'utf8'))) {
      const relativeImport = specifier.startsWith('.');
      const target = relativeImport ? normalize(join(dirname(file), specifier)) : null;
      if (target !== null && !target.startsWith('services/')) {
        problems.push(`${file} imports '${specifier}': services/ imports nothing outside it`);
        continue;
      }
      const why = layerViolation(from, specifier, target === null ? null : moduleOf(target));
      if (why !== null) problems.push(`${file} imports '${specifier}': ${why}`);
    }
  }
  assert.deepEqual(problems, [], `layer violations:\n  ${problems.join('\n  ')}`);
});

test('the rules catch each kind of crossing', () => {
  const m = (file: string): Module => moduleOf(file);
  const cases: [string, string, string | null, boolean][] = [
    ['services/collector/core/a.ts', './b.ts', 'services/collector/core/b.ts', true],
    ['services/collector/core/a.ts', '../../shared/core/x.ts', 'services/shared/core/x.ts', true],
    ['services/collector/core/a.ts', '../io/spool.ts', 'services/collector/io/spool.ts', false],
    [
      'services/collector/core/a.ts',
      '../../processor/core/x.ts',
      'services/processor/core/x.ts',
      false,
    ],
    ['services/collector/core/a.ts', 'rxjs', null, false],
    ['services/collector/io/a.ts', '../main.ts', 'services/collector/main.ts', false],
    ['services/collector/io/a.ts', '../../cli/main.ts', 'services/cli/main.ts', false],
    ['services/collector/main.ts', '../exporter/config.ts', 'services/exporter/config.ts', false],
    ['services/shared/io/a.ts', '../../collector/core/x.ts', 'services/collector/core/x.ts', false],
    ['services/collector/main.ts', './io/spool.ts', 'services/collector/io/spool.ts', true],
    ['services/cli/replay/r.ts', '../../processor/core/x.ts', 'services/processor/core/x.ts', true],
  ];
  for (const [from, specifier, to, allowed] of cases) {
    const why = layerViolation(m(from), specifier, to === null ? null : m(to));
    assert.equal(why === null, allowed, `${from} → ${specifier}: ${why ?? 'allowed'}`);
  }
  assert.deepEqual(importsOf("import type { A } from './a.ts';\nexport * from '../b.ts';"), [
    './a.ts',
    '../b.ts',
  ]);
});
