import assert from 'node:assert/strict';
import { test } from 'node:test';
import { combineReadiness } from '../../../../services/shared/core/readiness.ts';

test('the stage is ready when every part is, with every part’s reasons in order', () => {
  assert.deepEqual(combineReadiness([]), { ready: true, reasons: [] });
  assert.deepEqual(
    combineReadiness([
      { ready: true, reasons: ['consuming partitions 0,1'] },
      { ready: false, reasons: ['kafka: unreachable, spooling', 'libvirt: x not connected'] },
    ]),
    {
      ready: false,
      reasons: [
        'consuming partitions 0,1',
        'kafka: unreachable, spooling',
        'libvirt: x not connected',
      ],
    },
  );
});
