import { option } from './config-spec.ts';

export interface ServiceOptionDefaults {
  /** `VFIO_COLLECTOR_` and so on. */
  envPrefix: string;
  httpPort: number;
  /** What the HTTP server serves, for the doc line. */
  serves: string;
  shutdownTimeoutMs: number;
  /** What SIGTERM waits for, for the doc line. */
  shutdownDoc: string;
}

/** The options every long-running stage has: its HTTP server, its shutdown deadline, its log level. */
export function serviceOptions(d: ServiceOptionDefaults) {
  return {
    httpHost: option({
      type: 'string',
      default: '127.0.0.1',
      env: `${d.envPrefix}HTTP_HOST`,
      flag: 'http-host',
      doc: `address of the ${d.serves} server (0.0.0.0 for remote)`,
    }),
    httpPort: option({
      type: 'integer',
      default: d.httpPort,
      min: 0,
      max: 65535,
      env: `${d.envPrefix}HTTP_PORT`,
      flag: 'http-port',
      doc: 'port of that server (0 picks a free one, printed at start)',
    }),
    webConfigFile: option({
      type: 'string',
      optional: true,
      env: 'WEB_CONFIG_FILE',
      flag: 'web-config-file',
      metavar: 'FILE',
      doc: 'TLS, basic auth and headers of that server, in the Prometheus exporter toolkit format (reloaded on SIGHUP and on change)',
    }),
    httpMaxConnections: option({
      type: 'integer',
      default: 256,
      min: 1,
      env: `${d.envPrefix}HTTP_MAX_CONNECTIONS`,
      flag: 'http-max-connections',
      doc: 'connections that server keeps open at once; more are closed and counted',
    }),
    httpHeadersTimeoutMs: option({
      type: 'integer',
      default: 10_000,
      min: 100,
      env: `${d.envPrefix}HTTP_HEADERS_TIMEOUT_MS`,
      flag: 'http-headers-timeout-ms',
      doc: "time a client has to send a request's headers (and finish a TLS handshake)",
    }),
    httpRequestTimeoutMs: option({
      type: 'integer',
      default: 30_000,
      min: 100,
      env: `${d.envPrefix}HTTP_REQUEST_TIMEOUT_MS`,
      flag: 'http-request-timeout-ms',
      doc: 'time a client has to send a whole request',
    }),
    httpKeepAliveTimeoutMs: option({
      type: 'integer',
      default: 5_000,
      min: 0,
      env: `${d.envPrefix}HTTP_KEEP_ALIVE_TIMEOUT_MS`,
      flag: 'http-keep-alive-timeout-ms',
      doc: 'time an idle keep-alive connection stays open',
    }),
    httpMaxRequestsPerSocket: option({
      type: 'integer',
      default: 1_000,
      min: 0,
      env: `${d.envPrefix}HTTP_MAX_REQUESTS_PER_SOCKET`,
      flag: 'http-max-requests-per-socket',
      doc: 'requests served on one connection before it is closed (0: no limit)',
    }),
    httpCacheMs: option({
      type: 'integer',
      default: 1_000,
      min: 0,
      env: `${d.envPrefix}HTTP_CACHE_MS`,
      flag: 'http-cache-ms',
      doc: 'how long a rendered /metrics (and live page summary) is reused (0: never)',
    }),
    shutdownTimeoutMs: option({
      type: 'integer',
      default: d.shutdownTimeoutMs,
      min: 100,
      env: `${d.envPrefix}SHUTDOWN_TIMEOUT_MS`,
      flag: 'shutdown-timeout-ms',
      doc: d.shutdownDoc,
    }),
    logLevel: option({
      type: 'string',
      default: 'info',
      oneOf: ['debug', 'info', 'warn', 'error'],
      env: `${d.envPrefix}LOG_LEVEL`,
      flag: 'log-level',
      doc: 'least severe log level written to stderr',
    }),
  };
}
