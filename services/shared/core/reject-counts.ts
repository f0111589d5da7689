import { REJECT_REASONS, type RejectReason } from './qmp-message.ts';

export type RejectCounts = Record<RejectReason, number>;

export function emptyRejectCounts(): RejectCounts {
  const counts = {} as RejectCounts;
  for (const reason of REJECT_REASONS) counts[reason] = 0;
  return counts;
}

export function totalRejected(counts: RejectCounts): number {
  let total = 0;
  for (const reason of REJECT_REASONS) total += counts[reason];
  return total;
}
