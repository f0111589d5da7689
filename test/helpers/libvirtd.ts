/**
 * A real libvirt session daemon for tests (Debian's libvirt-daemon + libvirt-daemon-driver-qemu
 * 9.0, the QEMU the other tests use, TCG, no KVM). Run as root, the daemon runs as `nobody` (an
 * unprivileged user with a passwd entry); otherwise as the current user. Everything lives under
 * one temp dir: XDG_{CONFIG,CACHE,DATA,RUNTIME}_DIR, qemu.conf with stdio_handler = "file" (no
 * virtlogd), the socket `run/libvirt/libvirt-sock`, domain logs `cache/libvirt/qemu/log/NAME.log`.
 *
 * Started and stopped by PID: `kill()` SIGKILLs the daemon only (its QEMUs keep running, as when
 * libvirtd crashes), `restart()` starts it again on the same dirs (it reconnects to them), and
 * the cleanup SIGKILLs every domain's QEMU (pid files in run/libvirt/qemu/run) and the daemon,
 * then removes the dir.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './wait-for.ts';

const NOBODY = { uid: 65534, gid: 65534 };

export interface Libvirtd {
  dir: string;
  socket: string;
  /** The URI a client (virsh, the collector) opens. */
  uri: string;
  pid(): number;
  /** Runs virsh against the daemon; throws with its stderr when it fails. */
  virsh(...args: string[]): string;
  /** Starts a transient 64 MiB TCG domain without disk or NIC (`virsh create`). */
  createDomain(name: string): void;
  /** The domain's QEMU log (where libvirt writes "Domain id=N is tainted: ..."). */
  domainLog(name: string): string;
  kill(): Promise<void>;
  restart(): Promise<void>;
}

export function domainXml(name: string): string {
  return `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='null'/>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

/** Where the helper registers its cleanup: a test's TestContext, or the bench's own list. */
export interface Cleanup {
  after(fn: () => unknown): void;
}

/** `parent`: where the daemon's temp dir is made (readable by the daemon's user), default tmpdir(). */
export async function startLibvirtd(t: Cleanup, parent = tmpdir()): Promise<Libvirtd> {
  const found = spawnSync('libvirtd', ['--version'], { encoding: 'utf8' });
  assert.equal(found.status, 0, 'libvirtd is missing: run infra/setup-system.sh');
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(parent, 'libvirtd-'));
  for (const sub of ['cfg/libvirt', 'cache', 'data', 'run'])
    mkdirSync(join(dir, sub), { recursive: true });
  writeFileSync(join(dir, 'cfg/libvirt/qemu.conf'), 'stdio_handler = "file"\n');
  if (asRoot) chownTree(dir);
  const socket = join(dir, 'run/libvirt/libvirt-sock');
  const uri = `qemu+unix:///session?socket=${socket}`;
  const env = {
    PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: dir,
    XDG_CONFIG_HOME: join(dir, 'cfg'),
    XDG_CACHE_HOME: join(dir, 'cache'),
    XDG_DATA_HOME: join(dir, 'data'),
    XDG_RUNTIME_DIR: join(dir, 'run'),
  };
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    rmSync(socket, { force: true });
    const [cmd, args] = asRoot
      ? ['setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'libvirtd']]
      : ['libvirtd', []];
    const started = spawn(cmd, args, { env, cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    started.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child = started;
    await waitFor(
      () => {
        if (started.exitCode !== null) throw new Error(`libvirtd exited: ${stderr}`);
        return existsSync(socket) && spawnSync('virsh', ['-c', uri, 'uri']).status === 0;
      },
      { timeoutMs: 30_000, intervalMs: 100, description: 'libvirtd serving its socket' },
    );
  };
  const kill = async (): Promise<void> => {
    const running = child;
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
    const gone = new Promise((resolve) => running.once('exit', resolve));
    process.kill(running.pid as number, 'SIGKILL');
    await gone;
  };

  t.after(async () => {
    await kill();
    const runDir = join(dir, 'run/libvirt/qemu/run');
    for (const file of existsSync(runDir) ? readdirSync(runDir) : []) {
      if (!file.endsWith('.pid') || file === 'driver.pid') continue;
      const pid = Number(readFileSync(join(runDir, file), 'utf8').trim());
      if (Number.isInteger(pid) && pid > 1) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  await start();

  const virsh = (...args: string[]): string => {
    const r = spawnSync('virsh', ['-c', uri, ...args], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`virsh ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  return {
    dir,
    socket,
    uri,
    pid: () => child?.pid ?? -1,
    virsh,
    createDomain(name) {
      const file = join(dir, `${name}.xml`);
      writeFileSync(file, domainXml(name));
      virsh('create', file);
    },
    domainLog: (name) => readFileSync(join(dir, `cache/libvirt/qemu/log/${name}.log`), 'utf8'),
    kill,
    restart: async () => {
      await kill();
      await start();
    },
  };
}

function chownTree(path: string): void {
  chownSync(path, NOBODY.uid, NOBODY.gid);
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) chownTree(child);
    else chownSync(child, NOBODY.uid, NOBODY.gid);
  }
}
