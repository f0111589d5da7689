/**
 * Wires the exporter: transitions topic → decode → observations → prom-client, plus the HTTP
 * server (/metrics, /healthz, /readyz, the live page), the quantile-history timer and, when
 * `otlpEndpoint` is set, the OTLP output (closed after the consumer: its last export holds every
 * record the consumer observed). The only
 * place that opens sockets and starts timers; `startExporter` is the in-process API the `export`
 * command and the tests use.
 */
import { hostname } from 'node:os';
import type { OpenMetricsContentType, Registry } from 'prom-client';
import { DURATION_BUCKETS_SECONDS, RDMA_BUDGET_SECONDS } from '../shared/core/bucket-policy.ts';
import { createTransitionCodec } from '../shared/io/avro-codec.ts';
import { cacheFor, type RunningHttpServer } from '../shared/io/http-server.ts';
import type { Logger } from '../shared/io/logger.ts';
import { kafkaSecurityOf } from '../shared/kafka/core/options.ts';
import { describeRefusal } from '../shared/kafka/core/refusal.ts';
import { createKafkaRefusals } from '../shared/kafka/io/kafka-refusals.ts';
import { createRefusalDiagnosis } from '../shared/kafka/io/security.ts';
import { startStage, type KafkaPortFactory } from '../shared/io/stage.ts';
import type { ExporterConfig } from './config.ts';
import {
  aggregateHistogram,
  buildLiveSummary,
  sumBy,
  type LiveSummary,
} from './core/live-summary.ts';
import { createQuantileHistory } from './core/quantile-history.ts';
import { createSlowestPrepares } from './core/slowest-prepares.ts';
import { createLabelGuards } from './core/transition-observations.ts';
import { negotiateMetricsFormat } from './core/metrics-format.ts';
import {
  classicRegistryOf,
  createExporterTelemetry,
  createOpenMetricsRegistry,
  PROCESS_METRIC_PREFIX,
  type ExporterTelemetry,
} from './io/exporter-telemetry.ts';
import { livePageRoutes } from './io/live-page.ts';
import { startOtlpOutput } from './io/otlp-output.ts';
import {
  startTransitionConsumer,
  type RunningTransitionConsumer,
} from './io/transition-consumer.ts';
import { createTransitionSink, type TransitionSink } from './io/transition-sink.ts';

export interface RunningExporter {
  http: RunningHttpServer;
  /** The metrics as the classic text format serves them. */
  registry: Registry;
  /** The same metrics, with exemplars, as OpenMetrics serves them. */
  openMetricsRegistry: Registry<OpenMetricsContentType>;
  telemetry: ExporterTelemetry;
  summary(): Promise<LiveSummary>;
  /**
   * Stops fetching, commits the offsets observed since the last background commit, leaves the
   * consumer group, then closes HTTP.
   */
  stop(): Promise<void>;
}

export interface ExporterDeps {
  /** Replaces the Kafka consumer (the HTTP tests feed the sink directly). */
  startConsumer?: (sink: TransitionSink) => Promise<RunningTransitionConsumer>;
  /** Called when the consumer dies for good; the command shuts the process down. */
  onFatal?: (error: unknown) => void;
  /** Aborted when the command stops: a start waiting while Kafka refuses it gives up. */
  signal?: AbortSignal;
  /** Replaces how the stage makes Kafka ports. */
  kafkaPortFactory?: KafkaPortFactory;
  /** The OTLP output's `service.instance.id`; default `HOSTNAME:HTTP_PORT`. */
  instanceId?: string;
}

