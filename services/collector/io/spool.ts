/**
 * The collector's spool: a write-ahead log of every accepted event, bounded by bytes.
 *
 * Layout of `dir`:
 *   00000000000000000001.seg   segment files of entries (core/spool-entry.ts), in id order
 *   ack                        JSON {segment, offset}: everything before it is acknowledged by Kafka
 *   lock                       the holder's PID: one process per spool directory (spool-lock.ts)
 *
 * Writes: `append` queues an entry and the queue is written with ONE write call per event-loop
 * turn (group commit), so a burst from 1,000 VMs costs one syscall. Written data is in the page
 * cache at once — a SIGKILL of the collector loses nothing written — and `fdatasync` runs
 * `fsyncIntervalMs` after a write (with an fsync of the directory after a segment was created),
 * so an OS crash or power loss loses at most that interval. The sync timer is armed by a write or
 * an ack and stops once nothing is left to sync: an idle spool costs no wakeups. Between `append`
 * and the write there is at most one event-loop turn; an event counts as accepted (`written`)
 * once written. A write that fails (the segment cannot be opened: ENOENT, EACCES, EMFILE,
 * ENOSPC; or the write itself) drops that group commit, counted as `spool_io`, and the next one
 * tries again; it never throws. Every I/O error in the background (the acknowledged position,
 * the directory fsync, deleting a segment) is reported through `ioFailed`, never ignored and
 * never thrown. A failed fdatasync is not retried (Linux has marked the failed pages clean, so a
 * retry would report success): the entries written since the last successful sync are reported
 * as lost through `syncFailed` (see `syncSegment`).
 *
 * Reads: the sender reads batches from the acknowledged position in order and calls `ack` with
 * the longest prefix of a batch that Kafka has stored (one position, not a set: an entry is only
 * acknowledged with everything before it); the position is persisted (temp file, fdatasync,
 * rename, fsync of the directory) by the sync timer at most once a second (once per fsync
 * interval when that is longer; `ACK_PERSIST_INTERVAL_MS`), so a crash resends at most that much
 * of what Kafka already stored (at-least-once; the processor dedupes by session and sequence).
 * Writing it costs eight system calls with two fsyncs, ten times a second at a trickle before
 * this bound; the data's own fdatasync still runs every fsync interval. Segments wholly
 * before the acknowledged position are deleted, and only once that position is on disk: `ack`
 * persists it at once when a segment is to go.
 *
 * Bound: when the bytes on disk plus the queue would exceed `maxBytes`, the NEW entry is refused
 * (drop newest): what is already spooled keeps its order and is never overwritten.
 *
 * Recovery on open: the tail of the last segment is checked entry by entry; a torn or
 * zero-filled tail (a crash in the middle of a write) is detected by length/CRC and truncated.
 * A corrupt entry elsewhere (disk damage) costs the damaged entries only: reading resumes at the
 * next whole entry (`resumeAfterDamage`), and each damaged stretch is counted as `spool_corrupt`
 * (one entry when its length field survived, which is exact; at least one otherwise).
 */
import { join } from 'node:path';
import { isTelemetryError, TelemetryError } from '../../shared/core/errors.ts';
import {
  ENTRY_HEADER_BYTES,
  encodedEntryLength,
  encodeSpoolEntries,
  MAX_ENTRY_BODY_BYTES,
  readSpoolEntry,
  resumeAfterDamage,
  unwritableEntry,
  type SpoolEntry,
} from '../core/spool-entry.ts';
import { nodeSpoolFs, type SpoolFs } from './spool-fs.ts';
import {
  lockSpoolDir,
  procProbe,
  spoolUnwritable,
  type HeldSpoolLock,
  type ProcessProbe,
} from './spool-lock.ts';

export interface SpoolPosition {
  segment: number;
  offset: number;
}

export interface SpoolBatch {
  entries: SpoolEntry[];
  /** Position after each entry: `ends[i]` is where the spool stands once entries 0..i are acked. */
  ends: SpoolPosition[];
  /** Position after the last entry (past any damage skipped after it); pass the batch to `ack`. */
  end: SpoolPosition;
}

