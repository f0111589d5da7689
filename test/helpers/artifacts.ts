/**
 * The built artifacts (`npm run package`, infra/package/package.ts) for the tests that run what
 * ships. Test files run in parallel processes: the first one builds into .cache/artifacts under
 * an flock, the others wait for it and then find it up to date (the build hashes its inputs), so
 * a test run builds the executable at most once, and not at all when nothing changed.
 */
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OUT = join(ROOT, '.cache/artifacts');

export interface Artifacts {
  /** The single executable. */
  readonly executable: string;
  /** The bundled JavaScript (run with a Node.js). */
  readonly bundle: string;
  readonly tgz: string;
  readonly deb: string;
  readonly version: string;
}

let built: Promise<Artifacts> | undefined;

/** Builds the artifacts if their inputs changed (once per process); resolves with their paths. */
export function builtArtifacts(): Promise<Artifacts> {
  built ??= (async () => {
    await mkdir(OUT, { recursive: true });
    await promisify(execFile)(
      'flock',
      [
        join(OUT, '.build.lock'),
        process.execPath,
        '--import',
        'tsx',
        'infra/package/package.ts',
        '--out',
        '.cache/artifacts',
        '--if-changed',
      ],
      { cwd: ROOT, timeout: 600_000 },
    );
    const { version } = (await import('../../package.json', { with: { type: 'json' } })).default;
    return {
      executable: join(OUT, 'vfio-telemetry'),
      bundle: join(OUT, 'vfio-telemetry.cjs'),
      tgz: join(OUT, `vfio-telemetry-${version}.tgz`),
      deb: join(OUT, `vfio-telemetry_${version}_amd64.deb`),
      version,
    };
  })();
  return built;
}
