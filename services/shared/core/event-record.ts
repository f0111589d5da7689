/**
 * The event record: one QMP event of one VM, as the collector publishes it to the events topic
 * (Avro schema `schemas/vfio-event.avsc`). Field names here and in the schema are the same.
 *
 * State names (`device-state`, MIGRATION `status`) are carried as strings, not Avro enums: QEMU
 * adds values over time (`pre-copy-p2p-prepare` in 11.0, `postcopy-device` in 10.2) and a
 * record must pass a future value through intact rather than fail or collapse it to a default.
 */
export interface EventRecord {
  /** Collector host that read the QMP socket. */
  host: string;
  /** VM name as the collector knows it (socket file name without its extension). */
  vm: string;
  /** One id per QMP connection; a reconnect starts a new session (events in between may be lost). */
  sessionId: string;
  /** Per-session sequence number, from 1, without gaps. */
  sequence: number;
  /** QEMU's event timestamp, µs since the Unix epoch (QEMU host wall clock). */
  qemuTimestampMicros: number;
  /** Collector wall clock when the message was read, µs since the Unix epoch. */
  receivedMicros: number;
  /** QMP event name, e.g. `VFIO_MIGRATION`, `MIGRATION`, `STOP`. */
  event: string;
  /** VFIO_MIGRATION `qom-path`; null for other events. */
  qomPath: string | null;
  /** VFIO_MIGRATION `device-id` ("" when QEMU had no id); null for other events. */
  deviceId: string | null;
  /** VFIO_MIGRATION `device-state`, verbatim; null for other events. */
  deviceState: string | null;
  /** MIGRATION `status`, verbatim; null for other events. */
  migrationStatus: string | null;
  /** JSON text of `data` for every other event that has one (e.g. SHUTDOWN's reason); else null. */
  data: string | null;
}
