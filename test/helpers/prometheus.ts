/**
 * A real Prometheus for tests, and the PromQL found in the repository's rules and dashboards.
 *
 * `startPrometheus`: a `prometheus` binary of `PROMETHEUS_VERSIONS` (Debian's 2.42 by default;
 * infra/setup-system.sh installs it and builds Prometheus 3) on a free loopback port, with a temporary TSDB, scraping the given loopback targets every second
 * and evaluating the given rule files every second. `stop()` ends it by PID and removes the
 * temporary directory; pass the test context and it is registered with `t.after`.
 */
import { AssertionError } from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { parse, stringify } from 'yaml';

/** A Prometheus to test against: its server and its promtool. */
export interface PrometheusVersion {
  name: string;
  /** 2 keeps a classic bucket's `le` as the target wrote it; 3 stores it float-formatted. */
  major: 2 | 3;
  prometheus: string;
  promtool: string;
}

const PROMETHEUS3_DIR =
  process.env.VFIO_PROMETHEUS3_DIR ?? join(homedir(), '.cache/vfio-telemetry/prometheus3');

/**
 * The rules, dashboards and exemplar queries are tested on both: Debian 12's Prometheus 2.42 and
 * Prometheus 3, which fleets run (built from the Go module proxy by infra/setup-system.sh).
 */
export const PROMETHEUS_VERSIONS: readonly PrometheusVersion[] = Object.freeze([
  { name: 'Prometheus 2.42 (Debian)', major: 2, prometheus: 'prometheus', promtool: 'promtool' },
  {
    name: 'Prometheus 3',
    major: 3,
    prometheus: join(PROMETHEUS3_DIR, 'prometheus'),
    promtool: join(PROMETHEUS3_DIR, 'promtool'),
  },
]);

export interface PrometheusOptions {
  /** The binary to run; default Debian's `prometheus` on the PATH. */
  binary?: string;
  /** Scrape targets by job name, as `HOST:PORT` (path `/metrics`). */
  targets: Readonly<Record<string, readonly string[]>>;
  /** Rule files to load (paths; relative ones resolve from the working directory). */
  ruleFiles?: readonly string[];
  /** When given, `stop` is registered with `t.after`. */
  t?: TestContext;
  /** How long startup may take before it counts as failed; default 30 s. */
  startTimeoutMs?: number;
  /** More command-line flags, e.g. `--enable-feature=exemplar-storage`. */
  extraArgs?: readonly string[];
  /** More settings for every scrape job, e.g. `{ convert_classic_histograms_to_nhcb: true }`. */
  scrapeSettings?: Readonly<Record<string, unknown>>;
}

export interface RunningPrometheus {
  /** `http://127.0.0.1:PORT` */
  url: string;
  pid: number;
  /** Runs an instant query; resolves to the API's JSON response whatever its status. */
  query(expr: string): Promise<PrometheusResponse>;
  /** GET on an API path (e.g. `/api/v1/rules`), parsed. */
  get(path: string): Promise<PrometheusResponse>;
  stop(): Promise<void>;
}

export interface PrometheusResponse {
  status: 'success' | 'error';
  data?: unknown;
  errorType?: string;
  error?: string;
}

/** A port that was free a moment ago. Prometheus binds it itself, so a race is retried. */
async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return address.port;
}

