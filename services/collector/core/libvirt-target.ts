/**
 * Where a `--libvirt` option points: the URI name sent in REMOTE_PROC_CONNECT_OPEN and the unix
 * sockets to try, in order (libvirt `docs/uri.rst`, `docs/daemons.rst`):
 *
 *   qemu:///system                    /run/libvirt/virtqemud-sock (modular daemons), then
 *                                     /run/libvirt/libvirt-sock (libvirtd, or virtproxyd)
 *   qemu:///session                   $XDG_RUNTIME_DIR/libvirt/{virtqemud-sock,libvirt-sock}
 *   qemu+unix:///system?socket=PATH   PATH, URI name qemu:///system (same for session)
 *   /PATH                             PATH, no URI name: the daemon opens its default driver
 *
 * The read-only sockets (`libvirt-sock-ro`, `virtqemud-sock-ro`) are never chosen: libvirt
 * refuses QEMU monitor event registration on a read-only connection (`virCheckReadOnlyGoto` in
 * `virConnectDomainQemuMonitorEventRegister`).
 */
export interface LibvirtTarget {
  /** The option as given, used in logs and as the VM-name source prefix. */
  text: string;
  /** URI name for CONNECT_OPEN, null for the daemon's default. */
  name: string | null;
  sockets: readonly string[];
}

const SOCKETS = ['virtqemud-sock', 'libvirt-sock'];

export function parseLibvirtTarget(
  text: string,
  runtimeDir: string | null,
): LibvirtTarget | { problem: string } {
  if (text.startsWith('/')) return { text, name: null, sockets: [text] };
  const match = /^qemu(\+unix)?:\/\/\/(system|session)(\?socket=(\/[^&]+))?$/.exec(text);
  if (match === null) {
    return {
      problem:
        `"${text}" is not qemu:///system, qemu:///session, ` +
        'qemu+unix:///system?socket=PATH or an absolute socket path',
    };
  }
  const mode = match[2] as 'system' | 'session';
  const name = `qemu:///${mode}`;
  const socket = match[4];
  if (socket !== undefined) return { text, name, sockets: [socket] };
  if (match[1] !== undefined) return { problem: `"${text}" needs ?socket=PATH` };
  if (mode === 'system') return { text, name, sockets: SOCKETS.map((s) => `/run/libvirt/${s}`) };
  if (runtimeDir === null || runtimeDir === '') {
    return { problem: `"${text}" needs XDG_RUNTIME_DIR to find the session daemon's socket` };
  }
  return { text, name, sockets: SOCKETS.map((s) => `${runtimeDir}/libvirt/${s}`) };
}

/** The source a domain's VM name is claimed for (core/vm-names.ts). */
export function libvirtSource(target: LibvirtTarget, domain: string): string {
  return `libvirt:${target.text}/${domain}`;
}
