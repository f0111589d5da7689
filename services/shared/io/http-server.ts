/**
 * The health, readiness and metrics endpoints every stage serves:
 *   GET /metrics  Prometheus text from the stage's own Registry (reused for `cacheMs`)
 *   GET /healthz  200 while the process runs (liveness: restart me only if this fails)
 *   GET /readyz   200 when the stage can do its work, else 503 with the reasons (one per line)
 * Port 0 is allowed; the bound address is returned, so tests and `--http-port 0` work.
 * A stage may add its own GET routes (the exporter's live page); the three above win. A stage
 * may answer /metrics itself (the exporter picks the format from the request's Accept header).
 *
 * Secured as node_exporter is, by a web config file (services/shared/core/web-config.ts): TLS
 * (with client certificates), basic auth, extra response headers; reloaded on `reloadWebConfig`
 * (the stage runner calls it on SIGHUP) and when the file or a file it names changes. A reload
 * that fails keeps the config in force, and says so in a log line and a metric. Basic auth
 * guards every path but /healthz, which says no more than a TCP connect does and lets liveness
 * probes run without the password (docs/operations.md).
 *
 * Bounded: at most `maxConnections` sockets (more are closed at once and counted), headers within
 * `headersTimeoutMs` (slow-header clients are cut), whole requests within `requestTimeoutMs`, TLS
 * handshakes within `headersTimeoutMs`, idle keep-alive sockets closed after `keepAliveTimeoutMs`,
 * at most `maxRequestsPerSocket` requests on one socket.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import { Counter, Gauge, type Registry, type RegistryContentType } from 'prom-client';
import { TelemetryError } from '../core/errors.ts';
import type { Readiness } from '../core/readiness.ts';
import { createBasicAuth } from './basic-auth.ts';
import type { Logger } from './logger.ts';
import { createRateLimitedLog } from './rate-limited-log.ts';
import { loadWebConfig, type LoadedWebConfig } from './web-config-file.ts';

export type { Readiness } from '../core/readiness.ts';

/** Answers one GET/HEAD request; `path` is the URL path without the query string. */
export type HttpRoute = (req: IncomingMessage, res: ServerResponse, path: string) => Promise<void>;

export interface HttpLimits {
  /** Sockets open at once; more are closed on accept and counted. */
  maxConnections: number;
  /** Time to receive a request's headers (and to finish a TLS handshake). */
  headersTimeoutMs: number;
  /** Time to receive a whole request. */
  requestTimeoutMs: number;
  /** How long an idle keep-alive socket stays open. */
  keepAliveTimeoutMs: number;
  /** Requests served on one socket before it is closed; 0 for no limit. */
  maxRequestsPerSocket: number;
  /** How long a rendered /metrics is reused; 0 renders every time. */
  cacheMs: number;
}

export const DEFAULT_HTTP_LIMITS: Readonly<HttpLimits> = Object.freeze({
  maxConnections: 256,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxRequestsPerSocket: 1_000,
  cacheMs: 1_000,
});

export interface HttpServerOptions {
  host: string;
  port: number;
  registry: Registry;
  readiness: () => Readiness;
  logger: Logger;
  /** Extra GET routes by exact path. */
  routes?: Readonly<Record<string, HttpRoute>>;
  /** Answers /metrics instead of `registry.metrics()`. */
  metrics?: (req: IncomingMessage) => Promise<{ contentType: string; body: string }>;
  limits?: Partial<HttpLimits>;
  /** The web config file (TLS, basic auth, headers); none: plain HTTP, open. */
  webConfigFile?: string | undefined;
  /** The file, already loaded (the stage loads it before anything starts). */
  webConfig?: LoadedWebConfig;
  /** The server's own metrics; made on `registry` (`vfio_http_…`) without. */
  telemetry?: HttpTelemetry;
  /** How often the web config's files are checked for changes. */
  watchIntervalMs?: number;
}

export interface RunningHttpServer {
  host: string;
  port: number;
  /** `http://host:port` or `https://host:port` */
  url: string;
  /** Reads the web config file again; resolves false (the old one stays) when it is invalid. */
  reloadWebConfig(): Promise<boolean>;
  close(): Promise<void>;
}

