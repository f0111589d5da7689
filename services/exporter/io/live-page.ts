/**
 * The live page: static HTML/CSS/JS from `services/exporter/page/` (no build step, no external
 * assets; embedded in a build) and the JSON it polls, `GET /api/summary`. The files are read once
 * when the routes are created, not at import time, and served from memory.
 */
import type { ServerResponse } from 'node:http';
import type { HttpRoute } from '../../shared/io/http-server.ts';
import { readPackagedFile } from '../../shared/io/packaged-files.ts';
import type { LiveSummary } from '../core/live-summary.ts';

const PAGE_DIR = 'services/exporter/page/';
const FILES = [
  { path: '/', file: 'index.html', type: 'text/html; charset=utf-8' },
  { path: '/live.js', file: 'live.js', type: 'text/javascript; charset=utf-8' },
  { path: '/live.css', file: 'live.css', type: 'text/css; charset=utf-8' },
] as const;

export function livePageRoutes(
  summary: () => Promise<LiveSummary>,
): Promise<Record<string, HttpRoute>> {
  const routes: Record<string, HttpRoute> = {};
  for (const { path, file, type } of FILES) {
    const body = readPackagedFile(`${PAGE_DIR}${file}`);
    routes[path] = (_req, res) => {
      send(res, 200, type, body);
      return Promise.resolve();
    };
  }
  routes['/api/summary'] = async (_req, res) => {
    send(res, 200, 'application/json', JSON.stringify(await summary()));
  };
  return Promise.resolve(routes);
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  res
    .writeHead(status, {
      'content-type': type,
      'cache-control': 'no-store',
      // The page loads nothing from elsewhere; say so, so a browser enforces it.
      'content-security-policy':
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:",
    })
    .end(body);
}
