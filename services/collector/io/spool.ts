/**
 * The collector's spool: a write-ahead log of every accepted event, bounded by bytes.
 *
 * Layout of `dir`:
 *   00000000000000000001.seg   segment files of entries (core/spool-entry.ts), in id order
 *   ack                        JSON {segment, offset}: everything before it is acknowledged by Kafka
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
 * tries again; it never throws. Every I/O error in the background (fdatasync, the acknowledged
 * position, deleting a segment) is reported through `ioFailed`, never ignored and never thrown.
 *
 * Reads: the sender reads batches from the acknowledged position in order and calls `ack` with
 * the longest prefix of a batch that Kafka has stored (one position, not a set: an entry is only
 * acknowledged with everything before it); the position is persisted (temp file, fdatasync,
 * rename, fsync of the directory) at most once per fsync interval, so a crash resends at most that much (at-least-once; the processor dedupes by session and
 * sequence). Segments wholly before the acknowledged position are deleted.
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
import {
  closeSync,
  fdatasync,
  fdatasyncSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { TelemetryError } from '../../shared/core/errors.ts';
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
}

export interface SpoolOptions {
  dir: string;
  maxBytes: number;
  segmentBytes: number;
  fsyncIntervalMs: number;
  events: SpoolEvents;
}

interface Segment {
  id: number;
  size: number;
  fd: number | null;
}

const READ_CHUNK_BYTES = 256 * 1024;
const MAX_READ_BYTES = ENTRY_HEADER_BYTES + MAX_ENTRY_BODY_BYTES;
const ACK_FILE = 'ack';

const segmentName = (id: number): string => `${String(id).padStart(20, '0')}.seg`;

export class Spool {
  private readonly options: SpoolOptions;
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
  private unackedEvents = 0;
  private diskBytes = 0;
  private waiters: (() => void)[] = [];
  private closed = false;
  private full = false;

  private constructor(options: SpoolOptions) {
    this.options = options;
  }

  /** Opens (or creates) the spool in `dir`, recovering what a previous run left. */
  static open(options: SpoolOptions): Spool {
    const spool = new Spool(options);
    spool.recover();
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
    this.scheduleSync();
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
        written += writeSync(fd, bytes, written, bytes.length - written, segment.size + written);
      }
    } catch (error) {
      // A partial write would leave a torn entry before later ones: cut it off.
      try {
        if (fd !== undefined) ftruncateSync(fd, segment.size);
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

  /** Up to `maxEntries` entries from the acknowledged position, in order; null when none. */
  readBatch(maxEntries: number): SpoolBatch | null {
    const entries: SpoolEntry[] = [];
    const ends: SpoolPosition[] = [];
    let pos = { ...this.ackPos };
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
      if (pos.segment !== this.ackPos.segment || pos.offset !== this.ackPos.offset) {
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
    this.scheduleSync();
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
    while (this.segments.length > 1 && (this.segments[0] as Segment).id < this.ackPos.segment) {
      const old = this.segments.shift() as Segment;
      if (old.fd !== null) closeSync(old.fd);
      try {
        unlinkSync(join(this.options.dir, segmentName(old.id)));
      } catch (error) {
        // Left behind, it is deleted by the next recovery (it is before the acknowledged position).
        this.options.events.ioFailed?.(`deleting segment ${old.id}`, error);
      }
      this.diskBytes -= old.size;
      this.full = false;
    }
    this.options.events.changed(this.unackedEvents, this.diskBytes);
  }

  /**
   * fdatasync of the written segment, fsync of the directory after a segment was created, and
   * persistence of the acknowledged position. A failure is reported and tried again next time.
   */
  syncNow(): void {
    if (this.syncDirty) {
      this.syncDirty = false;
      const segment = this.lastSegment();
      if (segment.fd !== null) {
        fdatasync(segment.fd, (error) => {
          if (error === null) return;
          this.syncDirty = true;
          this.scheduleSync();
          this.options.events.ioFailed?.(`fdatasync of segment ${segment.id}`, error);
        });
      }
    }
    // Writing the acknowledged position fsyncs the directory anyway.
    if (this.dirDirty && !this.ackDirty) {
      this.dirDirty = false;
      try {
        fsyncDirectory(this.options.dir);
      } catch (error) {
        this.dirDirty = true;
        this.options.events.ioFailed?.('fsync of the spool directory', error);
      }
    }
    this.persistAck();
    if (this.syncDirty || this.dirDirty || this.ackDirty) this.scheduleSync();
  }

  /** One sync `fsyncIntervalMs` from now, unless one is already due. */
  private scheduleSync(): void {
    if (this.syncTimer !== undefined || this.closed) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      this.syncNow();
    }, this.options.fsyncIntervalMs);
    this.syncTimer.unref();
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
      try {
        fdatasyncSync(segment.fd);
      } catch (error) {
        this.options.events.ioFailed?.(`fdatasync of segment ${segment.id}`, error);
      } finally {
        closeSync(segment.fd);
        segment.fd = null;
      }
    }
    if (this.dirDirty) {
      try {
        fsyncDirectory(this.options.dir);
      } catch (error) {
        this.options.events.ioFailed?.('fsync of the spool directory', error);
      }
    }
    this.persistAck();
    this.wake();
  }

  private recover(): void {
    const { dir } = this.options;
    mkdirSync(dir, { recursive: true });
    const ids = readdirSync(dir)
      .filter((name) => /^\d{20}\.seg$/.test(name))
      .map((name) => Number(name.slice(0, 20)))
      .sort((a, b) => a - b);
    const ack = readAck(dir);
    for (const id of ids) {
      if (ack !== null && id < ack.segment) {
        unlinkSync(join(dir, segmentName(id)));
        continue;
      }
      this.segments.push({ id, size: statSync(join(dir, segmentName(id))).size, fd: null });
    }
    const first = this.segments[0];
    if (first === undefined) {
      const id = Math.max(ids.at(-1) ?? 0, ack?.segment ?? 0) + 1;
      this.segments.push({ id, size: 0, fd: null });
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
      const bytes = readFileSync(join(this.options.dir, segmentName(segment.id)));
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
        const fd = openSync(join(this.options.dir, segmentName(segment.id)), 'r+');
        try {
          ftruncateSync(fd, at);
          fdatasyncSync(fd);
        } finally {
          closeSync(fd);
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
      fdatasync(fd, (error) => {
        if (error !== null) this.options.events.ioFailed?.(`fdatasync of segment ${old.id}`, error);
        closeSync(fd);
      });
    }
    const segment: Segment = { id: old.id + 1, size: 0, fd: null };
    this.segments.push(segment);
    return segment;
  }

  private writeFd(segment: Segment): number {
    if (segment.fd === null) {
      segment.fd = openSync(join(this.options.dir, segmentName(segment.id)), 'a+');
      if (segment.size === 0) this.dirDirty = true;
    }
    return segment.fd;
  }

  private readAt(segment: Segment, offset: number, length: number): Buffer {
    const chunk = Buffer.allocUnsafe(length);
    const got = readSync(this.writeFd(segment), chunk, 0, length, offset);
    return got === length ? chunk : chunk.subarray(0, got);
  }

  /** Temp file, fdatasync, rename, fsync of the directory: the new position or the old one. */
  private writeAck(): void {
    this.ackDirty = false;
    const tmp = join(this.options.dir, `${ACK_FILE}.tmp`);
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, JSON.stringify(this.ackPos));
      fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, join(this.options.dir, ACK_FILE));
    fsyncDirectory(this.options.dir);
    this.dirDirty = false;
  }
}

function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function readAck(dir: string): SpoolPosition | null {
  try {
    const value = JSON.parse(readFileSync(join(dir, ACK_FILE), 'utf8')) as Partial<SpoolPosition>;
    if (Number.isSafeInteger(value.segment) && Number.isSafeInteger(value.offset)) {
      return { segment: value.segment as number, offset: value.offset as number };
    }
  } catch {
    // Missing or unreadable: everything on disk is resent (at-least-once).
  }
  return null;
}
