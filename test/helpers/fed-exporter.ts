/**
 * The real exporter (services/exporter/main.ts) with its Kafka consumer replaced by a hand: the
 * test feeds transition records straight into the exporter's sink, as the consumer would after
 * decoding a fetch. Its /metrics is what Prometheus scrapes in the infra tests. Pass the test
 * context and `stop()` is registered with `t.after`.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { parseExporterConfig } from '../../services/exporter/config.ts';
import { startExporter } from '../../services/exporter/main.ts';
import type { TransitionSink } from '../../services/exporter/io/transition-sink.ts';
import type { TransitionRecord } from '../../services/shared/core/transition-record.ts';
import { createTransitionCodec } from '../../services/shared/io/avro-codec.ts';
import { createLogger } from '../../services/shared/io/logger.ts';

export interface FedExporter {
  /** `127.0.0.1:PORT`, a scrape target. */
  address: string;
  /** Observes the record as received at `nowMicros` (default: now). */
  feed(record: TransitionRecord, nowMicros?: number): void;
  stop(): Promise<void>;
}

export async function startFedExporter(t?: TestContext): Promise<FedExporter> {
  let sink: TransitionSink | undefined;
  const config = parseExporterConfig({
    env: { KAFKA_BROKERS: 'unused:9092' },
    flags: { 'http-port': '0' },
  });
  const exporter = await startExporter(config, createLogger({ level: 'warn' }), {
    startConsumer: (s) => {
      sink = s;
      return Promise.resolve({
        readiness: () => ({ ready: true, reasons: [] }),
        stop: () => Promise.resolve(),
      });
    },
  });
  t?.after(() => exporter.stop());
  assert.ok(sink !== undefined);
  const fed = sink;
  const codec = createTransitionCodec();
  let offset = 0;
  return {
    address: exporter.http.url.replace(/^http:\/\//, ''),
    stop: () => exporter.stop(),
    feed(record, nowMicros = Date.now() * 1000) {
      fed.observe(codec.encode(record), nowMicros, { partition: 0, offset: String(offset++) });
    },
  };
}