/** What the spool reports; the collector's telemetry implements it. */
export interface SpoolEvents {
  written(count: number, bytes: number): void;
  /** `keys` are the message keys of the dropped entries when they are known. */
  dropped(
    reason: 'spool_full' | 'spool_io' | 'spool_corrupt' | 'invalid_record',
    count: number,
    detail?: unknown,
    keys?: readonly string[],
  ): void;
  recovered(events: number, bytes: number): void;
  tornTailTruncated(segment: number, offset: number, bytes: number): void;
  changed(events: number, bytes: number): void;
  /**
   * Background I/O failed (fdatasync, the acknowledged position, deleting a segment); what it
   * protects is tried again at the next interval.
   */
  ioFailed?(what: string, error: unknown): void;
  /**
   * fdatasync of a segment failed: the `events` entries written to it since its last successful
   * sync (of the message keys `keys`) are treated as lost. They are not synced again (see the file
   * comment, "fsyncgate"); they are still sent if the page cache serves them.
   */
  syncFailed?(segment: number, events: number, keys: readonly string[], error: unknown): void;
  /** The lock of a collector that died was taken over at open. */
  staleLockTakenOver?(pid: number): void;
}

export interface SpoolOptions {
  dir: string;
  maxBytes: number;
  segmentBytes: number;
  fsyncIntervalMs: number;
  events: SpoolEvents;
  /** The file system; node:fs unless a test injects faults. */
  fs?: SpoolFs;
  /** How the lock's holder is looked at; /proc unless a test passes its own. */
  probe?: ProcessProbe;
}

interface Segment {
  id: number;
  size: number;
  fd: number | null;
  /** Entries written since the segment's last fdatasync began, and their message keys. */
  unsynced: { events: number; keys: Set<string> };
}

const nothingUnsynced = (): Segment['unsynced'] => ({ events: 0, keys: new Set() });

const READ_CHUNK_BYTES = 256 * 1024;
const MAX_READ_BYTES = ENTRY_HEADER_BYTES + MAX_ENTRY_BODY_BYTES;
const ACK_FILE = 'ack';
/**
 * The sync timer persists a moved acknowledged position at most this often (see the file
 * comment). A position that lets a segment go is persisted at once (`ack`), and `close` and an
 * explicit `syncNow()` persist it too.
 */
const ACK_PERSIST_INTERVAL_MS = 1000;
/** A timer may fire a little before `performance.now()` says its delay has passed. */
const TIMER_SLACK_MS = 5;

const segmentName = (id: number): string => `${String(id).padStart(20, '0')}.seg`;

export class Spool {
  private readonly options: SpoolOptions;
  private readonly fs: SpoolFs;
  private lock: HeldSpoolLock | null = null;
  private readonly segments: Segment[] = [];
  private ackPos: SpoolPosition = { segment: 0, offset: 0 };
  private ackDirty = false;
  private queue: SpoolEntry[] = [];
  private queueBytes = 0;
  private flushScheduled = false;
  private syncDirty = false;
  /** A segment file was created since the directory was last fsynced. */
  private dirDirty = false;
  private syncTimer: NodeJS.Timeout | undefined;
  /** When the armed sync timer fires (`performance.now()` ms). */
  private syncDueAtMs = 0;
  /** When the acknowledged position was last written (`performance.now()` ms). */
  private ackPersistedAtMs = Number.NEGATIVE_INFINITY;
  private unackedEvents = 0;
  private diskBytes = 0;
  private waiters: (() => void)[] = [];
  private closed = false;
  private full = false;

  private constructor(options: SpoolOptions) {
    this.options = options;
    this.fs = options.fs ?? nodeSpoolFs;
  }

  /**
   * Opens (or creates) the spool in `dir` and takes its lock, recovering what a previous run
   * left. Throws SPOOL_LOCKED while another live process holds the directory and
   * SPOOL_UNWRITABLE when the directory cannot be written (its message names the errno and the
   * path): both are for an operator to fix, so the collector exits 2 and is not restarted.
   */
  static open(options: SpoolOptions): Spool {
    const spool = new Spool(options);
    const { dir } = options;
    try {
      spool.fs.mkdirSync(dir, { recursive: true });
    } catch (error) {
      throw spoolUnwritable(dir, error);
    }
    spool.lock = lockSpoolDir(dir, spool.fs, options.probe ?? procProbe);
    if (spool.lock.tookOverFrom !== null) {
      options.events.staleLockTakenOver?.(spool.lock.tookOverFrom.pid);
    }
    try {
      spool.recover();
    } catch (error) {
      spool.releaseFiles();
      throw isTelemetryError(error) ? error : spoolUnwritable(dir, error);
    }
    return spool;
  }

  /** Events written and not yet acknowledged. */
  get pendingEvents(): number {
    return this.unackedEvents;
  }

