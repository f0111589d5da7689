/**
 * Lists a socket path pattern (`--libvirt-glob`, core/socket-glob.ts) every `intervalMs`: a
 * socket that appears is a daemon to connect to, one that vanishes a daemon gone. KubeVirt
 * creates each launcher's socket under a new pod directory, several levels below the one place
 * an inotify watch could sit, so the truth is a listing, on a timer: one readdir per wildcard
 * directory and one lstat per candidate socket, a few hundred system calls a second on a node
 * with a hundred VMs at the default interval.
 *
 * A directory that vanishes mid-listing is simply not there (ENOENT); one that cannot be read
 * (EACCES, EIO) is reported and keeps what it held at the last listing, so a transient error
 * never closes a daemon's connection.
 */
import type { Dirent } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { segmentMatches, type SocketGlob } from '../core/socket-glob.ts';

export interface SocketGlobWatcherOptions {
  glob: SocketGlob;
  intervalMs: number;
  onAdded(path: string): void;
  onRemoved(path: string): void;
  onError(path: string, error: unknown): void;
}

/** A missing path is no match, not a problem. */
function isAbsence(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export class SocketGlobWatcher {
  private readonly options: SocketGlobWatcherOptions;
  private readonly known = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private listing: Promise<void> | undefined;
  private stopped = true;
  private rootListed = false;

  constructor(options: SocketGlobWatcherOptions) {
    this.options = options;
  }

  get pattern(): string {
    return this.options.glob.text;
  }

  /** Started and the pattern's root directory could be listed last time. */
  get running(): boolean {
    return !this.stopped && this.rootListed;
  }

  /** Sockets matched at the last listing. */
  get matched(): number {
    return this.known.size;
  }

  /** Lists once (reporting what matches), then every `intervalMs`. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.list();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** One listing at a time; the next is scheduled when it ends. */
  private list(): Promise<void> {
    this.listing ??= this.walk().finally(() => {
      this.listing = undefined;
      if (!this.stopped) this.timer = setTimeout(() => void this.list(), this.options.intervalMs);
    });
    return this.listing;
  }

  private async walk(): Promise<void> {
    const { glob } = this.options;
    const failed: string[] = [];
    const readable = async (dir: string): Promise<Dirent[] | null> => {
      try {
        return await readdir(dir, { withFileTypes: true });
      } catch (error) {
        if (!isAbsence(error)) {
          failed.push(dir);
          this.options.onError(dir, error);
        }
        return null;
      }
    };
    let paths = [glob.root];
    // The root's listing tells whether the pattern can be watched at all; it is also the first
    // wildcard's (the root is the literal part before it).
    const rootEntries = await readable(glob.root);
    this.rootListed = rootEntries !== null;
    const last = glob.segments.length - 1;
    for (const [index, segment] of glob.segments.entries()) {
      const final = index === last;
      const next: string[] = [];
      for (const dir of paths) {
        if (segment.kind === 'literal') {
          next.push(join(dir, segment.name));
          continue;
        }
        const entries = index === 0 ? rootEntries : await readable(dir);
        for (const entry of entries ?? []) {
          if (!segmentMatches(segment, entry.name)) continue;
          // Directories on the way (kubelet's are real ones, links are followed by the next
          // readdir); sockets at the end.
          const fits = final ? entry.isSocket() : entry.isDirectory() || entry.isSymbolicLink();
          if (fits) next.push(join(dir, entry.name));
        }
      }
      paths = next;
    }
    const present = new Set<string>();
    const lastSegment = glob.segments[last];
    for (const path of paths) {
      if (lastSegment?.kind === 'match') {
        present.add(path);
        continue;
      }
      try {
        if ((await lstat(path)).isSocket()) present.add(path);
      } catch (error) {
        if (!isAbsence(error)) {
          failed.push(path);
          this.options.onError(path, error);
        }
      }
    }
    if (this.stopped) return;
    const underFailed = (path: string): boolean =>
      failed.some((dir) => path === dir || path.startsWith(`${dir}/`));
    for (const path of this.known) {
      if (!present.has(path) && !underFailed(path)) {
        this.known.delete(path);
        this.options.onRemoved(path);
      }
    }
    for (const path of present) {
      if (!this.known.has(path)) {
        this.known.add(path);
        this.options.onAdded(path);
      }
    }
  }
}
