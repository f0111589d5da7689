/**
 * The last resort every stage gets from the stage runner: an uncaught exception or an unhandled
 * rejection is logged, the stage's fatal flush runs, and the process exits 1 — checked in a child
 * process, as the handler ends the process.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

const STAGE_RUNNER = new URL('../../../services/shared/io/stage-runner.ts', import.meta.url).href;

/** A stage that fails as `how` says once started; its fatal flush appends to `flushed`. */
function runFailingStage(t: TestContext, how: string, flushThrows = false) {
  const dir = mkdtempSync(join(tmpdir(), 'last-resort-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const flushed = join(dir, 'flushed');
  const closed = join(dir, 'closed');
  const script = join(dir, 'stage.mts');
  writeFileSync(
    script,
    `import { appendFileSync } from 'node:fs';
import { runStage } from ${JSON.stringify(STAGE_RUNNER)};
const status = await runStage(
  {
    name: 'teststage',
    spec: { logLevel: { type: 'string', default: 'info', doc: 'level' }, shutdownTimeoutMs: { type: 'integer', default: 1000, doc: 'ms' } },
    help: () => 'help',
    configFile: false,
    parseConfig: () => ({ logLevel: 'info', shutdownTimeoutMs: 1000 }),
    start: async () => {
      setTimeout(() => { ${how} }, 20);
      setInterval(() => {}, 1000);
      return {
        stop: () => appendFileSync(${JSON.stringify(closed)}, 'closed\\n'),
        fatalFlush: () => {
          appendFileSync(${JSON.stringify(flushed)}, 'flushed\\n');
          ${flushThrows ? "throw new Error('the flush failed too');" : ''}
        },
      };
    },
  },
  [],
  { write: async (text) => { process.stdout.write(text); }, error: (text) => { process.stderr.write(text); } },
  {},
);
process.stdout.write('runStage returned ' + status + '\\n');
`,
  );
  const run = spawnSync(process.execPath, ['--import', 'tsx', script], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  const read = (path: string): string => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return '';
    }
  };
  const logs = run.stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { run, logs, flushed: read(flushed), closed: read(closed) };
}

for (const [name, how, origin] of [
  ['an uncaught exception', "throw new Error('boom from a timer');", 'uncaughtException'],
  [
    'an unhandled rejection',
    "void Promise.reject(new Error('boom from a promise'));",
    'unhandledRejection',
  ],
] as const) {
  test(`${name}: logged, the fatal flush runs once, exit status 1, no limping on`, (t) => {
    const { run, logs, flushed, closed } = runFailingStage(t, how);
    assert.equal(run.signal, null, 'exited by itself, not killed by the timeout');
    assert.equal(run.status, 1, run.stderr);
    assert.equal(flushed, 'flushed\n');
    assert.equal(closed, '', 'no orderly shutdown: it could wait forever on a broken part');
    assert.doesNotMatch(run.stdout, /runStage returned/);
    const fatal = logs.filter((l) => l['level'] === 'error');
    assert.equal(fatal.length, 1, run.stderr);
    assert.equal(fatal[0]?.['origin'], origin);
    assert.equal(fatal[0]?.['service'], 'teststage');
    assert.match(JSON.stringify(fatal[0]?.['error']), /boom from a/);
  });
}

test('a fatal flush that throws is logged, runs once, and the process still exits 1', (t) => {
  const { run, logs, flushed } = runFailingStage(t, "throw new Error('boom first');", true);
  assert.equal(run.status, 1, run.stderr);
  assert.equal(flushed, 'flushed\n');
  assert.deepEqual(
    logs.filter((l) => l['level'] === 'error').map((l) => l['msg']),
    [
      'A fatal internal error: exiting for the supervisor to restart the stage.',
      'A fatal hook failed.',
    ],
  );
});
