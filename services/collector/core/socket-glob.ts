/**
 * Socket path patterns for `--libvirt-glob`: an absolute path whose segments may hold `*` (any
 * run of characters but `/`) and `?` (one character), as a shell's glob. KubeVirt puts each
 * virt-launcher's libvirt socket under a directory named by the pod's uid, so the collector
 * cannot name the sockets in advance; it lists the pattern instead (io/socket-glob-watcher.ts).
 *
 * No `**`, no character classes, no dot rule beyond the shell's: a leading `.` is only matched by
 * a pattern segment that starts with `.` (kubelet's `..data` links must not match `*`).
 */

export type GlobSegment = { kind: 'literal'; name: string } | { kind: 'match'; pattern: RegExp };

export interface SocketGlob {
  /** The option as given. */
  text: string;
  /**
   * The libvirt URI name to open on each daemon found, from `qemu+unix:///MODE?socket=PATTERN`;
   * null for a bare pattern (the daemon's default driver).
   */
  name: string | null;
  /** The longest literal directory the pattern starts with, e.g. `/var/lib/kubelet/pods`. */
  root: string;
  /** The segments after `root`, at least one. */
  segments: readonly GlobSegment[];
}

const WILDCARD = /[*?]/;

/**
 * `PATTERN` or `qemu+unix:///system?socket=PATTERN` (or `session`: KubeVirt's launchers run
 * their daemon as a session daemon of the qemu user) as a glob, or the reason it is not one.
 */
export function parseSocketGlob(option: string): SocketGlob | { problem: string } {
  const uri = /^qemu\+unix:\/\/\/(system|session)\?socket=(.*)$/.exec(option);
  const glob = parsePattern(uri?.[2] ?? option);
  if ('problem' in glob) return glob;
  return { ...glob, text: option, name: uri === null ? null : `qemu:///${uri[1]}` };
}

function parsePattern(text: string): Omit<SocketGlob, 'name'> | { problem: string } {
  if (!text.startsWith('/')) return { problem: `"${text}" is not an absolute path` };
  if (/[[\]{}]/.test(text)) return { problem: `"${text}": only * and ? are supported` };
  const parts = text.split('/').slice(1);
  if (parts.some((p) => p === '' || p === '.' || p === '..')) {
    return { problem: `"${text}" has an empty, "." or ".." segment` };
  }
  if (parts.some((p) => p.includes('**'))) return { problem: `"${text}": ** is not supported` };
  const first = parts.findIndex((p) => WILDCARD.test(p));
  if (first === -1) return { problem: `"${text}" has no * or ?: use --libvirt for one socket` };
  if (first === 0) return { problem: `"${text}" starts with a wildcard: it would list /` };
  const root = `/${parts.slice(0, first).join('/')}`;
  const segments = parts.slice(first).map(segmentOf);
  return { text, root, segments };
}

function segmentOf(part: string): GlobSegment {
  if (!WILDCARD.test(part)) return { kind: 'literal', name: part };
  const body = part
    .split('')
    .map((c) => (c === '*' ? '[^/]*' : c === '?' ? '[^/]' : c.replace(/[.+^$(){}|\\]/g, '\\$&')))
    .join('');
  return { kind: 'match', pattern: new RegExp(`^${body}$`) };
}

/** Whether a directory entry's name matches a segment (a leading `.` only by a `.` pattern). */
export function segmentMatches(segment: GlobSegment, name: string): boolean {
  if (segment.kind === 'literal') return segment.name === name;
  if (name.startsWith('.') && !segment.pattern.source.startsWith('^\\.')) return false;
  return segment.pattern.test(name);
}
