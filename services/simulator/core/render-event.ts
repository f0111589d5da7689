import type { ScheduledEvent } from './episode.ts';
import type { QmpJson } from './qmp-json.ts';

/**
 * A scheduled event as QEMU sends it (`qapi/qmp-event.c` `timestamp_put()`):
 *   {"timestamp": {"seconds": S, "microseconds": U}, "event": NAME, "data": {...}}
 * with `data` absent for STOP and RESUME. The timestamp is the VM's wall clock: the anchor
 * (the simulator's start, µs since the epoch) plus virtual time plus the VM's clock offset.
 * A clock stepped before the epoch reads 0 rather than a negative time.
 */
export function renderEvent(event: ScheduledEvent, anchorMicros: number): QmpJson {
  const micros = Math.max(0, anchorMicros + event.atMicros + event.clockOffsetMicros);
  const timestamp = { seconds: Math.floor(micros / 1_000_000), microseconds: micros % 1_000_000 };
  return event.data === undefined
    ? { timestamp, event: event.name }
    : { timestamp, event: event.name, data: event.data };
}
