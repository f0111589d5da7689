/**
 * The `reason` label of `vfio_exporter_records_invalid_total`: why a transition record was not
 * observed — the Avro decoder's reasons as they are (one spelling, snake_case, in
 * shared/core/avro/decode-reasons.ts), an empty value, or a record that decoded but is not a
 * transition the exporter can use. A fixed set, so the counter's series are created up front and
 * `rate()` sees them from zero.
 */
import { AVRO_DECODE_INVALID_REASONS } from '../../shared/core/avro/decode-reasons.ts';

export const INVALID_REASONS = [
  'empty_value',
  ...AVRO_DECODE_INVALID_REASONS,
  'unknown_type',
  'missing_field',
  'bad_value',
] as const;
export type InvalidReason = (typeof INVALID_REASONS)[number];
