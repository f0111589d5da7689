// Fails within a second, naming the Node.js version package.json "engines" asks for and the one
// found, instead of failing later in confusing ways (a script run on the system's Node 20).
// Imported first by the repo's scripts; the shell scripts run it: `node bin/require-node.js NAME`.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Whether VERSION (22.22.0) satisfies RANGE, a `||` of `^X.Y.Z` and `>=X.Y.Z` terms. */
export function satisfies(range, version) {
  const parse = (v) => v.split('.').map(Number);
  const compare = (a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
  const found = parse(version);
  return range.split('||').some((term) => {
    const m = /^\s*(\^|>=)\s*(\d+\.\d+\.\d+)\s*$/.exec(term);
    if (m === null) throw new Error(`unsupported engines term: ${term}`);
    const wanted = parse(m[2]);
    return compare(found, wanted) >= 0 && (m[1] === '>=' || found[0] === wanted[0]);
  });
}

const self = fileURLToPath(import.meta.url);
const name =
  process.argv[1] === self
    ? (process.argv[2] ?? 'vfio-telemetry')
    : basename(process.argv[1] ?? 'node');
const { engines } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
if (!satisfies(engines.node, process.versions.node)) {
  process.stderr.write(
    `${name}: needs Node.js ${engines.node} (package.json "engines"), found ${process.version} ` +
      `at ${process.execPath}. The repo's runtime is node_modules/.bin/node (Node 24, installed by ` +
      `npm ci); npm run and the repo's shell scripts put it first on PATH.\n`,
  );
  process.exit(1);
}
