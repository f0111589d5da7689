import { setImmediate as yieldToIo, setTimeout as sleep } from 'node:timers/promises';
import type { Episode } from '../core/episode.ts';
import { formatQmpMessage } from '../core/qmp-json.ts';
import type { RunStatus } from '../core/qmp-monitor.ts';
import { renderEvent } from '../core/render-event.ts';
import type { VmSchedule } from '../core/vm-schedule.ts';
import type { QmpMonitorServer } from './qmp-monitor-server.ts';

/** `max`: as fast as the sockets take it; a number: virtual seconds per real second. */
export type Speed = number | 'max';

export interface VmPlayerOptions {
  schedule: VmSchedule;
  /** Migrations to play; null: until aborted. */
  migrations: number | null;
  monitors: readonly QmpMonitorServer[];
  speed: Speed;
  pretty: boolean;
  /** Wall clock (µs since the epoch) that virtual time 0 maps to in QEMU timestamps. */
  anchorMicros: number;
  /** `performance.now()` at virtual time 0. */
  startMs: number;
  /** The VM's RunState, updated as events are played. */
  state: { status: RunStatus };
  onEpisode: (episode: Episode) => void;
  signal: AbortSignal;
}

/** At `--speed max`, let socket I/O run after this many events even when nothing blocks. */
const EVENTS_PER_YIELD = 256;

/**
 * Plays one VM's schedule in real time: each event is written when its virtual time, scaled by
 * the speed, has come. A saturated client holds back its own VM only; the schedule then runs
 * late and catches up, but timestamps stay those of the schedule (QEMU stamps when it builds).
 */
export async function playVm(options: VmPlayerOptions): Promise<void> {
  const { schedule, monitors, speed, signal } = options;
  let sinceYield = 0;
  for (let n = 0; options.migrations === null || n < options.migrations; n++) {
    const episode = schedule.next();
    for (const event of episode.events) {
      if (speed !== 'max') {
        const delay = options.startMs + event.atMicros / 1000 / speed - performance.now();
        if (delay >= 1) {
          try {
            await sleep(delay, undefined, { signal });
          } catch {
            return;
          }
          sinceYield = 0;
        }
      } else if (++sinceYield >= EVENTS_PER_YIELD) {
        await yieldToIo();
        sinceYield = 0;
      }
      if (signal.aborted) return;
      if (event.status !== undefined) options.state.status = event.status;
      const line = formatQmpMessage(renderEvent(event, options.anchorMicros), options.pretty);
      for (const monitor of monitors) monitor.sendEvent(line);
      for (const monitor of monitors) {
        if (monitor.saturated) {
          await monitor.whenWritable();
          sinceYield = 0;
        }
      }
    }
    options.onEpisode(episode);
  }
}
