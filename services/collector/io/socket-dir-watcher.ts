/**
 * Watches a directory of QMP unix sockets: a socket that appears is a VM to read, one that
 * vanishes is a VM gone.
 *
 * The directory is watched with fs.watch (inotify): a change triggers a listing (debounced), so a
 * new socket is picked up within milliseconds and an idle host costs no wakeups. fs.watch is only
 * a hint — it coalesces, drops events when its queue overflows, and watches an inode, not a path —
 * so the truth is always a listing, and a safety listing runs every `intervalMs` (30 s by default)
 * to catch anything a lost event hid. While the directory cannot be watched (it is missing or
 * unreadable, or was replaced by a new directory of the same name), it is listed every
 * `unwatchedIntervalMs` instead until the watch is back. Listing uses the directory entries'
 * types, no stat per file, so 1,000 sockets cost one readdir.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface SocketDirWatcherOptions {
  dir: string;
  /** Safety listing behind fs.watch. */
  intervalMs: number;
  /** Listing period while the directory cannot be watched; default 1000 (or `intervalMs` if less). */
  unwatchedIntervalMs?: number;
  onAdded(path: string): void;
  onRemoved(path: string): void;
  onError(error: unknown): void;
}

const DEBOUNCE_MS = 20;
const UNWATCHED_INTERVAL_MS = 1000;

export class SocketDirWatcher {
  private readonly options: SocketDirWatcherOptions;
  private readonly known = new Set<string>();
  private watcher: FSWatcher | undefined;
  /** Inode of the directory the watcher is on: a new directory at the same path needs a new watch. */
  private watchedInode: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private rescan = false;
  private stopped = true;
  private lastScanOk = false;

  constructor(options: SocketDirWatcherOptions) {
    this.options = options;
  }

  /** Started and the last listing succeeded. */
  get running(): boolean {
    return !this.stopped && this.lastScanOk;
  }

  /** Whether fs.watch is on the directory (false: it is being listed every `unwatchedIntervalMs`). */
  get watching(): boolean {
    return this.watcher !== undefined;
  }

  /** Lists the directory once (reporting what it holds), then keeps watching. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.scan();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.debounce);
    this.unwatch();
  }

  private unwatch(): void {
    this.watcher?.close();
    this.watcher = undefined;
    this.watchedInode = undefined;
  }

  private watch(inode: number): void {
    if (this.stopped) return;
    if (this.watcher !== undefined && this.watchedInode === inode) return;
    this.unwatch();
    try {
      this.watcher = watch(this.options.dir, { persistent: false }, () => {
        clearTimeout(this.debounce);
        this.debounce = setTimeout(() => void this.scan(), DEBOUNCE_MS);
      });
      this.watchedInode = inode;
      // A socket created between the listing and the watch raised no event: list once more.
      this.rescan = true;
      this.watcher.on('error', () => {
        // The directory went away or cannot be read: list it now, which reports the problem and
        // falls back to frequent listings until a watch can be set up again.
        this.unwatch();
        void this.scan();
      });
    } catch {
      // Unwatchable (e.g. out of inotify watches): frequent listings stand in for the watch.
      this.unwatch();
    }
  }

  /** One listing at a time; a request during a listing runs one more afterwards. */
  private scan(): Promise<void> {
    if (this.scanning !== undefined) {
      this.rescan = true;
      return this.scanning;
    }
    this.scanning = this.list().finally(() => {
      this.scanning = undefined;
      if (this.stopped) return;
      if (this.rescan) {
        this.rescan = false;
        void this.scan();
        return;
      }
      this.scheduleListing();
    });
    return this.scanning;
  }

  /** The next listing: the safety one while watched, a frequent one while not. */
  private scheduleListing(): void {
    clearTimeout(this.timer);
    const { intervalMs, unwatchedIntervalMs = UNWATCHED_INTERVAL_MS } = this.options;
    const delay =
      this.watcher === undefined ? Math.min(intervalMs, unwatchedIntervalMs) : intervalMs;
    this.timer = setTimeout(() => void this.scan(), delay);
  }

  private async list(): Promise<void> {
    const { dir } = this.options;
    let present: Set<string>;
    let inode: number | undefined;
    try {
      // The inode first: a directory replaced after it is listed again on the new watch's event.
      inode = (await stat(dir)).ino;
      const entries = await readdir(dir, { withFileTypes: true });
      present = new Set(entries.filter((e) => e.isSocket()).map((e) => join(dir, e.name)));
      this.lastScanOk = true;
    } catch (error) {
      this.lastScanOk = false;
      this.unwatch();
      this.options.onError(error);
      present = new Set();
    }
    if (this.stopped) return;
    for (const path of this.known) {
      if (!present.has(path)) {
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
    if (inode !== undefined) this.watch(inode);
  }
}
