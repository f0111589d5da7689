import type { Prng } from './prng.ts';

/** z such that P(Z ≤ z) = 0.99 for a standard normal Z. */
const Z_P99 = 2.3263478740408408;

export interface Lognormal {
  mu: number;
  sigma: number;
}

/**
 * The lognormal with the given median and 99th percentile: median = e^mu and
 * p99 = e^(mu + z99·sigma). Durations of device ioctls are positive and right-skewed, and
 * "median and p99" is how operators state them, hence this parameterisation.
 */
export function lognormalFromMedianP99(median: number, p99: number): Lognormal {
  if (!(median > 0) || !(p99 >= median)) {
    throw new RangeError(`need 0 < median <= p99, got median ${median}, p99 ${p99}`);
  }
  return { mu: Math.log(median), sigma: (Math.log(p99) - Math.log(median)) / Z_P99 };
}

export function sampleLognormal(prng: Prng, { mu, sigma }: Lognormal): number {
  return Math.exp(mu + sigma * prng.normal());
}
