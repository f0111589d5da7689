/**
 * The one wall clock in µs that every stage reads (collector receive times, processor and
 * exporter latencies, the simulator's QEMU clock anchor). Core code never calls it: the time
 * arrives there as data.
 */
import { performance } from 'node:perf_hooks';

/** Wall clock in µs with sub-ms resolution (Date.now() has only ms). */
export function nowMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}
