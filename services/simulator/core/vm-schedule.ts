import { buildEpisode, type Episode, type EpisodeRole } from './episode.ts';
import type { FleetConfig } from './fleet-config.ts';
import { STREAM_CLOCK, STREAM_EPISODES, type VmSpec } from './fleet.ts';
import { lognormalFromMedianP99, type Lognormal } from './lognormal.ts';
import { deriveSeed, Prng } from './prng.ts';

const MINUTE_MICROS = 60_000_000;
/** Quiet time between the end of one migration of a VM and the start of its next one. */
const MIN_GAP_MICROS = 100_000;

/**
 * The endless sequence of migrations of one VM, in virtual time. Starts follow a Poisson process
 * at the configured rate, pushed back when the previous migration has not ended (a VM migrates
 * one migration at a time). Roles follow the VM: after an outgoing migration completes, the
 * source QEMU is shut down and the next migration is incoming; after a failed one the VM still
 * runs here and tries again as the source; a failed incoming load is retried as incoming.
 * Clock steps come from their own random stream and shift the timestamps of later events.
 */
export class VmSchedule {
  readonly vm: VmSpec;
  private readonly config: FleetConfig;
  private readonly p2pTime: Lognormal;
  private readonly episodes: Prng;
  private readonly clock: Prng;
  private readonly meanGapMicros: number;
  private readonly meanStepGapMicros: number;
  private index = 0;
  private role: EpisodeRole;
  private lastStart = 0;
  private lastEnd = 0;
  private nextStepAt: number;
  private offset = 0;

  constructor(vm: VmSpec, config: FleetConfig) {
    this.vm = vm;
    this.config = config;
    this.p2pTime = lognormalFromMedianP99(config.p2pMedianMs, config.p2pP99Ms);
    this.episodes = new Prng(deriveSeed(config.seed, vm.index, STREAM_EPISODES));
    this.clock = new Prng(deriveSeed(config.seed, vm.index, STREAM_CLOCK));
    this.meanGapMicros = MINUTE_MICROS / config.migrationsPerVmPerMinute;
    this.meanStepGapMicros =
      config.clockStepsPerVmPerMinute > 0
        ? MINUTE_MICROS / config.clockStepsPerVmPerMinute
        : Infinity;
    this.role = vm.firstRole;
    this.nextStepAt = this.clock.exponential(this.meanStepGapMicros);
  }

  next(): Episode {
    const drawn = this.lastStart + this.episodes.exponential(this.meanGapMicros);
    const start = Math.round(
      this.index === 0 ? drawn : Math.max(drawn, this.lastEnd + MIN_GAP_MICROS),
    );
    const episode = buildEpisode({
      vm: this.vm,
      index: this.index++,
      role: this.role,
      startMicros: start,
      config: this.config,
      p2pTime: this.p2pTime,
      prng: this.episodes,
    });
    for (const event of episode.events) {
      while (this.nextStepAt <= event.atMicros) {
        const sign = this.clock.chance(0.5) ? 1 : -1;
        this.offset += sign * Math.round(this.config.clockStepMs * 1000);
        this.nextStepAt += this.clock.exponential(this.meanStepGapMicros);
        episode.clockSteps++;
      }
      event.clockOffsetMicros = this.offset;
    }
    this.lastStart = start;
    this.lastEnd = episode.endMicros;
    this.role = nextRole(episode);
    return episode;
  }
}

function nextRole(episode: Episode): EpisodeRole {
  if (episode.role === 'source') return episode.outcome === 'completed' ? 'destination' : 'source';
  return episode.outcome === 'completed' ? 'source' : 'destination';
}

export interface ScheduleLimits {
  /** Stop after this many migrations in the whole fleet, the earliest-starting ones. */
  maxMigrations?: number;
  /** Only migrations that end within this much virtual time. */
  durationMicros?: number;
}

/**
 * How many migrations each VM plays under the limits, or null when there are none (run until
 * stopped). With a migration limit, the fleet's migrations are taken in order of start time
 * (ties by VM index), so the set does not depend on how fast the sockets are read.
 */
export function migrationsPerVm(
  vms: readonly VmSpec[],
  config: FleetConfig,
  limits: ScheduleLimits,
): number[] | null {
  const { maxMigrations, durationMicros = Infinity } = limits;
  if (maxMigrations === undefined && durationMicros === Infinity) return null;
  const counts = vms.map(() => 0);
  const schedules = vms.map((vm) => new VmSchedule(vm, config));
  const heads: (Episode | null)[] = schedules.map((s) => s.next());
  const limit = maxMigrations ?? Infinity;
  let total = 0;
  while (total < limit) {
    // A linear scan per pick: fine for fleets of thousands; switch to a heap beyond that.
    let best = -1;
    for (let i = 0; i < heads.length; i++) {
      const head = heads[i];
      if (head == null || head.endMicros > durationMicros) continue;
      if (best < 0 || head.startMicros < (heads[best] as Episode).startMicros) best = i;
    }
    if (best < 0) break;
    counts[best] = (counts[best] as number) + 1;
    total++;
    heads[best] = (schedules[best] as VmSchedule).next();
  }
  return counts;
}