export async function startExporter(
  config: ExporterConfig,
  logger: Logger,
  deps: ExporterDeps = {},
): Promise<RunningExporter> {
  const openMetricsRegistry = createOpenMetricsRegistry();
  const telemetry = createExporterTelemetry({
    registry: openMetricsRegistry,
    logger,
    hostLabel: config.hostLabel,
  });
  return startStage(
    {
      name: 'exporter',
      logger,
      registry: openMetricsRegistry,
      http: config,
      ...(deps.kafkaPortFactory === undefined ? {} : { kafkaPortFactory: deps.kafkaPortFactory }),
    },
    async (stage) => {
      const refusals = createKafkaRefusals({
        registry: openMetricsRegistry,
        metricPrefix: PROCESS_METRIC_PREFIX,
        stage: 'exporter',
        logger,
        diagnose: createRefusalDiagnosis(config.brokers, kafkaSecurityOf(config)),
        ...(deps.signal === undefined ? {} : { signal: deps.signal }),
      });
      const otlp =
        config.otlpEndpoint === undefined
          ? undefined
          : startOtlpOutput({
              endpoint: config.otlpEndpoint,
              intervalMs: config.otlpIntervalMs,
              timeoutMs: Math.min(config.otlpIntervalMs, config.shutdownTimeoutMs),
              serviceName: 'vfio-exporter',
              instanceId: deps.instanceId ?? `${hostname()}:${config.httpPort}`,
              registry: openMetricsRegistry,
              logger,
            });
      if (otlp !== undefined) stage.started('otlp output', () => otlp.close());
      // After the stage, the refusal counters and the OTLP output registered their metrics: the
      // classic view lists the metrics it finds.
      const registry = classicRegistryOf(openMetricsRegistry);
      const guards = createLabelGuards({
        maxLabelValues: config.maxLabelValues,
        maxHosts: config.hostLabel ? config.maxHosts : null,
      });
      const slowestWindowMs = config.slowestWindowMinutes * 60_000;
      // One slot per minute: the window's edge is a minute sharp, memory is minutes × rows.
      const slowest = createSlowestPrepares({
        windowMs: slowestWindowMs,
        slots: config.slowestWindowMinutes,
        keep: config.slowestRows,
      });
      const sink = createTransitionSink(createTransitionCodec(), guards, telemetry, slowest, otlp);
      const bounds = DURATION_BUCKETS_SECONDS;
      const history = createQuantileHistory({
        bounds,
        windowMs: config.quantileWindowSeconds * 1000,
        capacity: config.quantilePoints,
        startMs: Date.now(),
      });

      let consumer: RunningTransitionConsumer | undefined = undefined;
      stage.readiness(
        () =>
          consumer?.readiness() ?? {
            ready: false,
            reasons: [
              refusals.current === undefined
                ? 'kafka: consumer not started'
                : describeRefusal(refusals.current),
            ],
          },
      );

      const latencyByOutcome = async () =>
        aggregateHistogram((await telemetry.samples()).prepareDuration, bounds, 'outcome');
      const buildSummary = async (): Promise<LiveSummary> => {
        const samples = await telemetry.samples();
        const r = stage.ready();
        const atMs = Date.now();
        return buildLiveSummary({
          atMs,
          ready: r.ready,
          readiness: r.reasons,
          recordsConsumed: samples.consumed,
          recordsInvalid: samples.invalid,
          bounds,
          budgetSeconds: RDMA_BUDGET_SECONDS,
          latencyByOutcome: aggregateHistogram(samples.prepareDuration, bounds, 'outcome'),
          outcomeCounts: sumBy(samples.prepareOutcomes, 'outcome'),
          quantileWindowSeconds: config.quantileWindowSeconds,
          quantiles: history.points(),
          slowest: slowest.top(atMs),
          slowestWindowSeconds: slowestWindowMs / 1000,
          latencyByHost: aggregateHistogram(
            samples.prepareDuration.filter((s) => s.labels['outcome'] === 'completed'),
            bounds,
            'host',
          ),
          preparesByHost: sumBy(samples.prepareOutcomes, 'host'),
        });
      };
      // The live page polls it; one render serves every open page within the cache time.
      const summary = cacheFor(stage.limits.cacheMs, buildSummary);

      const http = await stage.serve({
        registry,
        routes: await livePageRoutes(summary),
        metrics: async (req) => {
          const served =
            negotiateMetricsFormat(req.headers.accept) === 'openmetrics'
              ? openMetricsRegistry
              : registry;
          return { contentType: served.contentType, body: await served.metrics() };
        },
      });

      const tick = async (): Promise<void> => {
        const completed = (await latencyByOutcome()).get('completed');
        history.record(
          Date.now(),
          completed?.cumulative ?? new Array<number>(bounds.length + 1).fill(0),
        );
      };
      const timer = setInterval(() => {
        tick().catch((error: unknown) =>
          logger.error('Taking a quantile snapshot failed.', { error }),
        );
      }, config.quantileIntervalMs);
      timer.unref();
      stage.started('quantile timer', () => clearInterval(timer));

      const onFatal = deps.onFatal ?? (() => {});
      const defaultConsumer = async (s: TransitionSink): Promise<RunningTransitionConsumer> => {
        const port = stage.kafkaPort({
          brokers: config.brokers,
          clientId: config.clientId,
          security: kafkaSecurityOf(config),
        });
        try {
          const running = await startTransitionConsumer({
            port,
            topic: config.topic,
            groupId: config.groupId,
            fromBeginning: config.fromBeginning,
            maxBytes: config.fetchMaxBytes,
            maxRecords: config.batchMaxRecords,
            sink: s,
            logger,
            onFatal,
            refusals,
          });
          return {
            readiness: () => running.readiness(),
            stop: async () => {
              try {
                await running.stop();
              } finally {
                await port.close();
              }
            },
          };
        } catch (error) {
          await port.close();
          throw error;
        }
      };
      const started = await (deps.startConsumer ?? defaultConsumer)(sink);
      consumer = started;
      stage.started('consumer', () => started.stop());

      logger.info('Exporter started.', {
        topic: config.topic,
        groupId: config.groupId,
        hostLabel: config.hostLabel,
        otlpEndpoint: config.otlpEndpoint ?? null,
        metrics: `${http.url}/metrics`,
        page: `${http.url}/`,
      });

      let stopping: Promise<void> | undefined;
      const stop = async (): Promise<void> => {
        await stage.close();
        logger.info('Exporter stopped.');
      };
      return {
        http,
        registry,
        openMetricsRegistry,
        telemetry,
        summary: buildSummary,
        stop: () => (stopping ??= stop()),
      };
    },
  );
}