  get bytesOnDisk(): number {
    return this.diskBytes;
  }

  /** False from a refused append until acknowledged segments free space again. */
  get accepting(): boolean {
    return !this.closed && !this.full;
  }

  /**
   * Queues an entry for the next group commit; false when it was dropped (spool full, or an entry
   * the format cannot hold: a key over 65,535 bytes), counted through `dropped`.
   */
  append(entry: SpoolEntry): boolean {
    if (this.closed) throw new TelemetryError('INTERNAL', 'append to a closed spool');
    const unwritable = unwritableEntry(entry);
    if (unwritable !== null) {
      this.options.events.dropped('invalid_record', 1, unwritable, [entry.key]);
      return false;
    }
    const size = encodedEntryLength(entry.key, entry.value);
    if (this.diskBytes + this.queueBytes + size > this.options.maxBytes) {
      this.full = true;
      this.options.events.dropped('spool_full', 1, undefined, [entry.key]);
      return false;
    }
    this.queue.push(entry);
    this.queueBytes += size;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return true;
  }

  /** Writes the queue now (one write call). */
  flush(): void {
    this.flushScheduled = false;
    if (this.queue.length === 0 || this.closed) return;
    // Written or not, this may leave something to sync (data, or a new segment's directory entry).
    this.scheduleSync(this.options.fsyncIntervalMs);
    const entries = this.queue;
    this.queue = [];
    this.queueBytes = 0;
    const bytes = encodeSpoolEntries(entries);
    let segment = this.lastSegment();
    if (segment.size > 0 && segment.size + bytes.length > this.options.segmentBytes) {
      segment = this.roll();
    }
    let fd: number | undefined;
    try {
      fd = this.writeFd(segment);
      let written = 0;
      while (written < bytes.length) {
        written += this.fs.writeSync(
          fd,
          bytes,
          written,
          bytes.length - written,
          segment.size + written,
        );
      }
    } catch (error) {
      // A partial write would leave a torn entry before later ones: cut it off.
      try {
        if (fd !== undefined) this.fs.ftruncateSync(fd, segment.size);
      } catch {
        // The next recovery truncates the torn tail instead.
      }
      this.options.events.dropped(
        'spool_io',
        entries.length,
        error,
        entries.map((e) => e.key),
      );
      return;
    }
    segment.size += bytes.length;
    segment.unsynced.events += entries.length;
    for (const e of entries) segment.unsynced.keys.add(e.key);
    this.diskBytes += bytes.length;
    this.unackedEvents += entries.length;
    this.syncDirty = true;
    this.options.events.written(entries.length, bytes.length);
    this.options.events.changed(this.unackedEvents, this.diskBytes);
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Resolves after the next write, or at once when unacknowledged entries exist. */
  whenReadable(): Promise<void> {
    if (this.unackedEvents > 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Wakes whoever waits in `whenReadable` (used at shutdown). */
  wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * Up to `maxEntries` entries from the acknowledged position, in order; null when none. `from`
   * reads from the `end` of a batch not yet acknowledged instead (the sender reads ahead while
   * that batch is in flight).
   */
  readBatch(maxEntries: number, from?: SpoolPosition): SpoolBatch | null {
    const entries: SpoolEntry[] = [];
    const ends: SpoolPosition[] = [];
    let pos = { ...(from ?? this.ackPos) };
    while (entries.length < maxEntries) {
      const index = this.segments.findIndex((s) => s.id === pos.segment);
      const segment = this.segments[index];
      if (segment === undefined) break;
      if (pos.offset >= segment.size) {
        const next = this.segments[index + 1];
        if (next === undefined) break;
        pos = { segment: next.id, offset: 0 };
        continue;
      }
      const rest = segment.size - pos.offset;
      let chunk = this.readAt(segment, pos.offset, Math.min(READ_CHUNK_BYTES, rest));
      if (chunk.length < rest && readSpoolEntry(chunk, 0).kind === 'incomplete') {
        // One entry bigger than a read chunk.
        chunk = this.readAt(segment, pos.offset, Math.min(MAX_READ_BYTES, rest));
      }
      const got = chunk.length;
      let at = 0;
      while (entries.length < maxEntries) {
        const read = readSpoolEntry(chunk, at);
        if (read.kind === 'entry') {
          entries.push(read.entry);
          at = read.next;
          ends.push({ segment: segment.id, offset: pos.offset + at });
          continue;
        }
        if (read.kind === 'corrupt' || (at === 0 && got === segment.size - pos.offset)) {
          // Damage (an entry cannot be incomplete before the end of what was written).
          const from = pos.offset + at;
          const skip = resumeAfterDamage(this.readAt(segment, from, segment.size - from), 0);
          this.options.events.dropped('spool_corrupt', 1, {
            segment: segment.id,
            offset: from,
            bytes: skip,
          });
          at += skip;
        }
        break;
      }
      if (at === 0) break;
      pos = { segment: segment.id, offset: pos.offset + at };
    }
    if (entries.length === 0) {
      if (
        from === undefined &&
        (pos.segment !== this.ackPos.segment || pos.offset !== this.ackPos.offset)
      ) {
        this.ack({ entries, ends, end: pos });
      }
      return null;
    }
    return { entries, ends, end: pos };
  }

  /**
   * Marks the first `count` entries of a batch (default: all) acknowledged: they are never read
   * again, and segments wholly before them are deleted. The position is a single prefix, so the
   * rest of the batch is read again by the next `readBatch`.
   */
  ack(batch: SpoolBatch, count = batch.entries.length): void {
    if (count <= 0 && batch.entries.length > 0) return;
    const end =
      count >= batch.entries.length ? batch.end : (batch.ends[count - 1] as SpoolPosition);
    this.ackPos = end;
    this.ackDirty = true;
    this.scheduleSync(this.ackDelayMs());
    this.unackedEvents = Math.max(0, this.unackedEvents - Math.min(count, batch.entries.length));
    const last = this.lastSegment();
    if (
      end.segment === last.id &&
      end.offset >= last.size &&
      last.size >= this.options.segmentBytes
    ) {
      // The last segment is only deleted once a newer one exists: a full one (e.g. one group
      // commit bigger than a segment) that is wholly acknowledged would otherwise keep the spool
      // full for good.
      this.ackPos = { segment: this.roll().id, offset: 0 };
    }
    if (this.segments.length > 1 && (this.segments[0] as Segment).id < this.ackPos.segment) {
      // Segments are deleted only behind a durable position: were they deleted first, a crash
      // before the position reached the disk would leave an `ack` that points into a deleted
      // segment, and recovery would start at the next one — skipping the entries between.
      this.persistAck();
    }
    this.options.events.changed(this.unackedEvents, this.diskBytes);
  }

  /** Deletes the segments wholly before `durable`, a position that is on disk in `ack`. */
  private deleteSegmentsBefore(durable: SpoolPosition): void {
    while (this.segments.length > 1 && (this.segments[0] as Segment).id < durable.segment) {
      const old = this.segments.shift() as Segment;
      if (old.fd !== null) this.fs.closeSync(old.fd);
      try {
        this.fs.unlinkSync(join(this.options.dir, segmentName(old.id)));
      } catch (error) {
        // Left behind, it is deleted by the next recovery (it is before the acknowledged position).
        this.options.events.ioFailed?.(`deleting segment ${old.id}`, error);
      }
      this.diskBytes -= old.size;
      this.full = false;
    }
  }

  /**
   * fdatasync of the written segment, fsync of the directory after a segment was created, and
   * (unless `persistAck` is false) persistence of the acknowledged position. A failed directory
   * fsync or position is reported and tried again next time; a failed fdatasync is not
   * (`syncSegment`).
   */
  syncNow(persistAck = true): void {
    if (this.syncDirty) {
      this.syncDirty = false;
      const segment = this.lastSegment();
      if (segment.fd !== null) this.syncSegment(segment, segment.fd, () => {});
    }
    // Writing the acknowledged position fsyncs the directory anyway.
    if (this.dirDirty && !(this.ackDirty && persistAck)) {
      this.dirDirty = false;
      try {
        fsyncDirectory(this.fs, this.options.dir);
      } catch (error) {
        this.dirDirty = true;
        this.options.events.ioFailed?.('fsync of the spool directory', error);
      }
    }
    if (persistAck) this.persistAck();
    if (this.syncDirty || this.dirDirty) this.scheduleSync(this.options.fsyncIntervalMs);
    else if (this.ackDirty) this.scheduleSync(this.ackDelayMs());
  }

  /**
   * One sync `delayMs` from now, unless one is due sooner. The timer's sync persists the
   * acknowledged position only once `ACK_PERSIST_INTERVAL_MS` has passed since it last did.
   */
  private scheduleSync(delayMs: number): void {
    if (this.closed) return;
    const dueAtMs = performance.now() + delayMs;
    if (this.syncTimer !== undefined) {
      if (dueAtMs >= this.syncDueAtMs) return;
      clearTimeout(this.syncTimer);
    }
    this.syncDueAtMs = dueAtMs;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      const sincePersisted = performance.now() - this.ackPersistedAtMs;
      this.syncNow(sincePersisted >= ACK_PERSIST_INTERVAL_MS - TIMER_SLACK_MS);
    }, delayMs);
    this.syncTimer.unref();
  }

  /** When the timer may next persist the acknowledged position: at least one sync interval. */
  private ackDelayMs(): number {
    const sincePersisted = performance.now() - this.ackPersistedAtMs;
    return Math.max(this.options.fsyncIntervalMs, ACK_PERSIST_INTERVAL_MS - sincePersisted);
  }

  /**
   * Persists the acknowledged position if it moved. Called from a timer and from `close`, so an
   * I/O error is reported, not thrown: the position only saves resending (an older one means
   * resending, never losing), and the next attempt retries it.
   */
  private persistAck(): void {
    if (!this.ackDirty) return;
    try {
      this.writeAck();
    } catch (error) {
      this.ackDirty = true;
      this.options.events.ioFailed?.('persisting the acknowledged position', error);
    }
  }

  /** Writes what is queued, syncs it to disk, persists the acknowledged position, closes files. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    clearTimeout(this.syncTimer);
    for (const segment of this.segments) {
      if (segment.fd === null) continue;
      const unsynced = segment.unsynced;
      segment.unsynced = nothingUnsynced();
      try {
        this.fs.fdatasyncSync(segment.fd);
      } catch (error) {
        this.syncFailed(segment, unsynced, error);
      } finally {
        this.fs.closeSync(segment.fd);
        segment.fd = null;
      }
    }
    if (this.dirDirty) {
      try {
        fsyncDirectory(this.fs, this.options.dir);
      } catch (error) {
        this.options.events.ioFailed?.('fsync of the spool directory', error);
      }
    }
    this.persistAck();
    this.releaseFiles();
    this.wake();
  }

  /** Closes what recovery may have left open and releases the lock. */
  private releaseFiles(): void {
    for (const segment of this.segments) {
      if (segment.fd === null) continue;
      try {
        this.fs.closeSync(segment.fd);
      } catch {
        // Closing cannot lose anything here: what was written was synced (or reported) above.
      }
      segment.fd = null;
    }
    this.lock?.release();
    this.lock = null;
  }

  /**
   * fdatasync of `segment` (open as `fd`), in the background; `done` runs after it. The entries
   * written to the segment until now are durable once it succeeds.
   *
   * A failure is NOT retried: on Linux a failed writeback marks the dirty pages clean (or drops
   * them) and reports the error once per open file, so a second fdatasync returns success for
   * data that never reached the disk ("fsyncgate", PostgreSQL 2018: it now PANICs and replays
   * its WAL). We cannot replay: the entries are the only copy. So the entries since the last
   * successful sync are treated as lost for durability — reported through `syncFailed` (counted,
   * and their VMs continue in a new session, so nothing downstream is computed across a hole if
   * an OS crash makes it real) — and later syncs cover only what is written after.
   */
  private syncSegment(segment: Segment, fd: number, done: () => void): void {
    const unsynced = segment.unsynced;
    segment.unsynced = nothingUnsynced();
    this.fs.fdatasync(fd, (error) => {
      if (error !== null) this.syncFailed(segment, unsynced, error);
      done();
    });
  }

  private syncFailed(segment: Segment, unsynced: Segment['unsynced'], error: unknown): void {
    this.options.events.syncFailed?.(segment.id, unsynced.events, [...unsynced.keys], error);
  }

  private recover(): void {
    const { dir } = this.options;
    const ids = this.fs
      .readdirSync(dir)
      .filter((name) => /^\d{20}\.seg$/.test(name))
      .map((name) => Number(name.slice(0, 20)))
      .sort((a, b) => a - b);
    const ack = readAck(this.fs, dir);
    for (const id of ids) {
      if (ack !== null && id < ack.segment) {
        this.fs.unlinkSync(join(dir, segmentName(id)));
        continue;
      }
      const size = this.fs.statSync(join(dir, segmentName(id))).size;
      this.segments.push({ id, size, fd: null, unsynced: nothingUnsynced() });
    }
    const first = this.segments[0];
    if (first === undefined) {
      const id = Math.max(ids.at(-1) ?? 0, ack?.segment ?? 0) + 1;
      this.segments.push({ id, size: 0, fd: null, unsynced: nothingUnsynced() });
      this.ackPos = { segment: id, offset: 0 };
      this.ackDirty = true;
    } else if (ack !== null && ack.segment === first.id) {
      this.ackPos = { segment: ack.segment, offset: Math.min(ack.offset, first.size) };
    } else {
      this.ackPos = { segment: first.id, offset: 0 };
      this.ackDirty = true;
    }
    this.scanUnacknowledged();
    this.diskBytes = this.segments.reduce((sum, s) => sum + s.size, 0);
    if (this.unackedEvents > 0) this.options.events.recovered(this.unackedEvents, this.diskBytes);
    this.options.events.changed(this.unackedEvents, this.diskBytes);
    if (this.ackDirty) this.writeAck();
  }

  /** Counts entries after the acknowledged position and truncates a torn tail of the last segment. */
  private scanUnacknowledged(): void {
    const last = this.lastSegment();
    for (const segment of this.segments) {
      if (segment.size === 0) continue;
      const bytes = this.fs.readFileSync(join(this.options.dir, segmentName(segment.id)));
      let at = segment.id === this.ackPos.segment ? this.ackPos.offset : 0;
      while (at < bytes.length) {
        const read = readSpoolEntry(bytes, at);
        if (read.kind === 'entry') {
          this.unackedEvents++;
          at = read.next;
          continue;
        }
        // Damage with whole entries after it is skipped when read (and counted then); damage at
        // the end of the last segment is a torn write, cut off below.
        const next = resumeAfterDamage(bytes, at);
        if (next === bytes.length && segment === last) break;
        at = next;
      }
      if (at < bytes.length && segment === last) {
        const fd = this.fs.openSync(join(this.options.dir, segmentName(segment.id)), 'r+');
        try {
          this.fs.ftruncateSync(fd, at);
          this.fs.fdatasyncSync(fd);
        } finally {
          this.fs.closeSync(fd);
        }
        this.options.events.tornTailTruncated(segment.id, at, bytes.length - at);
        segment.size = at;
      }
    }
  }

  private lastSegment(): Segment {
    return this.segments[this.segments.length - 1] as Segment;
  }

  private roll(): Segment {
    const old = this.lastSegment();
    if (old.fd !== null) {
      const fd = old.fd;
      old.fd = null;
      this.syncSegment(old, fd, () => this.fs.closeSync(fd));
    }
    const segment: Segment = { id: old.id + 1, size: 0, fd: null, unsynced: nothingUnsynced() };
    this.segments.push(segment);
    return segment;
  }

  private writeFd(segment: Segment): number {
    if (segment.fd === null) {
      segment.fd = this.fs.openSync(join(this.options.dir, segmentName(segment.id)), 'a+');
      if (segment.size === 0) this.dirDirty = true;
    }
    return segment.fd;
  }

  private readAt(segment: Segment, offset: number, length: number): Buffer {
    const chunk = Buffer.allocUnsafe(length);
    const got = this.fs.readSync(this.writeFd(segment), chunk, 0, length, offset);
    return got === length ? chunk : chunk.subarray(0, got);
  }

  /** Temp file, fdatasync, rename, fsync of the directory: the new position or the old one. */
  private writeAck(): void {
    this.ackDirty = false;
    this.ackPersistedAtMs = performance.now();
    const position = this.ackPos;
    const tmp = join(this.options.dir, `${ACK_FILE}.tmp`);
    const fd = this.fs.openSync(tmp, 'w');
    try {
      this.fs.writeSync(fd, JSON.stringify(position));
      this.fs.fdatasyncSync(fd);
    } finally {
      this.fs.closeSync(fd);
    }
    this.fs.renameSync(tmp, join(this.options.dir, ACK_FILE));
    fsyncDirectory(this.fs, this.options.dir);
    this.dirDirty = false;
    this.deleteSegmentsBefore(position);
  }
}

function fsyncDirectory(fs: SpoolFs, dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function readAck(fs: SpoolFs, dir: string): SpoolPosition | null {
  try {
    const value = JSON.parse(
      fs.readFileSync(join(dir, ACK_FILE), 'utf8'),
    ) as Partial<SpoolPosition>;
    if (Number.isSafeInteger(value.segment) && Number.isSafeInteger(value.offset)) {
      return { segment: value.segment as number, offset: value.offset as number };
    }
  } catch {
    // Missing or unreadable: everything on disk is resent (at-least-once).
  }
  return null;
}