/** The HTTP server's self-telemetry: each function counts (and logs where a human must know). */
export interface HttpTelemetry {
  connectionRefused(): void;
  connectionOpened(): void;
  connectionClosed(): void;
  unauthorized(reason: 'missing' | 'wrong'): void;
  tlsHandshakeFailed(): void;
  webConfigReloaded(ok: boolean): void;
}

/** `prefix`: the stage's, `vfio_collector_` and so on. */
export function createHttpTelemetry(
  // prom-client's Registry is generic in its content type; any of them takes these metrics.
  registry: Registry<RegistryContentType>,
  prefix: string,
): HttpTelemetry {
  const registers = [registry as Registry];
  const refused = new Counter({
    name: `${prefix}http_connections_refused_total`,
    help: 'HTTP connections closed on accept because the server had --http-max-connections open.',
    registers,
  });
  const open = new Gauge({
    name: `${prefix}http_connections`,
    help: 'HTTP connections open.',
    registers,
  });
  const unauthorized = new Counter({
    name: `${prefix}http_requests_unauthorized_total`,
    help: 'HTTP requests answered 401: credentials missing or wrong (web config basic_auth_users).',
    labelNames: ['reason'],
    registers,
  });
  const handshakes = new Counter({
    name: `${prefix}http_tls_handshake_failures_total`,
    help: 'TLS handshakes that failed: no, untrusted or refused client certificate, bad client, timeout.',
    registers,
  });
  const reloads = new Counter({
    name: `${prefix}http_web_config_reloads_total`,
    help: 'Reloads of the web config file (SIGHUP or a file change), by result.',
    labelNames: ['result'],
    registers,
  });
  const lastReload = new Gauge({
    name: `${prefix}http_web_config_last_reload_successful`,
    help: '1 when the last reload of the web config file succeeded (or none happened yet).',
    registers,
  });
  lastReload.set(1);
  for (const reason of ['missing', 'wrong']) unauthorized.inc({ reason }, 0);
  for (const result of ['success', 'failure']) reloads.inc({ result }, 0);
  return {
    connectionRefused: () => refused.inc(),
    connectionOpened: () => open.inc(),
    connectionClosed: () => open.dec(),
    unauthorized: (reason) => unauthorized.inc({ reason }),
    tlsHandshakeFailed: () => handshakes.inc(),
    webConfigReloaded: (ok) => {
      reloads.inc({ result: ok ? 'success' : 'failure' });
      lastReload.set(ok ? 1 : 0);
    },
  };
}

/** Reuses `fn`'s result for `ms` (and shares one call in flight); 0 calls it every time. */
export function cacheFor<T>(ms: number, fn: () => Promise<T>, now = Date.now): () => Promise<T> {
  if (ms <= 0) return fn;
  let cached: { at: number; value: Promise<T> } | undefined;
  return () => {
    const at = now();
    if (cached === undefined || at - cached.at >= ms) {
      const value = fn();
      cached = { at, value };
      // A failure is not reused.
      value.catch(() => {
        if (cached?.value === value) cached = undefined;
      });
    }
    return cached.value;
  };
}

/** Clients that take longer lose their socket; checked this often. */
const CONNECTIONS_CHECK_INTERVAL_MS = 1_000;
/** Accept headers a /metrics render is cached for at once (a hostile client sends many). */
const METRICS_CACHE_KEYS = 4;

