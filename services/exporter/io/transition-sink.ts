/**
 * One transition-topic message into metric observations: Avro decode (never throws), the pure
 * mapping, then prom-client. Anything that cannot be observed is counted by reason and skipped;
 * a poison record never stops the consumer.
 */
import type { TransitionRecord } from '../../shared/core/transition-record.ts';
import type { AvroCodec } from '../../shared/io/avro-codec.ts';
import { deviceLabel } from '../core/exemplar-labels.ts';
import type { SlowestPrepares } from '../core/slowest-prepares.ts';
import { observationsOf, type LabelGuards } from '../core/transition-observations.ts';
import type { ExporterTelemetry } from './exporter-telemetry.ts';
import type { OtlpOutput } from './otlp-output.ts';

export interface MessageRef {
  partition: number;
  offset: string;
}

export interface TransitionSink {
  /** Observes one message value; `nowMicros` is when the exporter read it. */
  observe(value: Buffer | null, nowMicros: number, where: MessageRef): void;
}

export function createTransitionSink(
  codec: AvroCodec<TransitionRecord>,
  guards: LabelGuards,
  telemetry: ExporterTelemetry,
  /** Where completed and failed prepares go for the live page's slowest-prepares table. */
  slowest?: SlowestPrepares,
  /** The optional OTLP output: the same observations, as exponential histograms. */
  otlp?: Pick<OtlpOutput, 'record'>,
): TransitionSink {
  return {
    observe(value, nowMicros, where) {
      telemetry.recordsConsumed(1);
      if (value === null || value.length === 0) {
        telemetry.recordInvalid('empty_value', { ...where });
        return;
      }
      const decoded = codec.decode(value);
      if (decoded.kind === 'invalid') {
        telemetry.recordInvalid(decoded.reason, {
          ...where,
          code: decoded.code,
          ...(decoded.fingerprint === undefined ? {} : { fingerprint: decoded.fingerprint }),
          ...(decoded.error === undefined ? {} : { error: decoded.error }),
        });
        return;
      }
      const mapped = observationsOf(decoded.value, nowMicros, guards);
      if (mapped.kind === 'invalid') {
        telemetry.recordInvalid(mapped.reason, { ...where, field: mapped.detail });
        return;
      }
      if (mapped.folds.length > 0) telemetry.labelsFolded(mapped.folds);
      telemetry.observed(mapped.observations);
      otlp?.record(mapped.observations);
      const r = decoded.value;
      if (slowest !== undefined && r.type === 'prepare' && r.seconds !== null) {
        slowest.add({
          host: r.host,
          vm: r.vm,
          device: deviceLabel(r.deviceId, r.qomPath),
          target: r.target,
          outcome: r.outcome,
          seconds: Math.max(0, r.seconds),
          closedAtMs: (r.endMicros ?? r.startMicros) / 1000,
          observedAtMs: nowMicros / 1000,
        });
      }
    },
  };
}
