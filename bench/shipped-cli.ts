/**
 * How the benches launch the CLI: as it ships (the single executable, `npm run package`), as the
 * bundle on the repo's Node.js (dist/vfio-telemetry.cjs, what the npm tarball runs), or from
 * source through tsx (a clone). The executable and the bundle are built here into
 * .cache/bench-artifacts (`infra/package/package.ts --executable-only`), from the working tree.
 *
 * The executable is copied once more before it runs, as installing it (dpkg, a container layer)
 * writes it: how many of a binary's pages a process maps depends on how the file came into the
 * page cache (a file just written by the build can sit in large folios, and one fault then maps a
 * whole folio: the same executable read 71 MiB RSS from the build's file and 52 MiB from a copy).
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = join(ROOT, '.cache/bench-artifacts');

export type CliLaunchKind = 'executable' | 'bundle' | 'source';

export interface CliLaunch {
  readonly kind: CliLaunchKind;
  readonly command: string;
  /** Arguments before the CLI's own (the script for the bundle and the source). */
  readonly prefix: readonly string[];
  /** How BENCHMARKS.md names it. */
  readonly label: string;
}

let built: Promise<void> | undefined;

function buildArtifacts(): Promise<void> {
  built ??= (async () => {
    await mkdir(OUT, { recursive: true });
    await promisify(execFile)(
      process.execPath,
      [
        '--import',
        'tsx',
        'infra/package/package.ts',
        '--out',
        '.cache/bench-artifacts',
        '--executable-only',
      ],
      { cwd: ROOT, timeout: 600_000 },
    );
    await mkdir(join(OUT, 'installed'), { recursive: true });
    await copyFile(join(OUT, 'vfio-telemetry'), join(OUT, 'installed/vfio-telemetry'));
  })();
  return built;
}

/** Builds what `kind` needs (once per process) and says how to run it. */
export async function cliLaunch(kind: CliLaunchKind): Promise<CliLaunch> {
  if (kind === 'source') {
    return {
      kind,
      command: process.execPath,
      prefix: [join(ROOT, 'bin/vfio-telemetry.js')],
      label: '`node bin/vfio-telemetry.js` (source, tsx)',
    };
  }
  await buildArtifacts();
  if (kind === 'bundle') {
    return {
      kind,
      command: process.execPath,
      prefix: [join(OUT, 'vfio-telemetry.cjs')],
      label: '`node dist/vfio-telemetry.cjs` (the bundle)',
    };
  }
  return {
    kind,
    command: join(OUT, 'installed/vfio-telemetry'),
    prefix: [],
    label: '`dist/vfio-telemetry` (the single executable)',
  };
}

/** The launch named by the environment variable `name` (default: the executable). */
export function launchKindFromEnv(name: string): CliLaunchKind {
  const value = process.env[name] ?? 'executable';
  if (value !== 'executable' && value !== 'bundle' && value !== 'source') {
    throw new Error(`${name} must be executable, bundle or source, not "${value}"`);
  }
  return value;
}
