/**
 * Every shell script the repo ships or runs passes ShellCheck (Debian's, installed by
 * infra/setup-system.sh), following what it sources (-x): the scripts that start and stop
 * brokers, libvirtd and the test services, the CI entry point and the .deb's maintainer
 * scripts. Sourced files carry a `# shellcheck shell=bash` directive, and each disabled check
 * says why next to it.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = join(import.meta.dirname, '../../..');

/** Tracked files that are shell: *.sh, or a sh/bash shebang. */
function shellScripts(): string[] {
  const files = execFileSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' })
    .split('\n')
    .filter((f) => f !== '');
  return files.filter((file) => {
    if (file.endsWith('.sh')) return true;
    let head: string;
    try {
      head = readFileSync(join(ROOT, file), 'latin1').slice(0, 64);
    } catch {
      return false; // a deleted file still listed
    }
    return /^#!\S*(\/|env )(ba)?sh\b/.test(head);
  });
}

function shellcheck(cwd: string, files: string[]): { status: number | null; output: string } {
  const r = spawnSync('shellcheck', ['-x', '--format=gcc', ...files], { cwd, encoding: 'utf8' });
  assert.equal(r.error, undefined, 'shellcheck is missing: run infra/setup-system.sh');
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

test('every shell script passes ShellCheck', () => {
  const scripts = shellScripts();
  for (const expected of [
    '.ci/run',
    'infra/kafka/start.sh',
    'infra/kafka/secure.sh',
    'infra/test.sh',
    'infra/package/deb/postinst',
  ]) {
    assert.ok(scripts.includes(expected), `${expected} is checked`);
  }
  const { status, output } = shellcheck(ROOT, scripts);
  assert.equal(output, '');
  assert.equal(status, 0);
});

test('the check fails on a script with a real bug (an unquoted variable in rm)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shellcheck-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'bad.sh'), '#!/usr/bin/env bash\ndir=$1\nrm -rf $dir/*\n');
  const { status, output } = shellcheck(dir, ['bad.sh']);
  assert.notEqual(status, 0);
  assert.match(output, /SC2086/);
});
