/**
 * What a simulated fleet looks like. Pure data: the CLI (`../config.ts`) and the programmatic
 * API fill it in; `createFleet` and `VmSchedule` turn it into VMs and their event schedules.
 */
export interface FleetConfig {
  /** Same seed, same fleet, same events. */
  seed: number;
  vms: number;
  devicesPerVm: number;
  /** Migrations started per VM per minute (Poisson), as a source or as a destination. */
  migrationsPerVmPerMinute: number;
  /** Share of devices whose driver supports the P2P states. */
  p2pRatio: number;
  /** Share of devices whose driver supports PRE_COPY. */
  precopyRatio: number;
  /** Median and p99 of the PRE_COPY → PRE_COPY_P2P ioctl (the prepare-to-completion time), ms. */
  p2pMedianMs: number;
  p2pP99Ms: number;
  /** Share of migrations that fail: cancelled in pre-copy, failed after stop, or failed load. */
  failureRate: number;
  /** Share of PRE_COPY_P2P ioctls that fail (device reset, `running` after the prepare). */
  prepareFailureRate: number;
  /** Wall-clock steps per VM per minute (NTP steps seen in QEMU's timestamps). */
  clockStepsPerVmPerMinute: number;
  /** Size of a clock step, ms; each step goes forward or backward at random. */
  clockStepMs: number;
}

export const DEFAULT_FLEET_CONFIG: Readonly<FleetConfig> = Object.freeze({
  seed: 1,
  vms: 10,
  devicesPerVm: 2,
  migrationsPerVmPerMinute: 1,
  p2pRatio: 0.9,
  precopyRatio: 0.9,
  p2pMedianMs: 80,
  p2pP99Ms: 600,
  failureRate: 0.05,
  prepareFailureRate: 0.05,
  clockStepsPerVmPerMinute: 0,
  clockStepMs: 1000,
});

/** Every problem with a fleet config, as `key: reason` lines; empty when it is valid. */
export function fleetConfigProblems(config: FleetConfig): string[] {
  const problems: string[] = [];
  const check = (key: keyof FleetConfig, ok: boolean, want: string): void => {
    if (!ok) problems.push(`${key}: must be ${want}, got ${String(config[key])}`);
  };
  const int = (v: number, min: number): boolean => Number.isInteger(v) && v >= min;
  const ratio = (v: number): boolean => Number.isFinite(v) && v >= 0 && v <= 1;
  const positive = (v: number): boolean => Number.isFinite(v) && v > 0;
  check('seed', int(config.seed, 0) && config.seed <= 0xffffffff, 'an integer in 0..4294967295');
  check('vms', int(config.vms, 1) && config.vms <= 100_000, 'an integer in 1..100000');
  check(
    'devicesPerVm',
    int(config.devicesPerVm, 0) && config.devicesPerVm <= 64,
    'an integer in 0..64',
  );
  check('migrationsPerVmPerMinute', positive(config.migrationsPerVmPerMinute), 'a positive number');
  check('p2pRatio', ratio(config.p2pRatio), 'a number in 0..1');
  check('precopyRatio', ratio(config.precopyRatio), 'a number in 0..1');
  check('p2pMedianMs', positive(config.p2pMedianMs), 'a positive number');
  check(
    'p2pP99Ms',
    positive(config.p2pP99Ms) && config.p2pP99Ms >= config.p2pMedianMs,
    'a number >= p2pMedianMs',
  );
  check('failureRate', ratio(config.failureRate), 'a number in 0..1');
  check('prepareFailureRate', ratio(config.prepareFailureRate), 'a number in 0..1');
  check(
    'clockStepsPerVmPerMinute',
    Number.isFinite(config.clockStepsPerVmPerMinute) && config.clockStepsPerVmPerMinute >= 0,
    'a number >= 0',
  );
  check(
    'clockStepMs',
    Number.isFinite(config.clockStepMs) && config.clockStepMs >= 0,
    'a number >= 0',
  );
  return problems;
}
