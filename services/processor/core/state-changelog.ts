import type { DeviceSnapshot, VmSnapshot } from '../../shared/core/transition-engine.ts';
import type { VmSessionState } from './vm-sessions.ts';

/**
 * The processor's state topic: a compacted changelog (`cleanup.policy=compact`, checked at
 * start), one partition per events partition, so whoever owns events partition p reads exactly
 * partition p back. Keys are namespaced by consumer group, so two groups may share the topic:
 *
 *   key "<group>\0meta"               value: JSON PartitionMeta (written by every transaction)
 *   key "<group>\0vm\0<host>\0<vm>"   value: JSON VmStateValue, or a tombstone (VM forgotten)
 *
 * Compaction keeps the newest value per key and drops tombstoned keys, so the topic stays about
 * one entry per live VM. Values are JSON: the topic is internal, written once per changed VM per
 * transaction, and JSON keeps it readable with any Kafka tool while debugging a restore.
 */
export interface PartitionMeta {
  /** The next events-topic offset to apply: every record below it is reflected in the state. */
  nextOffset: number;
  /** The partition's clock: the newest collector `receivedMicros` seen on it. */
  clockMicros: number;
}

/**
 * What the processor saves per VM: the engine's VM snapshot and its session bookkeeping.
 * `earlierSequences` is missing from values written before it existed (restored as unknown).
 */
export interface VmStateValue
  extends
    VmSnapshot,
    Omit<VmSessionState, 'earlierSequences'>,
    Partial<Pick<VmSessionState, 'earlierSequences'>> {
  /** Collector receive time of the VM's last applied event (the silence rule's input). */
  lastReceivedMicros: number;
}

export interface ChangelogEntry {
  key: string;
  /** `null`: a tombstone. */
  value: string | null;
}

export function metaKey(groupId: string): string {
  return `${groupId}\u0000meta`;
}

export function vmStateKey(groupId: string, host: string, vm: string): string {
  return `${groupId}\u0000vm\u0000${host}\u0000${vm}`;
}

export function metaEntry(groupId: string, meta: PartitionMeta): ChangelogEntry {
  return { key: metaKey(groupId), value: JSON.stringify(meta) };
}

export function vmStateEntry(groupId: string, value: VmStateValue): ChangelogEntry {
  return { key: vmStateKey(groupId, value.host, value.vm), value: JSON.stringify(value) };
}

export function vmTombstone(groupId: string, host: string, vm: string): ChangelogEntry {
  return { key: vmStateKey(groupId, host, vm), value: null };
}

export interface FoldedState {
  vms: VmStateValue[];
  meta: PartitionMeta | null;
  /** Entries of this group whose value was not what this version writes (skipped). */
  invalid: number;
}

/** Folds a partition's changelog, read from the start in offset order, into its newest state. */
export class ChangelogFold {
  private readonly vms = new Map<string, VmStateValue>();
  private meta: PartitionMeta | null = null;
  private invalid = 0;
  private readonly metaKey: string;
  private readonly vmPrefix: string;

  constructor(groupId: string) {
    this.metaKey = metaKey(groupId);
    this.vmPrefix = `${groupId}\u0000vm\u0000`;
  }

  add(key: string, value: string | null): void {
    if (key === this.metaKey) {
      const meta = value === null ? null : parseMeta(value);
      if (meta === null) this.invalid++;
      else this.meta = meta;
    } else if (key.startsWith(this.vmPrefix)) {
      if (value === null) {
        this.vms.delete(key);
        return;
      }
      const vm = parseVmState(value);
      if (vm === null) this.invalid++;
      else this.vms.set(key, vm);
    }
  }

  result(): FoldedState {
    return { vms: [...this.vms.values()], meta: this.meta, invalid: this.invalid };
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isString = (v: unknown): v is string => typeof v === 'string';
const isStringOrNull = (v: unknown): v is string | null => v === null || typeof v === 'string';

/** The meta value, or null when it is not one. */
export function parseMeta(text: string): PartitionMeta | null {
  const v = parseJson(text);
  if (!isRecord(v) || !isNumber(v['nextOffset']) || !isNumber(v['clockMicros'])) return null;
  return { nextOffset: v['nextOffset'], clockMicros: v['clockMicros'] };
}

function isDevice(d: unknown): d is DeviceSnapshot {
  return (
    isRecord(d) &&
    isString(d['qomPath']) &&
    isString(d['deviceId']) &&
    isStringOrNull(d['state']) &&
    isNumber(d['stateSinceMicros']) &&
    isString(d['lastState']) &&
    isNumber(d['lastMicros']) &&
    isStringOrNull(d['prepareState']) &&
    isNumber(d['prepareMicros'])
  );
}

/** A VM's state value, or null when it is not one. */
export function parseVmState(text: string): VmStateValue | null {
  const v = parseJson(text);
  if (
    !isRecord(v) ||
    !isString(v['host']) ||
    !isString(v['vm']) ||
    !isNumber(v['watermarkMicros']) ||
    !Array.isArray(v['devices']) ||
    !v['devices'].every(isDevice) ||
    !isString(v['sessionId']) ||
    !isNumber(v['lastSequence']) ||
    !Array.isArray(v['earlierSessions']) ||
    !v['earlierSessions'].every(isString) ||
    !isNumber(v['lastReceivedMicros']) ||
    (v['earlierSequences'] !== undefined &&
      (!Array.isArray(v['earlierSequences']) ||
        v['earlierSequences'].length !== v['earlierSessions'].length ||
        !v['earlierSequences'].every(isNumber)))
  ) {
    return null;
  }
  return v as unknown as VmStateValue;
}
