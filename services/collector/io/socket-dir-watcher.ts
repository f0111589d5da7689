/**
 * Watches a directory of QMP unix sockets: a socket that appears is a VM to read, one that
 * vanishes is a VM gone. fs.watch is only a hint (it coalesces, drops events on overflow and is
 * not available everywhere), so the truth is a listing — on every watch event (debounced) and on
 * a fixed interval. Listing uses the directory entries' types, no stat per file, so 1,000
 * sockets cost one readdir.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface SocketDirWatcherOptions {
  dir: string;
  intervalMs: number;
  onAdded(path: string): void;
  onRemoved(path: string): void;
  onError(error: unknown): void;
}

const DEBOUNCE_MS = 20;

export class SocketDirWatcher {
  private readonly options: SocketDirWatcherOptions;
  private readonly known = new Set<string>();
  private watcher: FSWatcher | undefined;
  private interval: NodeJS.Timeout | undefined;
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

  /** Lists the directory once (reporting what it holds), then keeps watching. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.scan();
    this.interval = setInterval(() => void this.scan(), this.options.intervalMs);
    this.startWatch();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.interval);
    clearTimeout(this.debounce);
    this.watcher?.close();
    this.watcher = undefined;
  }

  private startWatch(): void {
    if (this.watcher !== undefined || this.stopped) return;
    try {
      this.watcher = watch(this.options.dir, { persistent: false }, () => {
        clearTimeout(this.debounce);
        this.debounce = setTimeout(() => void this.scan(), DEBOUNCE_MS);
      });
      this.watcher.on('error', () => {
        // The directory went away; the interval listing notices and reports it.
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch {
      // Missing directory: the interval listing retries and reports.
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
      if (this.rescan && !this.stopped) {
        this.rescan = false;
        void this.scan();
      }
    });
    return this.scanning;
  }

  private async list(): Promise<void> {
    let present: Set<string>;
    try {
      const entries = await readdir(this.options.dir, { withFileTypes: true });
      present = new Set(
        entries.filter((e) => e.isSocket()).map((e) => join(this.options.dir, e.name)),
      );
      this.lastScanOk = true;
    } catch (error) {
      this.lastScanOk = false;
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
    this.startWatch();
  }
}
