/**
 * QMP events with hostile content, through everything the collector and `replay` run on them:
 * the decoder (in random chunks), the record builder, the Avro event codec, the event model and
 * the transition engine. Content: nesting up to 3,000 levels, strings up to 20 KB, messages over 1 MiB and with
 * escapes, lone surrogates and raw non-UTF-8 bytes, numbers out of range (1e400, -0, 2^53 + 1,
 * fractions, negatives) in the timestamp and the data, timestamps far in the future or the past,
 * members missing or of the wrong type. Nothing throws; each message is one event or one
 * rejection with a known reason; every record encodes and decodes back to itself; and an event
 * that follows on the next line always gets through.
 *
 * fast-check runs with a fixed seed, so CI sees the same cases every time. A longer run with new
 * cases, for developers: `FUZZ_RUNS=20000 FUZZ_SEED=$RANDOM node --import tsx --test
 * test/unit/shared/core/fuzz-qmp-events.test.ts` (a failure prints the seed and path to replay).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { buildEventRecord } from '../../../../services/shared/core/event-record-builder.ts';
import { QmpDecoder } from '../../../../services/shared/core/qmp-decoder.ts';
import { REJECT_REASONS, type QmpMessage } from '../../../../services/shared/core/qmp-message.ts';
import { TransitionEngine } from '../../../../services/shared/core/transition-engine.ts';
import { vmEventFromRecord } from '../../../../services/shared/core/vm-event.ts';
import { createEventCodec } from '../../../../services/shared/io/avro-codec.ts';
import { FUZZ_SEED, fuzzRuns, piece } from '../../../helpers/fuzz-qmp.ts';

const RUNS = fuzzRuns(400);

const codec = createEventCodec();
const KNOWN_REASONS = new Set<string>(REJECT_REASONS);

const SENTINEL =
  '{"event":"SENTINEL","timestamp":{"seconds":1795798000,"microseconds":1},"data":{"n":1}}';

function decodeInChunks(bytes: Buffer, chunkSizes: readonly number[]): QmpMessage[] {
  const decoder = new QmpDecoder();
  const out: QmpMessage[] = [];
  for (let i = 0, k = 0; i < bytes.length; k++) {
    const size = chunkSizes[k % chunkSizes.length] as number;
    out.push(...decoder.push(bytes.subarray(i, i + size)));
    i += size;
  }
  out.push(...decoder.end());
  return out;
}

test('hostile QMP events: decoded, built, encoded and applied without a throw; the next line always gets through', () => {
  fc.assert(
    fc.property(
      fc.array(piece, { minLength: 1, maxLength: 6 }),
      fc.array(fc.integer({ min: 1, max: 4096 }), { minLength: 1, maxLength: 4 }),
      (pieces, chunkSizes) => {
        const bytes = Buffer.concat(pieces.flatMap((p) => [p, Buffer.from(`\r\n${SENTINEL}\r\n`)]));
        const messages = decodeInChunks(bytes, chunkSizes);
        const engine = new TransitionEngine();
        let sentinels = 0;
        for (const m of messages) {
          if (m.kind === 'invalid') {
            assert.ok(KNOWN_REASONS.has(m.reason), m.reason);
            assert.ok(m.detail.length <= 80, 'details are excerpts');
            continue;
          }
          if (m.kind !== 'event') continue;
          if (m.name === 'SENTINEL') sentinels++;
          assert.ok(Number.isSafeInteger(m.timestampMicros) && m.timestampMicros >= 0);
          const record = buildEventRecord(
            {
              host: 'h',
              vm: 'vm',
              sessionId: 's',
              sequence: 1,
              receivedMicros: 1_795_798_000_000_000,
            },
            m,
          );
          if ('kind' in record) {
            assert.ok(KNOWN_REASONS.has(record.reason), record.reason);
            continue;
          }
          const decoded = codec.decode(codec.encode(record));
          assert.equal(decoded.kind, 'record');
          assert.deepEqual(decoded.kind === 'record' ? { ...decoded.value } : null, record);
          const event = vmEventFromRecord(record);
          if (event.kind !== 'invalid') engine.apply(event);
        }
        engine.finish();
        assert.equal(sentinels, pieces.length, 'the event on the next line after each piece');
      },
    ),
    { seed: FUZZ_SEED, numRuns: RUNS },
  );
});
