import type { EventRecord } from './event-record.ts';
import { invalid, type QmpEvent, type QmpInvalid } from './qmp-message.ts';

export const VFIO_MIGRATION = 'VFIO_MIGRATION';
export const SHUTDOWN = 'SHUTDOWN';
const MIGRATION = 'MIGRATION';

/** Where an event was read: which VM, which connection, which position in it. */
export interface EventOrigin {
  host: string;
  vm: string;
  sessionId: string;
  sequence: number;
  receivedMicros: number;
}

interface VfioMigrationData {
  qomPath: string;
  deviceId: string;
  deviceState: string;
}

/** The members of a VFIO_MIGRATION event's `data`, or why they are unusable. */
function readVfioData(data: Readonly<Record<string, unknown>>): VfioMigrationData | QmpInvalid {
  const qomPath = data['qom-path'];
  const deviceState = data['device-state'];
  if (typeof qomPath !== 'string' || typeof deviceState !== 'string') {
    return invalid('bad_vfio_data', 'VFIO_MIGRATION without a string qom-path and device-state');
  }
  const member = data['device-id'];
  const deviceId = typeof member === 'string' ? member : '';
  if (hasLoneSurrogate(qomPath) || hasLoneSurrogate(deviceState) || hasLoneSurrogate(deviceId)) {
    return invalid('invalid_utf8', 'VFIO_MIGRATION with a lone surrogate (\\uD800-\\uDFFF) escape');
  }
  return { qomPath, deviceId, deviceState };
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * A JSON escape like `\ud800` without its pair decodes to a string UTF-8 cannot hold: Avro would
 * publish U+FFFD instead, so two different names would become one downstream while `replay`
 * kept them apart. Such names are rejected; `data` is safe (JSON.stringify escapes them again).
 */
function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text);
}

/**
 * The record the collector publishes for one QMP event (`schemas/vfio-event.avsc`).
 * VFIO_MIGRATION must carry string `qom-path` and `device-state` (QEMU `qapi/vfio.json`; the
 * processor keys devices by qom-path), otherwise it is rejected as `bad_vfio_data`; `device-id`
 * is "" when absent, as QEMU sends it for a device without `id=`. MIGRATION's `status` goes to
 * `migrationStatus`. Any other event keeps its `data` as JSON text, so nothing QEMU said is lost.
 * A name (event, qom-path, device-id, device-state) with a lone surrogate is `invalid_utf8`.
 */
export function buildEventRecord(origin: EventOrigin, event: QmpEvent): EventRecord | QmpInvalid {
  if (hasLoneSurrogate(event.name)) {
    return invalid('invalid_utf8', 'event name with a lone surrogate (\\uD800-\\uDFFF) escape');
  }
  if (event.name === VFIO_MIGRATION) {
    const fields = readVfioData(event.data);
    if ('kind' in fields) return fields;
    return record(origin, event, fields.qomPath, fields.deviceId, fields.deviceState, null, null);
  }
  const status = event.data['status'];
  if (
    event.name === MIGRATION &&
    typeof status === 'string' &&
    !hasLoneSurrogate(status) &&
    Object.keys(event.data).length === 1
  ) {
    return record(origin, event, null, null, null, status, null);
  }
  const data = Object.keys(event.data).length === 0 ? null : JSON.stringify(event.data);
  return record(origin, event, null, null, null, null, data);
}

/** Every record built with the same members in the same order: one object shape for V8. */
function record(
  origin: EventOrigin,
  event: QmpEvent,
  qomPath: string | null,
  deviceId: string | null,
  deviceState: string | null,
  migrationStatus: string | null,
  data: string | null,
): EventRecord {
  return {
    host: origin.host,
    vm: origin.vm,
    sessionId: origin.sessionId,
    sequence: origin.sequence,
    qemuTimestampMicros: event.timestampMicros,
    receivedMicros: origin.receivedMicros,
    event: event.name,
    qomPath,
    deviceId,
    deviceState,
    migrationStatus,
    data,
  };
}
