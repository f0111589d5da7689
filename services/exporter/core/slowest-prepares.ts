/**
 * The slowest recent prepares for the live page, in bounded memory whatever the fleet size: a
 * ring of `slots` time slots covering the last `windowMs`, each keeping only its `keep` slowest
 * prepares. The slowest `keep` of the window are then among the slots' lists, so `top` is exact
 * for any limit up to `keep`, and memory is at most slots × keep entries (docs/metrics.md,
 * "Cardinality"). Text fields are cut to `MAX_TEXT` characters, so a record with a huge VM
 * name cannot make an entry large.
 *
 * Pure: the time a prepare was observed arrives as data (`observedAtMs`); a slot is reused once
 * its time has left the window.
 */
export interface SlowPrepare {
  host: string;
  vm: string;
  device: string;
  target: string;
  outcome: string;
  seconds: number;
  /** QEMU timestamp of the event that closed the prepare, ms since the epoch. */
  closedAtMs: number;
  /** When the exporter observed it, ms since the epoch. */
  observedAtMs: number;
}

export interface SlowestPreparesOptions {
  windowMs: number;
  /** Time slots the window is cut into; more slots, a sharper window edge. */
  slots: number;
  /** Prepares kept per slot, and the most `top` returns. */
  keep: number;
}

export interface SlowestPrepares {
  add(prepare: SlowPrepare): void;
  /** The slowest prepares observed in (nowMs − windowMs, nowMs], slowest first. */
  top(nowMs: number, limit?: number): SlowPrepare[];
  /** Entries held, at most slots × keep. */
  readonly size: number;
}

export const MAX_TEXT = 256;

interface Slot {
  /** floor(observedAtMs / slotMs) of the entries held; −1 when empty. */
  index: number;
  /** Slowest first, at most `keep`. */
  entries: SlowPrepare[];
}

export function createSlowestPrepares(options: SlowestPreparesOptions): SlowestPrepares {
  const slots = Math.max(1, Math.floor(options.slots));
  const keep = Math.max(1, Math.floor(options.keep));
  const slotMs = Math.max(1, options.windowMs / slots);
  const ring: Slot[] = Array.from({ length: slots }, () => ({ index: -1, entries: [] }));
  const slotOf = (index: number): Slot => ring[((index % slots) + slots) % slots] as Slot;

  return {
    add(prepare) {
      if (!Number.isFinite(prepare.seconds) || !Number.isFinite(prepare.observedAtMs)) return;
      const index = Math.floor(prepare.observedAtMs / slotMs);
      const slot = slotOf(index);
      if (slot.index !== index) {
        // An older slot's time has passed; a prepare older than the slot's current time is late.
        if (index < slot.index) return;
        slot.index = index;
        slot.entries = [];
      }
      const entries = slot.entries;
      if (
        entries.length === keep &&
        (entries[keep - 1] as SlowPrepare).seconds >= prepare.seconds
      ) {
        return;
      }
      let at = entries.length;
      while (at > 0 && (entries[at - 1] as SlowPrepare).seconds < prepare.seconds) at--;
      entries.splice(at, 0, bounded(prepare));
      if (entries.length > keep) entries.pop();
    },
    top(nowMs, limit = keep) {
      const newest = Math.floor(nowMs / slotMs);
      const oldest = Math.floor((nowMs - options.windowMs) / slotMs);
      const found: SlowPrepare[] = [];
      for (const slot of ring) {
        if (slot.index < oldest || slot.index > newest) continue;
        for (const e of slot.entries) {
          if (e.observedAtMs > nowMs - options.windowMs && e.observedAtMs <= nowMs) found.push(e);
        }
      }
      return found.sort((a, b) => b.seconds - a.seconds).slice(0, Math.min(limit, keep));
    },
    get size() {
      return ring.reduce((n, s) => n + s.entries.length, 0);
    },
  };
}

function bounded(p: SlowPrepare): SlowPrepare {
  const cut = (s: string): string => (s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT - 1)}~` : s);
  return {
    ...p,
    host: cut(p.host),
    vm: cut(p.vm),
    device: cut(p.device),
    target: cut(p.target),
    outcome: cut(p.outcome),
  };
}