export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  const { registry, readiness, logger } = options;
  const limits: HttpLimits = { ...DEFAULT_HTTP_LIMITS, ...options.limits };
  const telemetry = options.telemetry ?? createHttpTelemetry(registry, 'vfio_');
  const webConfigFile = options.webConfigFile;
  let web: LoadedWebConfig | null =
    options.webConfig ?? (webConfigFile === undefined ? null : await loadWebConfig(webConfigFile));
  const basicAuth = createBasicAuth({ cacheMs: 60_000 });
  // A failing route fails for every request alike: one line per 10 s says so.
  const rateLimited = createRateLimitedLog(logger);

  const renderMetrics =
    options.metrics ??
    (async () => ({
      contentType: registry.contentType,
      body: await registry.metrics(),
    }));
  const metricsCache = new Map<string, () => Promise<{ contentType: string; body: string }>>();
  const metrics = (req: IncomingMessage): Promise<{ contentType: string; body: string }> => {
    const key = req.headers.accept ?? '';
    let render = metricsCache.get(key);
    if (render === undefined) {
      render = cacheFor(limits.cacheMs, () => renderMetrics(req));
      if (metricsCache.size >= METRICS_CACHE_KEYS) metricsCache.clear();
      metricsCache.set(key, render);
    }
    return render();
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const config = web?.config;
    if (config !== undefined) {
      for (const [name, value] of Object.entries(config.headers)) res.setHeader(name, value);
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/healthz' && config !== undefined && config.basicAuthUsers.size > 0) {
      const verdict = await basicAuth(req.headers.authorization, config.basicAuthUsers);
      if (verdict !== 'ok') {
        telemetry.unauthorized(verdict);
        res
          .writeHead(401, {
            'www-authenticate': 'Basic realm="vfio-telemetry", charset="UTF-8"',
            'content-type': 'text/plain',
          })
          .end('unauthorized\n');
        return;
      }
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
    } else if (path === '/metrics') {
      const { contentType, body } = await metrics(req);
      res.writeHead(200, { 'content-type': contentType }).end(body);
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const r = readiness();
      res
        .writeHead(r.ready ? 200 : 503, { 'content-type': 'text/plain' })
        .end(`${r.ready ? 'ready' : 'not ready'}\n${r.reasons.map((x) => `${x}\n`).join('')}`);
    } else if (
      path !== undefined &&
      options.routes !== undefined &&
      Object.hasOwn(options.routes, path)
    ) {
      // hasOwn, not `in`: a request for "constructor" must not reach Object.prototype.
      await (options.routes[path] as HttpRoute)(req, res, path);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  };
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((error: unknown) => {
      rateLimited('http-request', 'error', 'HTTP request failed.', {
        path: (req.url ?? '').slice(0, 200),
        error,
      });
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  };

  const serverOptions = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: CONNECTIONS_CHECK_INTERVAL_MS,
  };
  const tlsOptions = web?.tlsOptions ?? null;
  const server: Server | HttpsServer =
    tlsOptions === null
      ? createServer(serverOptions, listener)
      : createHttpsServer(
          { ...serverOptions, ...tlsOptions, handshakeTimeout: limits.headersTimeoutMs },
          listener,
        );
  const secure = tlsOptions !== null;
  server.maxConnections = limits.maxConnections;
  server.maxRequestsPerSocket = limits.maxRequestsPerSocket;
  server.on('drop', () => {
    telemetry.connectionRefused();
    rateLimited('http-drop', 'warn', 'HTTP connections refused: too many open.', {
      maxConnections: limits.maxConnections,
    });
  });
  server.on('connection', (socket: Socket) => {
    telemetry.connectionOpened();
    socket.once('close', () => telemetry.connectionClosed());
  });

  const applyClientAuth = (): void => {
    const tls = web?.config.tls;
    if (!secure || tls === null || tls === undefined) return;
    // tls.Server reads these two for each new connection.
    const https = server as HttpsServer & { requestCert: boolean; rejectUnauthorized: boolean };
    https.requestCert = tls.clientAuthType !== 'NoClientCert';
    https.rejectUnauthorized = tls.clientAuthType === 'RequireAndVerifyClientCert';
  };
  if (secure) {
    applyClientAuth();
    server.on('tlsClientError', () => telemetry.tlsHandshakeFailed());
    server.on('secureConnection', (socket: TLSSocket) => {
      const refusal = clientCertificateRefusal(socket, web);
      if (refusal === null) return;
      telemetry.tlsHandshakeFailed();
      rateLimited('http-client-cert', 'warn', 'A TLS client was refused.', { reason: refusal });
      socket.destroy();
    });
  }

  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void =>
      reject(
        new TelemetryError(
          'HTTP_LISTEN_FAILED',
          `cannot listen on ${options.host}:${options.port} (${error.code ?? error.message})`,
          { cause: error, details: { host: options.host, port: options.port } },
        ),
      );
    server.once('error', onError);
    server.listen(options.port, options.host, () => {
      server.off('error', onError);
      resolve();
    });
  });

  let reloading: Promise<boolean> = Promise.resolve(true);
  const reload = (trigger: string): Promise<boolean> => {
    reloading = reloading.then(async () => {
      if (webConfigFile === undefined) return true;
      try {
        const next = await loadWebConfig(webConfigFile);
        if ((next.tlsOptions !== null) !== secure) {
          throw new TelemetryError(
            'CONFIG_INVALID',
            `${webConfigFile}: switching between HTTP and HTTPS needs a restart`,
          );
        }
        if (next.tlsOptions !== null) (server as HttpsServer).setSecureContext(next.tlsOptions);
        web = next;
        applyClientAuth();
        watch();
        telemetry.webConfigReloaded(true);
        logger.info('Web config reloaded.', { file: webConfigFile, trigger });
        return true;
      } catch (error) {
        telemetry.webConfigReloaded(false);
        logger.error('The web config file was not reloaded; the previous one stays in force.', {
          file: webConfigFile,
          trigger,
          error,
        });
        return false;
      }
    });
    return reloading;
  };

  // Polling, not inotify: an editor or certbot replaces the file by rename, which a watch on
  // the old inode never sees.
  let watched: readonly string[] = [];
  const onChange = (current: Stats, previous: Stats): void => {
    if (current.mtimeMs !== previous.mtimeMs || current.ino !== previous.ino) {
      void reload('file changed');
    }
  };
  const unwatch = (): void => {
    for (const file of watched) unwatchFile(file, onChange);
    watched = [];
  };
  const watch = (): void => {
    unwatch();
    if (web === null) return;
    watched = web.files;
    for (const file of watched) {
      watchFile(file, { interval: options.watchIntervalMs ?? 2000, persistent: false }, onChange);
    }
  };
  watch();

  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    host: address.address,
    port: address.port,
    url: `${secure ? 'https' : 'http'}://${host}:${address.port}`,
    reloadWebConfig: () => reload('SIGHUP'),
    close: () =>
      new Promise<void>((resolve) => {
        unwatch();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Why a client that completed the handshake is refused under the web config's client_auth_type
 * and client_allowed_sans, or null. RequireAndVerifyClientCert is enforced by OpenSSL already
 * (rejectUnauthorized); checked again here so that a reload that tightened it applies to every
 * connection from then on.
 */
function clientCertificateRefusal(socket: TLSSocket, web: LoadedWebConfig | null): string | null {
  const tls = web?.config.tls;
  if (tls === null || tls === undefined) return null;
  const cert = socket.getPeerCertificate();
  const given = cert !== null && Object.keys(cert).length > 0;
  switch (tls.clientAuthType) {
    case 'NoClientCert':
    case 'RequestClientCert':
      return null;
    case 'RequireAnyClientCert':
      if (!given) return 'no client certificate';
      break;
    case 'VerifyClientCertIfGiven':
      if (given && !socket.authorized)
        return `client certificate refused (${String(socket.authorizationError)})`;
      break;
    case 'RequireAndVerifyClientCert':
      if (!given) return 'no client certificate';
      if (!socket.authorized)
        return `client certificate refused (${String(socket.authorizationError)})`;
      break;
  }
  if (tls.clientAllowedSans.length === 0) return null;
  // "DNS:a.example, IP Address:10.0.0.1, URI:spiffe://x, email:a@b"
  const sans = (cert.subjectaltname ?? '')
    .split(', ')
    .map((entry) => entry.slice(entry.indexOf(':') + 1));
  return sans.some((san) => tls.clientAllowedSans.includes(san))
    ? null
    : 'no subject alternative name of the client certificate is in client_allowed_sans';
}
