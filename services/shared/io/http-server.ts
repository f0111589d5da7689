/**
 * The health, readiness and metrics endpoints every stage serves:
 *   GET /metrics  Prometheus text from the stage's own Registry
 *   GET /healthz  200 while the process runs (liveness: restart me only if this fails)
 *   GET /readyz   200 when the stage can do its work, else 503 with the reasons (one per line)
 * Port 0 is allowed; the bound address is returned, so tests and `--http-port 0` work.
 * A stage may add its own GET routes (the exporter's live page); the three above win. A stage
 * may answer /metrics itself (the exporter picks the format from the request's Accept header).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from './logger.ts';
import { createRateLimitedLog } from './rate-limited-log.ts';

export interface Readiness {
  ready: boolean;
  /** Why the stage is not ready (or what it is ready with), for humans. */
  reasons: readonly string[];
}

/** Answers one GET/HEAD request; `path` is the URL path without the query string. */
export type HttpRoute = (req: IncomingMessage, res: ServerResponse, path: string) => Promise<void>;

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
}

export interface RunningHttpServer {
  host: string;
  port: number;
  /** `http://host:port` */
  url: string;
  close(): Promise<void>;
}

export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  const { registry, readiness, logger } = options;
  // A failing route fails for every request alike: one line per 10 s says so.
  const rateLimited = createRateLimitedLog(logger);
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
    } else if (path === '/metrics') {
      const { contentType, body } = options.metrics
        ? await options.metrics(req)
        : { contentType: registry.contentType, body: await registry.metrics() };
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
  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      rateLimited('http-request', 'error', 'HTTP request failed.', {
        path: (req.url ?? '').slice(0, 200),
        error,
      });
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    host: address.address,
    port: address.port,
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
