import type { TransitionRecord } from '../../shared/core/transition-record.ts';

/**
 * What makes a transition the same transition when it is computed twice (after a crash, the
 * processor recomputes from its last saved state): the device, the kind, and when it started. A
 * device cannot start two prepares or two states at one timestamp (identical events are
 * duplicates), so this is unique; the outcome is deliberately not part of it, so a prepare first
 * published as `timed_out` on the processor's clock is not published again as `completed`.
 */
export function transitionIdentity(record: TransitionRecord): string {
  return `${record.type}\u0000${record.host}\u0000${record.vm}\u0000${record.qomPath}\u0000${record.startMicros}`;
}
