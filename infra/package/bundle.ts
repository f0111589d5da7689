/**
 * `npm run build`: the CLI as one JavaScript file, dist/vfio-telemetry.cjs (+ .map), which the
 * single executable, the npm package and the .deb run. esbuild bundles services/cli/bundle-entry.ts
 * with every dependency, strips the types, and embeds what the stages read at run time
 * (services/shared/io/packaged-files.ts): the Avro schemas, the live page, the version and the
 * git commit. CommonJS, because Node 24's single executable runs a CommonJS main.
 *
 *   node --import tsx infra/package/bundle.ts [--out DIR]
 */
import '../../bin/require-node.js';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { lazyBuiltins, lazyKafkaValidators, lazyWasmUtils } from './bundle-plugins.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Repo-relative files the bundle carries (services/shared/io/packaged-files.ts reads them). */
async function embeddedFiles(): Promise<Record<string, string>> {
  const page = (await readdir(join(ROOT, 'services/exporter/page'))).map(
    (f) => `services/exporter/page/${f}`,
  );
  const schemas = (await readdir(join(ROOT, 'schemas')))
    .filter((f) => f.endsWith('.avsc'))
    .map((f) => `schemas/${f}`);
  const files: Record<string, string> = {};
  for (const path of ['package.json', ...schemas, ...page].sort()) {
    files[path] = await readFile(join(ROOT, path), 'utf8');
  }
  return files;
}

/** The commit built: VFIO_BUILD_COMMIT (a container build has no .git), else git's HEAD. */
function gitCommit(): string {
  const given = process.env['VFIO_BUILD_COMMIT'];
  if (given !== undefined && given !== '') return given;
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    return `${commit.trim()}${dirty.trim() === '' ? '' : '-dirty'}`;
  } catch {
    return 'unknown';
  }
}

export interface BundleResult {
  readonly file: string;
  readonly version: string;
  readonly commit: string;
}

/** Bundles the CLI into OUT/vfio-telemetry.cjs; returns its path, version and commit. */
export async function bundleCli(
  out: string,
  entry = join(ROOT, 'services/cli/bundle-entry.ts'),
): Promise<BundleResult> {
  const files = await embeddedFiles();
  const version = (JSON.parse(files['package.json'] ?? '{}') as { version: string }).version;
  const commit = gitCommit();
  await mkdir(out, { recursive: true });
  const file = join(out, 'vfio-telemetry.cjs');
  const result = await build({
    entryPoints: [entry],
    outfile: file,
    bundle: true,
    platform: 'node',
    target: 'node22.22',
    format: 'cjs',
    sourcemap: 'linked',
    sourcesContent: false,
    legalComments: 'linked',
    // Smaller and ASCII only: V8 keeps a script's source in memory for the process's life, as a
    // two-byte string if a single character is above U+00FF (a few in comments were enough).
    // Names are kept (no minifyIdentifiers): stack traces stay readable without the map.
    minifyWhitespace: true,
    minifySyntax: true,
    charset: 'ascii',
    plugins: [lazyBuiltins(), lazyKafkaValidators(), lazyWasmUtils()],
    logLevel: 'warning',
    // import.meta.url in a CommonJS bundle: the bundle's own file.
    banner: {
      js: '#!/usr/bin/env node\nconst __vfio_import_meta_url = require("node:url").pathToFileURL(__filename).href;',
    },
    // The wasm-utils entry reads native.wasm next to its file at import; its `bundled` entry
    // carries the same module inline.
    alias: { '@platformatic/wasm-utils': '@platformatic/wasm-utils/bundled' },
    define: {
      'import.meta.url': '__vfio_import_meta_url',
      VFIO_EMBEDDED_FILES: JSON.stringify(files),
      VFIO_BUILD: JSON.stringify({ version, commit }),
      'process.env.NODE_ENV': '"production"',
    },
  });
  if (result.errors.length > 0) throw new Error(`esbuild failed: ${result.errors.length} errors`);
  return { file, version, commit };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string', default: 'dist' } } });
  const { file, version, commit } = await bundleCli(join(process.cwd(), values.out));
  console.log(`bundle: ${file} (vfio-telemetry ${version}, commit ${commit})`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
