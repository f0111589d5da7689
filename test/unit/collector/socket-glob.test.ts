import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  parseSocketGlob,
  segmentMatches,
  type SocketGlob,
} from '../../../services/collector/core/socket-glob.ts';

const KUBEVIRT =
  '/var/lib/kubelet/pods/*/volumes/kubernetes.io~empty-dir/libvirt-runtime/virtqemud-sock';

function parsed(text: string): SocketGlob {
  const glob = parseSocketGlob(text);
  assert.ok(!('problem' in glob), JSON.stringify(glob));
  return glob;
}

test("KubeVirt's launcher sockets: a literal root, then the wildcard and the literal rest", () => {
  const glob = parsed(KUBEVIRT);
  assert.equal(glob.root, '/var/lib/kubelet/pods');
  assert.deepEqual(
    glob.segments.map((s) => s.kind),
    ['match', 'literal', 'literal', 'literal', 'literal'],
  );
  assert.deepEqual(glob.segments[4], { kind: 'literal', name: 'virtqemud-sock' });
});

test('* matches any run within one segment, ? one character; regex characters are literal', () => {
  const [star] = parsed('/run/*-sock').segments;
  assert.ok(star !== undefined);
  assert.ok(segmentMatches(star, 'virtqemud-sock'));
  assert.ok(segmentMatches(star, '-sock'));
  assert.ok(!segmentMatches(star, 'virtqemud-sock-ro'));
  const [one] = parsed('/run/vm?.sock').segments;
  assert.ok(one !== undefined);
  assert.ok(segmentMatches(one, 'vm1.sock'));
  assert.ok(!segmentMatches(one, 'vm12.sock'));
  assert.ok(!segmentMatches(one, 'vm1xsock'), '. is a literal dot');
  const [plus] = parsed('/run/a+(b)*').segments;
  assert.ok(plus !== undefined);
  assert.ok(segmentMatches(plus, 'a+(b)c'));
  assert.ok(!segmentMatches(plus, 'aa(b)c'));
});

test("a leading dot is matched only by a pattern that starts with one (kubelet's ..data)", () => {
  const [star] = parsed('/pods/*/x').segments;
  assert.ok(star !== undefined);
  assert.ok(!segmentMatches(star, '..data'));
  assert.ok(!segmentMatches(star, '.hidden'));
  const [dotted] = parsed('/pods/.*/x').segments;
  assert.ok(dotted !== undefined);
  assert.ok(segmentMatches(dotted, '.hidden'));
});

test('refused patterns say why', () => {
  const problem = (text: string): string => {
    const glob = parseSocketGlob(text);
    assert.ok('problem' in glob, `${text} should be refused`);
    return glob.problem;
  };
  assert.match(problem('pods/*/sock'), /not an absolute path/);
  assert.match(problem('/run/libvirt/virtqemud-sock'), /no \* or \?: use --libvirt/);
  assert.match(problem('/*/sock'), /would list \//);
  assert.match(problem('/pods/**/sock'), /\*\* is not supported/);
  assert.match(problem('/pods/[ab]/sock'), /only \* and \?/);
  assert.match(problem('/pods//*/sock'), /empty, "\." or "\.\." segment/);
  assert.match(problem('/pods/../*/sock'), /empty, "\." or "\.\." segment/);
});

test('qemu+unix:///MODE?socket=PATTERN names the URI each daemon found is opened with', () => {
  const session = parsed(`qemu+unix:///session?socket=${KUBEVIRT}`);
  assert.equal(session.name, 'qemu:///session');
  assert.equal(session.root, '/var/lib/kubelet/pods');
  assert.equal(session.text, `qemu+unix:///session?socket=${KUBEVIRT}`);
  assert.equal(parsed('/run/*/sock').name, null, 'a bare pattern: the daemon picks its driver');
  assert.equal(parsed('qemu+unix:///system?socket=/run/*/sock').name, 'qemu:///system');
  const bad = parseSocketGlob('qemu+unix:///session?socket=relative/*/sock');
  assert.ok('problem' in bad && /not an absolute path/.test(bad.problem));
});
