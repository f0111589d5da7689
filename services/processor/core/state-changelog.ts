import type { VmStateValue } from './partition-processor.ts';

/**
 * The processor's state topic: a compacted changelog, one partition per events partition, so a
 * processor that takes over partition p reads exactly partition p back. Two kinds of entries:
 *
 *   key "vm\0<host>\0<vm>"  value: JSON VmStateValue (the VM's devices and session bookkeeping)
 *   key "meta"              value: JSON PartitionMeta (what that state reflects)
 *
 * Compaction keeps the newest value per key, so the topic stays about one entry per VM.
 * Values are JSON: the topic is internal, written once per changed VM per batch, and JSON keeps it
 * readable with any Kafka tool while debugging a restore.
 */
export interface PartitionMeta {
  /** Offset of the last events-topic record reflected in this partition's state. */
  appliedOffset: number;
  /** End offset of the same partition of the transitions topic right after that state. */
  transitionsEndOffset: number;
}

export const META_KEY = 'meta';

export function vmStateKey(host: string, vm: string): string {
  return `vm\u0000${host}\u0000${vm}`;
}

export interface ChangelogEntry {
  key: string;
  value: string;
}

export function changelogEntries(
  values: readonly VmStateValue[],
  meta: PartitionMeta,
): ChangelogEntry[] {
  const entries = values.map((v) => ({ key: vmStateKey(v.host, v.vm), value: JSON.stringify(v) }));
  // The meta entry goes last: it claims everything before it is written.
  entries.push({ key: META_KEY, value: JSON.stringify(meta) });
  return entries;
}

/** Folds a partition's changelog, read from the start, into its newest state. */
export class ChangelogFold {
  private readonly vms = new Map<string, VmStateValue>();
  private meta: PartitionMeta | null = null;

  add(key: string, value: string | null): void {
    if (key === META_KEY) {
      if (value !== null) this.meta = JSON.parse(value) as PartitionMeta;
    } else if (value === null) {
      this.vms.delete(key);
    } else {
      this.vms.set(key, JSON.parse(value) as VmStateValue);
    }
  }

  result(): { vms: VmStateValue[]; meta: PartitionMeta | null } {
    return { vms: [...this.vms.values()], meta: this.meta };
  }
}