/**
 * Polls `probe` until it returns a value other than undefined; fails with `what` on timeout. An
 * assertion failing inside the probe fails at once: it states something that waiting won't fix.
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      if (error instanceof AssertionError) throw error;
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
    }
    await delay(intervalMs);
  }
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = once(child, 'exit');
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => {
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
  }, 10_000);
  await exited;
  clearTimeout(timer);
}

async function startOnce(options: PrometheusOptions, dir: string): Promise<RunningPrometheus> {
  const port = await freeLoopbackPort();
  const url = `http://127.0.0.1:${port}`;
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
    rule_files: (options.ruleFiles ?? []).map((f) => resolve(f)),
    scrape_configs: Object.entries(options.targets).map(([job, targets]) => ({
      job_name: job,
      static_configs: [{ targets: [...targets] }],
      ...options.scrapeSettings,
    })),
  };
  const configFile = join(dir, 'prometheus.yml');
  await writeFile(configFile, stringify(config));
  const child = spawn(
    options.binary ?? 'prometheus',
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, `data-${port}`)}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
      ...(options.extraArgs ?? []),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    log = (log + chunk).slice(-8192);
  });
  await new Promise<void>((resolveSpawn, rejectSpawn) => {
    child.once('spawn', resolveSpawn);
    child.once('error', (error) => {
      rejectSpawn(
        new Error(`cannot run ${options.binary ?? 'prometheus'} (see infra/setup-system.sh)`, {
          cause: error,
        }),
      );
    });
  });
  if (child.pid === undefined) throw new Error('prometheus did not start');
  const pid = child.pid;

  const get = async (path: string): Promise<PrometheusResponse> => {
    const res = await fetch(`${url}${path}`);
    return (await res.json()) as PrometheusResponse;
  };
  const running: RunningPrometheus = {
    url,
    pid,
    get,
    query: (expr) => get(`/api/v1/query?query=${encodeURIComponent(expr)}`),
    stop: () => stopProcess(child),
  };
  try {
    await pollUntil(
      `prometheus at ${url} to be ready`,
      async () => {
        if (child.exitCode !== null) {
          throw new Error(`prometheus exited with ${child.exitCode}:\n${log}`);
        }
        const res = await fetch(`${url}/-/ready`);
        return res.ok ? true : undefined;
      },
      options.startTimeoutMs ?? 30_000,
    );
  } catch (error) {
    await running.stop();
    throw error;
  }
  return running;
}

export async function startPrometheus(options: PrometheusOptions): Promise<RunningPrometheus> {
  const dir = await mkdtemp(join(tmpdir(), 'vfio-prometheus-'));
  const removeDir = () => rm(dir, { recursive: true, force: true });
  let lastError: unknown;
  // The free port can be taken between probing and binding; three tries make that negligible.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const running = await startOnce(options, dir);
      const stop = async (): Promise<void> => {
        await running.stop();
        await removeDir();
      };
      options.t?.after(stop);
      return { ...running, stop };
    } catch (error) {
      lastError = error;
    }
  }
  await removeDir();
  throw lastError;
}

/** A PromQL expression and where it was found, for test names and failure messages. */
export interface PromqlSource {
  where: string;
  expr: string;
}

interface RuleFile {
  groups: { name: string; rules: { record?: string; alert?: string; expr: string }[] }[];
}

const REPO = resolve(import.meta.dirname, '../..');

/** The repository's Prometheus rule files (infra/prometheus/rules/*.rules.yml), sorted. */
export async function repoRuleFiles(): Promise<string[]> {
  const dir = join(REPO, 'infra/prometheus/rules');
  return (await readdir(dir))
    .filter((f) => f.endsWith('.rules.yml'))
    .sort()
    .map((f) => join(dir, f));
}

/**
 * Every expression of the repository's rules and Grafana dashboards (variables substituted, as
 * Grafana would send them); `withAlerts: false` leaves alerts out (quiet, they return nothing;
 * their inputs are the recording rules).
 */
export async function repoExpressions(options: { withAlerts: boolean }): Promise<PromqlSource[]> {
  const rules = await ruleExpressions(await repoRuleFiles());
  const sources = options.withAlerts ? rules : rules.filter((s) => !/ Vfio\w+$/.test(s.where));
  const dir = join(REPO, 'infra/grafana/dashboards');
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.json')).sort()) {
    const dashboard = JSON.parse(await readFile(join(dir, file), 'utf8')) as Json;
    for (const source of dashboardExpressions(dashboard, `infra/grafana/dashboards/${file}`)) {
      sources.push({ ...source, expr: substituteGrafanaVariables(source.expr, dashboard) });
    }
  }
  return sources;
}

