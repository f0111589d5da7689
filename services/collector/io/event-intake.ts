/**
 * The collector's event intake: what every QMP source (socket, socket directory, libvirt) hands
 * its sessions and events to. An event is numbered (session id, sequence), built into a record,
 * encoded and appended to the spool; only a record the spool took counts as accepted, and one it
 * refused (or that cannot be encoded) renews the VM's session, so the processor never computes a
 * transition across the hole.
 */
import { isTelemetryError } from '../../shared/core/errors.ts';
import type { EventRecord } from '../../shared/core/event-record.ts';
import { buildEventRecord } from '../../shared/core/event-record-builder.ts';
import type { AvroCodec } from '../../shared/io/avro-codec.ts';
import { eventKey } from '../core/partitioner.ts';
import type { RecordNumber, RecordNumbering } from '../core/record-numbering.ts';
import type { CollectorTelemetry } from './collector-telemetry.ts';
import type { QmpConnectionHandler, QmpSession } from './qmp-connection.ts';
import type { Spool } from './spool.ts';

export interface EventIntakeOptions {
  /** Written into every record and the Kafka key. */
  host: string;
  codec: AvroCodec<EventRecord>;
  spool: Pick<Spool, 'append'>;
  numbering: RecordNumbering;
  telemetry: CollectorTelemetry;
}

/** The handler every QMP source calls. */
export function createEventIntake(options: EventIntakeOptions): QmpConnectionHandler {
  const { host, codec, spool, numbering, telemetry } = options;

  const accept = (
    session: QmpSession,
    key: string,
    number: RecordNumber,
    record: EventRecord,
  ): void => {
    let value: Buffer;
    try {
      value = codec.encode(record);
    } catch (error) {
      if (!isTelemetryError(error, 'AVRO_INVALID_RECORD')) throw error;
      numbering.dropped(key, 'invalid_record');
      telemetry.eventsDropped('invalid_record', 1, error);
      return;
    }
    // A refused append reports the drop to `numbering` through the spool's `dropped`.
    if (!spool.append({ receivedMicros: record.receivedMicros, key, value })) return;
    numbering.accepted(key, number);
    session.sequence++;
    if (number.renewed !== null) {
      telemetry.sessionRenewed(
        record.vm,
        number.renewed.after,
        number.renewed.previousSessionId,
        number.sessionId,
      );
    }
    telemetry.eventAccepted(record.vm, record.sessionId, record.sequence, record.event);
  };

  return {
    message: (kind) => telemetry.qmpMessageRead(kind),
    rejected: (vm, invalid) => telemetry.qmpMessageRejected(vm, invalid),
    sessionStarted: (session, greeting, reconnect) =>
      telemetry.sessionStarted(session.vm, session.sessionId, greeting.qemuVersion, reconnect),
    sessionEnded: (session, reason) => {
      numbering.ended(eventKey(host, session.vm), session.sessionId);
      telemetry.sessionEnded(session.vm, session.sessionId, session.sequence, reason);
    },
    connectFailed: (vm, error, retryInMs) => telemetry.qmpConnectFailed(vm, error, retryInMs),
    event: (session, event, receivedMicros) => {
      const key = eventKey(host, session.vm);
      const number = numbering.next(key, session.sessionId);
      const record = buildEventRecord(
        {
          host,
          vm: session.vm,
          sessionId: number.sessionId,
          sequence: number.sequence,
          receivedMicros,
        },
        event,
      );
      if ('kind' in record) {
        telemetry.qmpMessageRejected(session.vm, record);
        return;
      }
      accept(session, key, number, record);
    },
  };
}
