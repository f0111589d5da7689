/** services/cli/start.ts: when and how `collect` is relaunched with a 1 MiB young generation. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { youngGenerationRelaunch } from '../../../services/cli/start.ts';

const node = '/usr/bin/node';

test('collect from source or the bundle: the flag goes on the command line', () => {
  assert.deepEqual(
    youngGenerationRelaunch({
      argv: [node, '/x/vfio-telemetry.cjs', 'collect', '--http-port', '0'],
      execArgv: ['--enable-source-maps'],
      nodeOptions: undefined,
      sea: false,
    }),
    {
      args: [
        node,
        '--max-semi-space-size=1',
        '--enable-source-maps',
        '/x/vfio-telemetry.cjs',
        'collect',
        '--http-port',
        '0',
      ],
      nodeOptions: undefined,
    },
  );
});

test('collect from the single executable: the flag goes into NODE_OPTIONS, argv stays raw', () => {
  assert.deepEqual(
    youngGenerationRelaunch({
      argv: ['/usr/bin/vfio-telemetry', 'vfio-telemetry', 'collect'],
      execArgv: [],
      nodeOptions: '--max-old-space-size=200',
      sea: true,
    }),
    {
      args: ['vfio-telemetry', 'collect'],
      nodeOptions: '--max-old-space-size=200 --max-semi-space-size=1',
    },
  );
});

test('no relaunch for other commands or when the size is already set', () => {
  const base = { execArgv: [], nodeOptions: undefined, sea: true };
  assert.equal(youngGenerationRelaunch({ ...base, argv: [node, 'vt', 'process'] }), null);
  assert.equal(
    youngGenerationRelaunch({
      ...base,
      argv: [node, 'vt', 'collect'],
      nodeOptions: '--max-semi-space-size=4',
    }),
    null,
  );
  assert.equal(
    youngGenerationRelaunch({
      ...base,
      sea: false,
      argv: [node, 'x.js', 'collect'],
      execArgv: ['--max-semi-space-size=2'],
    }),
    null,
  );
});
