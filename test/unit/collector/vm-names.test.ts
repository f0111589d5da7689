import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { duplicateVmNames, VmNames } from '../../../services/collector/core/vm-names.ts';

describe('VmNames', () => {
  it('gives a name to the first source and refuses a second, naming both', () => {
    const names = new VmNames();
    assert.deepEqual(names.claim('web-1', '/run/vms/web-1.qmp'), { ok: true });
    const refused = names.claim('web-1', '/run/vms/web-1.sock');
    assert.equal(refused.ok, false);
    assert.ok(!refused.ok);
    assert.equal(refused.owner, '/run/vms/web-1.qmp');
    assert.match(refused.problem, /web-1\.sock.*web-1\.qmp/);
  });

  it('lets the owner claim again and frees the name only on the owner release', () => {
    const names = new VmNames();
    names.claim('a', 's1');
    assert.deepEqual(names.claim('a', 's1'), { ok: true });
    names.release('a', 's2');
    assert.equal(names.ownerOf('a'), 's1');
    names.release('a', 's1');
    assert.equal(names.size, 0);
    assert.deepEqual(names.claim('a', 's2'), { ok: true });
  });

  it('lists every duplicate among fixed targets', () => {
    const problems = duplicateVmNames([
      { vm: 'x', source: 'tcp:h:1' },
      { vm: 'y', source: '/a/y.qmp' },
      { vm: 'x', source: 'tcp:h:2' },
    ]);
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? '', /tcp:h:2.*tcp:h:1/);
  });
});
