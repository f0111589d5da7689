import { randomBytes } from 'node:crypto';
import {
  formatSessionId,
  nextSessionIdState,
  type SessionIdState,
} from '../../shared/core/session-id.ts';

/**
 * The collector's source of session ids: UUIDv7 from the wall clock, increasing for the life of
 * the process (one source per collector, shared by every connection and by the record numbering,
 * so that every session id of a VM is newer than the ones before it).
 */
export function createSessionIdSource(
  clock: () => number = Date.now,
  random: (size: number) => Uint8Array = randomBytes,
): () => string {
  let last: SessionIdState | null = null;
  return () => {
    last = nextSessionIdState(last, clock());
    return formatSessionId(last, random(8));
  };
}
