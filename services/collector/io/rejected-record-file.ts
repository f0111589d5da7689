/**
 * Records Kafka refused for good (the Kafka port's `refused`: `MESSAGE_TOO_LARGE`,
 * `INVALID_RECORD`...) are kept here instead of blocking the spool: one JSON line each, appended
 * to `rejected.jsonl` next to the spool segments, with the record's bytes in base64 so that it
 * can be inspected or re-published by hand:
 *
 *   {"time":"2025-...Z","reason":"MESSAGE_TOO_LARGE","detail":"...","key":"host/vm",
 *    "bytes":1234567,"sessionId":"...","sequence":42,"receivedMicros":...,"value":"<base64>"}
 *
 * `sessionId`/`sequence` come from `identify` (the Avro decoder, wired in main.ts) and are null
 * when the bytes do not decode. The file is never rotated by the collector: rejections are rare
 * and each one is also counted and logged as an error.
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';

export const REJECTED_FILE = 'rejected.jsonl';

export interface RejectedRecord {
  readonly reason: string;
  readonly detail: string;
  readonly key: string;
  readonly value: Uint8Array;
  readonly receivedMicros: number;
}

export type IdentifyRecord = (
  value: Uint8Array,
) => { readonly sessionId: string; readonly sequence: number } | null;

export class RejectedRecordFile {
  readonly path: string;
  private readonly identify: IdentifyRecord;

  constructor(dir: string, identify: IdentifyRecord) {
    this.path = join(dir, REJECTED_FILE);
    this.identify = identify;
  }

  /** Appends one line (synchronously: it is on disk before the spool moves past the record). */
  write(record: RejectedRecord, nowMs: number): void {
    let id: ReturnType<IdentifyRecord> = null;
    try {
      id = this.identify(record.value);
    } catch {
      // Bytes that do not decode are kept all the same.
    }
    const value = Buffer.from(
      record.value.buffer,
      record.value.byteOffset,
      record.value.byteLength,
    );
    const line = JSON.stringify({
      time: new Date(nowMs).toISOString(),
      reason: record.reason,
      detail: record.detail,
      key: record.key,
      bytes: record.value.byteLength,
      sessionId: id?.sessionId ?? null,
      sequence: id?.sequence ?? null,
      receivedMicros: record.receivedMicros,
      value: value.toString('base64'),
    });
    appendFileSync(this.path, `${line}\n`);
  }
}
