/**
 * Why a value on a topic is not a record of ours, in the one spelling every stage uses: snake_case,
 * as Prometheus label values (`vfio_exporter_records_invalid_total{reason}`,
 * `vfio_processor_records_dead_lettered_total{reason}`), the dead-letter topic's `vfio-error`
 * header and `audit`'s report. Frame reasons come from the single-object framing
 * (single-object.ts); the rest from resolving and reading the datum (shared/io/avro-codec.ts).
 */
export const AVRO_FRAME_INVALID_REASONS = ['short_frame', 'bad_marker'] as const;
export type AvroFrameInvalidReason = (typeof AVRO_FRAME_INVALID_REASONS)[number];

export const AVRO_DECODE_INVALID_REASONS = [
  ...AVRO_FRAME_INVALID_REASONS,
  'unknown_schema',
  'truncated_body',
  'trailing_bytes',
  'bad_body',
] as const;
export type AvroDecodeInvalidReason = (typeof AVRO_DECODE_INVALID_REASONS)[number];
