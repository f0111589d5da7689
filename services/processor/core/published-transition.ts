import type { EventRecord } from '../../shared/core/event-record.ts';
import type { TransitionRecord } from '../../shared/core/transition-record.ts';

/** A transition as the processor publishes it: the engine's record plus its QMP session. */
export type PublishedTransition = TransitionRecord & { sessionId: string | null };

/** What decoding one events-topic value gives (the Avro event codec's result fits). */
export type EventDecodeResult =
  | { readonly kind: 'record'; readonly value: EventRecord }
  | {
      readonly kind: 'invalid';
      readonly reason: string;
      readonly error?: { readonly message: string } | undefined;
    };
