/**
 * Which QMP sockets the collector reads and how it names their VMs. The VM name is the socket
 * file name without its extension (`/run/vms/web-1.qmp` → `web-1`), as in the event record.
 *
 * An explicit target is `[NAME=]ADDRESS`, ADDRESS being a unix socket path (optionally prefixed
 * `unix:`) or `tcp:HOST:PORT`; a TCP target without NAME is named `HOST:PORT`.
 */
export type QmpAddress =
  { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export interface QmpTarget {
  vm: string;
  address: QmpAddress;
}

export function vmNameOfSocket(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(0, dot) : base;
}

export function parseQmpTarget(text: string): QmpTarget | { problem: string } {
  const eq = text.indexOf('=');
  const named = eq > 0 && !text.slice(0, eq).includes('/');
  const name = named ? text.slice(0, eq) : null;
  const address = named ? text.slice(eq + 1) : text;
  if (address.startsWith('tcp:')) {
    const hostPort = address.slice(4);
    const colon = hostPort.lastIndexOf(':');
    const host = hostPort.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
    const port = Number(hostPort.slice(colon + 1));
    if (colon <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
      return { problem: `"${text}" is not tcp:HOST:PORT` };
    }
    return { vm: name ?? `${host}:${port}`, address: { kind: 'tcp', host, port } };
  }
  const path = address.startsWith('unix:') ? address.slice(5) : address;
  if (path === '') return { problem: `"${text}" has no socket path` };
  return { vm: name ?? vmNameOfSocket(path), address: { kind: 'unix', path } };
}

export function describeAddress(address: QmpAddress): string {
  return address.kind === 'unix' ? address.path : `tcp:${address.host}:${address.port}`;
}
