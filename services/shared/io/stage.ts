/**
 * The one contract every long-running stage (collector, processor, exporter) starts under:
 *
 * - the stage's **web config** is read and validated before anything starts (a bad file starts
 *   nothing: CONFIG_INVALID, exit 2), and its **HTTP server** is started with that config and the
 *   stage's limits (`serve`);
 * - the combined `/readyz` is the combination of the checks each part adds (`readiness`): ready when every
 *   part is, with every part's reasons;
 * - the **logger**, the **registry** (the HTTP server's own metrics go into it, with the stage's
 *   prefix) and the **Kafka port factory** (`kafkaPort`: the one place where the Kafka client's
 *   connection and security settings are decided) are the stage's;
 * - every part registers its close as it starts (`started`); `close` closes them in reverse
 *   order, then the HTTP server, so /metrics stays scrapeable while the stage drains. When
 *   start-up fails halfway, `startStage` closes what had started, then rethrows: nothing is left
 *   running (no QMP connection, no Kafka client, no timer, no listening socket).
 *
 * The stage runner (stage-runner.ts) runs a stage as a process: signals, SIGHUP → reload the web
 * config, exit status.
 */
import type { Registry, RegistryContentType } from 'prom-client';
import { combineReadiness, type Readiness } from '../core/readiness.ts';
import {
  createHttpTelemetry,
  startHttpServer,
  type HttpLimits,
  type HttpRoute,
  type HttpServerOptions,
  type HttpTelemetry,
  type RunningHttpServer,
} from './http-server.ts';
import { createKafkaPort } from '../kafka/io/client.ts';
import type { KafkaSecurity } from '../kafka/core/options.ts';
import type { KafkaPort } from '../kafka/io/port.ts';
import type { Logger } from './logger.ts';
import { loadWebConfig, type LoadedWebConfig } from './web-config-file.ts';

/** The HTTP options of every stage's config (services/shared/core/service-options.ts). */
export interface StageHttpConfig {
  readonly httpHost: string;
  readonly httpPort: number;
  readonly webConfigFile?: string | undefined;
  readonly httpMaxConnections: number;
  readonly httpHeadersTimeoutMs: number;
  readonly httpRequestTimeoutMs: number;
  readonly httpKeepAliveTimeoutMs: number;
  readonly httpMaxRequestsPerSocket: number;
  readonly httpCacheMs: number;
}

/**
 * Makes the stage's Kafka clients. The seam for the Kafka security settings (TLS, SASL, mTLS):
 * they are decided here, once per stage, not by each part that talks to Kafka.
 */
export type KafkaPortFactory = (options: {
  brokers: readonly string[];
  clientId: string;
  logger: Logger;
  security?: KafkaSecurity;
}) => KafkaPort;

export interface StageOptions {
  /** `collector`, `processor`, `exporter`: the metric prefix is `vfio_<name>_`. */
  name: string;
  logger: Logger;
  /** The stage's registry; the HTTP server's metrics are registered in it. */
  registry: Registry<RegistryContentType>;
  http: StageHttpConfig;
  kafkaPortFactory?: KafkaPortFactory;
}

export interface Stage {
  readonly name: string;
  readonly logger: Logger;
  readonly limits: HttpLimits;
  /** A Kafka port for `brokers`; the caller registers its close with `started`. */
  kafkaPort(options: {
    brokers: readonly string[];
    clientId: string;
    security?: KafkaSecurity;
  }): KafkaPort;
  /** Registers a part that started; `close` closes parts in reverse order. */
  started(name: string, close: () => Promise<void> | void): void;
  /** Adds a check to the combined /readyz. */
  readiness(check: () => Readiness): void;
  /** Starts the HTTP server (web config, limits, combined /readyz); it closes after every part. */
  serve(options: {
    registry: Registry;
    routes?: Readonly<Record<string, HttpRoute>>;
    metrics?: HttpServerOptions['metrics'];
  }): Promise<RunningHttpServer>;
  /** The combined readiness of every part (what /readyz answers). */
  ready(): Readiness;
  /** Closes every part in reverse order, then the HTTP server; once. */
  close(): Promise<void>;
}

export function httpLimitsOf(config: StageHttpConfig): HttpLimits {
  return {
    maxConnections: config.httpMaxConnections,
    headersTimeoutMs: config.httpHeadersTimeoutMs,
    requestTimeoutMs: config.httpRequestTimeoutMs,
    keepAliveTimeoutMs: config.httpKeepAliveTimeoutMs,
    maxRequestsPerSocket: config.httpMaxRequestsPerSocket,
    cacheMs: config.httpCacheMs,
  };
}

/**
 * Opens the stage (reads its web config: nothing else has started if it is invalid), runs
 * `build`, and closes what `build` had started when it throws.
 */
export async function startStage<T>(
  options: StageOptions,
  build: (stage: Stage) => Promise<T>,
): Promise<T> {
  const stage = await openStage(options);
  try {
    return await build(stage);
  } catch (error) {
    // The command reports the error itself, once (stage-runner.ts); this line only says why the
    // parts that had started are closing.
    options.logger.info(`The ${options.name} did not start; closing what had started.`, {
      code: (error as { code?: unknown } | null)?.code,
    });
    await stage.close();
    throw error;
  }
}

async function openStage(options: StageOptions): Promise<Stage> {
  const { logger, http: config } = options;
  const webConfig: LoadedWebConfig | undefined =
    config.webConfigFile === undefined ? undefined : await loadWebConfig(config.webConfigFile);
  const telemetry: HttpTelemetry = createHttpTelemetry(options.registry, `vfio_${options.name}_`);
  const limits = httpLimitsOf(config);
  const factory = options.kafkaPortFactory ?? createKafkaPort;
  const parts: { name: string; close: () => Promise<void> | void }[] = [];
  const checks: (() => Readiness)[] = [];
  let server: RunningHttpServer | undefined;
  let closing: Promise<void> | undefined;
  const ready = (): Readiness => combineReadiness(checks.map((check) => check()));

  const closeAll = async (): Promise<void> => {
    for (const part of parts.splice(0).reverse()) {
      try {
        await part.close();
      } catch (error) {
        logger.error('A part failed to close.', { part: part.name, error });
      }
    }
    await server?.close();
  };

  return {
    name: options.name,
    logger,
    limits,
    kafkaPort: ({ brokers, clientId, security }) =>
      factory({ brokers, clientId, logger, ...(security === undefined ? {} : { security }) }),
    started: (name, close) => {
      parts.push({ name, close });
    },
    readiness: (check) => {
      checks.push(check);
    },
    ready,
    serve: async ({ registry, routes, metrics }) => {
      if (server !== undefined) throw new Error('serve called twice');
      server = await startHttpServer({
        host: config.httpHost,
        port: config.httpPort,
        registry,
        readiness: ready,
        logger,
        limits,
        telemetry,
        webConfigFile: config.webConfigFile,
        ...(webConfig === undefined ? {} : { webConfig }),
        ...(routes === undefined ? {} : { routes }),
        ...(metrics === undefined ? {} : { metrics }),
      });
      return server;
    },
    close: () => (closing ??= closeAll()),
  };
}
