/**
 * The `reason` label of `vfio_exporter_records_invalid_total`: why a transition record was not
 * observed. A fixed set, so the counter's series are created up front and `rate()` sees them
 * from zero. The Avro decoder's reasons (`short-frame`, …) are kept with hyphens turned into
 * underscores, the spelling of the other stages' reason labels.
 */
export const INVALID_REASONS = [
  'empty_value',
  'short_frame',
  'bad_marker',
  'unknown_schema',
  'truncated_body',
  'trailing_bytes',
  'bad_body',
  'unknown_type',
  'missing_field',
  'bad_value',
] as const;
export type InvalidReason = (typeof INVALID_REASONS)[number];

const KNOWN: ReadonlySet<string> = new Set(INVALID_REASONS);

/** The label for an Avro decode failure; a reason added to the codec later counts as bad_body. */
export function invalidReasonOfDecode(reason: string): InvalidReason {
  const label = reason.replaceAll('-', '_');
  return KNOWN.has(label) ? (label as InvalidReason) : 'bad_body';
}
