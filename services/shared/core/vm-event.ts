import type { EventRecord } from './event-record.ts';
import { buildEventRecord, SHUTDOWN, VFIO_MIGRATION } from './event-record-builder.ts';
import { invalid, type QmpEvent, type QmpInvalid } from './qmp-message.ts';

/**
 * The event model the transition engine consumes: one QMP event of one VM, reduced to what the
 * engine needs. `host` + `vm` identify the QEMU instance; a device is (host, vm, qomPath).
 *
 * VFIO_MIGRATION (QEMU `qapi/vfio.json`, since 9.1):
 *   { "event": "VFIO_MIGRATION",
 *     "data": { "device-id": str, "qom-path": str, "device-state": QapiVfioMigrationState } }
 * All three members are mandatory `str` in the schema, but QEMU sends `device-id` as "" for a
 * device created without `id=`, so a missing `device-id` also means "". Devices are keyed by
 * `qom-path`. `device-state` is an open set: any value ending in `-prepare` announces the state
 * without the suffix ("seeing a prepare state for state X doesn't guarantee that the next state
 * will be X").
 */
export type VmEvent = VfioMigrationEvent | ShutdownEvent | OtherEvent;

interface VmEventBase {
  host: string;
  vm: string;
  timestampMicros: number;
  /**
   * The collector's wall clock when it read the event (the record's `receivedMicros`); absent
   * when unknown (a QMP transcript replayed offline). The engine's timestamp rule uses it.
   * Events built here always carry the member (`undefined` when unknown), so every event of a
   * kind has one shape: deleting it left each transcript event a slow dictionary-mode object.
   */
  receivedMicros?: number | undefined;
}

export interface VfioMigrationEvent extends VmEventBase {
  kind: 'vfio';
  qomPath: string;
  deviceId: string;
  deviceState: string;
}

/** QEMU is going away (`SHUTDOWN`): every open prepare of the VM ends as `aborted`. */
export interface ShutdownEvent extends VmEventBase {
  kind: 'shutdown';
}

/** Any other event; it only moves the VM's watermark. Unknown events are never rejected. */
export interface OtherEvent extends VmEventBase {
  kind: 'other';
  name: string;
}

const PREPARE_SUFFIX = '-prepare';

/** The state a prepare state announces, or null when `state` is not a prepare state. */
export function prepareTarget(state: string): string | null {
  return state.endsWith(PREPARE_SUFFIX) && state.length > PREPARE_SUFFIX.length
    ? state.slice(0, -PREPARE_SUFFIX.length)
    : null;
}

/** `QapiVfioMigrationState` (QEMU `qapi/vfio.json`; `pre-copy-p2p-prepare` since 11.0). */
export const VFIO_MIGRATION_STATES = [
  'stop',
  'running',
  'stop-copy',
  'resuming',
  'running-p2p',
  'pre-copy',
  'pre-copy-p2p',
  'pre-copy-p2p-prepare',
] as const;

/** Prepare targets QEMU announces today: every state a prepare state can name. */
export const KNOWN_PREPARE_TARGETS: readonly string[] = VFIO_MIGRATION_STATES.filter(
  (s) => prepareTarget(s) === null,
);

/**
 * The one adapter from a record of the events topic to the event model. The live processor feeds
 * it the records it consumes; replay feeds it the records `toVmEvent` builds, so both run the
 * engine on the same input.
 */
export function vmEventFromRecord(record: EventRecord): VmEvent | QmpInvalid {
  return eventFromRecord(record, record.receivedMicros);
}

function eventFromRecord(
  record: EventRecord,
  receivedMicros: number | undefined,
): VmEvent | QmpInvalid {
  const { host, vm, qemuTimestampMicros: timestampMicros } = record;
  if (!Number.isInteger(timestampMicros) || timestampMicros < 0) {
    return invalid('bad_timestamp', `${record.event}: timestamp ${timestampMicros}`);
  }
  if (record.event === VFIO_MIGRATION) {
    if (record.qomPath === null || record.deviceState === null) {
      return invalid('bad_vfio_data', 'VFIO_MIGRATION without a qom-path and device-state');
    }
    return {
      kind: 'vfio',
      host,
      vm,
      timestampMicros,
      receivedMicros,
      qomPath: record.qomPath,
      deviceId: record.deviceId ?? '',
      deviceState: record.deviceState,
    };
  }
  if (record.event === SHUTDOWN)
    return { kind: 'shutdown', host, vm, timestampMicros, receivedMicros };
  return { kind: 'other', host, vm, timestampMicros, receivedMicros, name: record.event };
}

/**
 * A decoded QMP event of one VM in the event model, by way of the record the collector would
 * publish for it (`buildEventRecord`, then `vmEventFromRecord`). A transcript has no receive
 * time, so the event has none.
 */
export function toVmEvent(host: string, vm: string, event: QmpEvent): VmEvent | QmpInvalid {
  const record = buildEventRecord(
    { host, vm, sessionId: '', sequence: 0, receivedMicros: 0 },
    event,
  );
  return 'kind' in record ? record : eventFromRecord(record, undefined);
}