/** Every rule's expression (recording and alerting) in Prometheus rule files. */
export async function ruleExpressions(files: readonly string[]): Promise<PromqlSource[]> {
  const sources: PromqlSource[] = [];
  for (const file of files) {
    const parsed = parse(await readFile(file, 'utf8')) as RuleFile;
    for (const group of parsed.groups) {
      for (const rule of group.rules) {
        const name = rule.alert ?? rule.record ?? '?';
        sources.push({ where: `${basename(file)} ${group.name} ${name}`, expr: rule.expr.trim() });
      }
    }
  }
  return sources;
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
const isObject = (v: Json | undefined): v is { [key: string]: Json } =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const asArray = (v: Json | undefined): Json[] => (Array.isArray(v) ? v : []);
const asText = (v: Json | undefined): string =>
  typeof v === 'string' || typeof v === 'number' ? String(v) : '?';

/**
 * Every PromQL expression of a Grafana dashboard: panel targets (rows included), annotation
 * queries, and query variables (`label_values(m, l)` becomes `group by (l) (m)`, what Grafana asks
 * Prometheus for in effect). Grafana variables are still in; see `substituteGrafanaVariables`.
 */
export function dashboardExpressions(dashboard: Json, file: string): PromqlSource[] {
  const sources: PromqlSource[] = [];
  if (!isObject(dashboard)) return sources;
  const visit = (panels: Json[]): void => {
    for (const panel of panels) {
      if (!isObject(panel)) continue;
      for (const target of asArray(panel.targets)) {
        if (isObject(target) && typeof target.expr === 'string') {
          const title = typeof panel.title === 'string' ? panel.title : '?';
          sources.push({ where: `${file} "${title}" ${asText(target.refId)}`, expr: target.expr });
        }
      }
      visit(asArray(panel.panels));
    }
  };
  visit(asArray(dashboard.panels));
  const annotations = isObject(dashboard.annotations) ? asArray(dashboard.annotations.list) : [];
  for (const a of annotations) {
    if (isObject(a) && typeof a.expr === 'string') {
      sources.push({ where: `${file} annotation "${asText(a.name)}"`, expr: a.expr });
    }
  }
  const variables = isObject(dashboard.templating) ? asArray(dashboard.templating.list) : [];
  for (const v of variables) {
    if (!isObject(v) || v.type !== 'query') continue;
    const query = isObject(v.query) ? v.query.query : v.query;
    if (typeof query !== 'string') continue;
    const labelValues = /^label_values\((.+),\s*(\w+)\)$/.exec(query.trim());
    const expr = labelValues ? `group by (${labelValues[2]}) (${labelValues[1]})` : query;
    sources.push({ where: `${file} variable $${asText(v.name)}`, expr });
  }
  return sources;
}

/**
 * Replaces Grafana's macros and the dashboard's own variables with what Grafana would send:
 * `$__rate_interval` and friends by fixed ranges that hold several 1 s scrapes, a variable by its
 * "All" value (the dashboards' default selection).
 */
export function substituteGrafanaVariables(expr: string, dashboard: Json): string {
  const macros: Record<string, string> = {
    __rate_interval: '1m',
    __interval: '15s',
    __range: '1h',
  };
  const variables =
    isObject(dashboard) && isObject(dashboard.templating) ? asArray(dashboard.templating.list) : [];
  for (const v of variables) {
    if (isObject(v) && typeof v.name === 'string') {
      macros[v.name] = typeof v.allValue === 'string' && v.allValue !== '' ? v.allValue : '.*';
    }
  }
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)/g, (whole, a, b, c) => {
    const name = (a ?? b ?? c) as string;
    return macros[name] ?? whole;
  });
}
