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
