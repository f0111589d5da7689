/**
 * The files the stages read at run time besides their code — the Avro schemas (`schemas/`), the
 * live page (`services/exporter/page/`) and `package.json` — and what this build is.
 *
 * From a clone they are read from the source tree. The built artifacts (the single executable, the
 * npm package, the .deb) carry no source tree: `npm run build` (infra/package/bundle.ts) embeds
 * the same files into the bundle by defining `VFIO_EMBEDDED_FILES` and `VFIO_BUILD`, which do not
 * exist when running from source.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { TelemetryError } from '../core/errors.ts';

/** Repo-relative path → contents (text files only), defined by the bundler. */
declare const VFIO_EMBEDDED_FILES: Readonly<Record<string, string>> | undefined;
/** What was built, defined by the bundler. */
declare const VFIO_BUILD: { readonly version: string; readonly commit: string } | undefined;

export interface BuildInfo {
  readonly version: string;
  /** The git commit built, or `unknown` outside a git checkout. */
  readonly commit: string;
  /** `bundle` for a built artifact, `source` when tsx runs the TypeScript sources. */
  readonly from: 'bundle' | 'source';
  readonly node: string;
}

/** True when running from the built bundle (the executable, the npm package), not from a clone. */
export function runsFromBundle(): boolean {
  return typeof VFIO_EMBEDDED_FILES !== 'undefined';
}

function sourceRoot(): URL {
  return new URL('../../../', import.meta.url);
}

/**
 * A file of the repo by its path from the repo root (`schemas/vfio-event.avsc`): embedded in a
 * build, read from the source tree otherwise. Throws FILE_UNREADABLE.
 */
export function readPackagedFile(path: string): Buffer {
  if (typeof VFIO_EMBEDDED_FILES !== 'undefined') {
    const text = VFIO_EMBEDDED_FILES[path];
    if (text === undefined) {
      throw new TelemetryError('FILE_UNREADABLE', 'The file is not part of this build.', {
        details: { path },
      });
    }
    return Buffer.from(text, 'utf8');
  }
  try {
    return readFileSync(new URL(path, sourceRoot()));
  } catch (cause) {
    throw new TelemetryError('FILE_UNREADABLE', 'The file cannot be read.', {
      cause,
      details: { path },
    });
  }
}

/** The version, commit and runtime of this process (for `vfio-telemetry --version`). */
export function buildInfo(): BuildInfo {
  const node = process.version;
  if (typeof VFIO_BUILD !== 'undefined') return { ...VFIO_BUILD, from: 'bundle', node };
  const pkg = JSON.parse(readPackagedFile('package.json').toString('utf8')) as { version: string };
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd: sourceRoot(),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    // Not a git checkout (an unpacked tarball of the sources): the version is all there is.
  }
  return { version: pkg.version, commit, from: 'source', node };
}
