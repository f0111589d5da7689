import type { Episode } from './episode.ts';

/**
 * What the simulator meant to do, counted per migration as it is played (whether or not a client
 * was there to read it), next to what the sockets actually carried. Tests compare a consumer's
 * view against the intended counts.
 */
export interface SimulatorStats {
  migrations: number;
  /** Keyed `role:outcome`, e.g. `source:completed`, `destination:failed-load`. */
  migrationsByOutcome: Record<string, number>;
  /** Prepares the simulator completed into `pre-copy-p2p`. */
  preparesCompleted: number;
  /** Prepares whose ioctl failed (followed by `running`). */
  preparesFailed: number;
  clockSteps: number;
  /** Events written to negotiated clients (each monitor counts). */
  eventsSent: number;
  /** Events that fell due while a monitor had no negotiated client. */
  eventsDropped: number;
  clientsConnected: number;
}

export function emptyStats(): SimulatorStats {
  return {
    migrations: 0,
    migrationsByOutcome: {},
    preparesCompleted: 0,
    preparesFailed: 0,
    clockSteps: 0,
    eventsSent: 0,
    eventsDropped: 0,
    clientsConnected: 0,
  };
}

export function countEpisode(stats: SimulatorStats, episode: Episode): void {
  stats.migrations++;
  const key = `${episode.role}:${episode.outcome}`;
  stats.migrationsByOutcome[key] = (stats.migrationsByOutcome[key] ?? 0) + 1;
  stats.preparesCompleted += episode.preparesCompleted;
  stats.preparesFailed += episode.preparesFailed;
  stats.clockSteps += episode.clockSteps;
}
