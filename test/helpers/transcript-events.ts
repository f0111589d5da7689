/**
 * Real QEMU transcripts (test/fixtures/qmp) as the event records a collector would publish for
 * them, and the transitions the transition engine computes from those records.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { buildEventRecord } from '../../services/shared/core/event-record-builder.ts';
import type { EventRecord } from '../../services/shared/core/event-record.ts';
import { QmpDecoder } from '../../services/shared/core/qmp-decoder.ts';
import { TransitionEngine } from '../../services/shared/core/transition-engine.ts';
import type { TransitionRecord } from '../../services/shared/core/transition-record.ts';
import { vmEventFromRecord } from '../../services/shared/core/vm-event.ts';

/** One VM's events from `test/fixtures/qmp/<path>`: one QMP session, sequence from 1. */
export function transcriptEvents(path: string, host: string, vm: string): EventRecord[] {
  const decoder = new QmpDecoder();
  const bytes = readFileSync(new URL(`../fixtures/qmp/${path}`, import.meta.url));
  const sessionId = randomUUID();
  const out: EventRecord[] = [];
  for (const message of [...decoder.push(bytes), ...decoder.end()]) {
    if (message.kind !== 'event') continue;
    const record = buildEventRecord(
      {
        host,
        vm,
        sessionId,
        sequence: out.length + 1,
        receivedMicros: message.timestampMicros + 700,
      },
      message,
    );
    if (!('kind' in record)) out.push(record);
  }
  return out;
}

/** What the transition engine computes from one VM's events; prepares still open are not yet any. */
export function engineTransitions(events: readonly EventRecord[]): TransitionRecord[] {
  const engine = new TransitionEngine();
  const out: TransitionRecord[] = [];
  for (const record of events) {
    const event = vmEventFromRecord(record);
    if (event.kind !== 'invalid') out.push(...engine.apply(event));
  }
  return out;
}
