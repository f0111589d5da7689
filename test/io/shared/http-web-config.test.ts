/**
 * The web config file on a real HTTP server (services/shared/io/http-server.ts): TLS with
 * certificates made by openssl for the test, client certificates required (none and another
 * CA's refused), basic auth (401 with WWW-Authenticate; /healthz open), extra headers, reload on
 * request and on a file change (a bad file keeps the old config, counted), and invalid files
 * refused at start with the line at fault — by the `collect` command too (exit 2).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import bcrypt from 'bcryptjs';
import { Registry } from 'prom-client';
import { isTelemetryError } from '../../../services/shared/core/errors.ts';
import {
  startHttpServer,
  type RunningHttpServer,
} from '../../../services/shared/io/http-server.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { loadWebConfig } from '../../../services/shared/io/web-config-file.ts';
import { main } from '../../../services/cli/main.ts';
import type { CommandIo } from '../../../services/shared/io/command-io.ts';
import { runCli } from '../../helpers/cli.ts';
import { makeTestCerts, type TestCerts } from '../../helpers/tls-certs.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { metricValue } from '../../helpers/metrics-text.ts';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'web-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** GET over HTTPS with the given trust and client certificate; rejects when TLS refuses. */
function get(
  url: string,
  options: { ca?: string; cert?: string; key?: string; auth?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        ...(options.ca === undefined ? {} : { ca: readFileSync(options.ca) }),
        ...(options.cert === undefined ? {} : { cert: readFileSync(options.cert) }),
        ...(options.key === undefined ? {} : { key: readFileSync(options.key) }),
        ...(options.auth === undefined
          ? {}
          : {
              headers: { authorization: `Basic ${Buffer.from(options.auth).toString('base64')}` },
            }),
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function serve(
  t: TestContext,
  webConfigFile: string,
  lines: Record<string, unknown>[] = [],
  registry = new Registry(),
): Promise<RunningHttpServer> {
  const server = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    registry,
    readiness: () => ({ ready: true, reasons: ['fine'] }),
    logger: createLogger({
      level: 'info',
      write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>),
    }),
    webConfigFile,
    watchIntervalMs: 100,
  });
  t.after(() => server.close());
  return server;
}

function tlsConfig(certs: TestCerts, more = ''): string {
  return `tls_server_config:\n  cert_file: ${certs.serverCert}\n  key_file: ${certs.serverKey}\n${more}`;
}

async function metric(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  return metricValue(await registry.metrics(), name, labels, NaN);
}

test('TLS: served over https with the configured certificate; untrusted and plain clients fail', async (t) => {
  const dir = tempDir(t);
  const certs = makeTestCerts(dir);
  const file = join(dir, 'web.yml');
  writeFileSync(file, tlsConfig(certs));
  const server = await serve(t, file);
  assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const ok = await get(`${server.url}/readyz`, { ca: certs.caCert });
  assert.equal(ok.status, 200);
  assert.equal(ok.body, 'ready\nfine\n');
  await assert.rejects(get(`${server.url}/readyz`), /self-signed certificate|unable to verify/);
  await assert.rejects(fetch(`http://127.0.0.1:${server.port}/readyz`));
});

test('mTLS: RequireAndVerifyClientCert refuses no certificate and another CA’s, accepts ours', async (t) => {
  const dir = tempDir(t);
  const certs = makeTestCerts(dir);
  const file = join(dir, 'web.yml');
  writeFileSync(
    file,
    tlsConfig(
      certs,
      `  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: [prometheus]\n`,
    ),
  );
  const registry = new Registry();
  const server = await serve(t, file, [], registry);
  const trusted = { ca: certs.caCert };
  await assert.rejects(get(`${server.url}/metrics`, trusted));
  await assert.rejects(
    get(`${server.url}/metrics`, {
      ...trusted,
      cert: certs.otherClientCert,
      key: certs.otherClientKey,
    }),
  );
  const ok = await get(`${server.url}/metrics`, {
    ...trusted,
    cert: certs.clientCert,
    key: certs.clientKey,
  });
  assert.equal(ok.status, 200);
  assert.ok((await metric(registry, 'vfio_http_tls_handshake_failures_total')) >= 2);
});

test('client_allowed_sans: a valid certificate without an allowed SAN is refused', async (t) => {
  const dir = tempDir(t);
  const certs = makeTestCerts(dir);
  const file = join(dir, 'web.yml');
  writeFileSync(
    file,
    tlsConfig(
      certs,
      `  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: [grafana]\n`,
    ),
  );
  const server = await serve(t, file);
  await assert.rejects(
    get(`${server.url}/metrics`, {
      ca: certs.caCert,
      cert: certs.clientCert,
      key: certs.clientKey,
    }),
  );
});

test('basic auth: 401 with WWW-Authenticate without or with wrong credentials, 200 with right ones; /healthz open; headers on every answer', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'web.yml');
  const hash = bcrypt.hashSync('s3cret', 4);
  writeFileSync(
    file,
    `basic_auth_users:\n  prometheus: ${hash}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n`,
  );
  const registry = new Registry();
  const server = await serve(t, file, [], registry);
  const auth = (credentials: string) => ({
    headers: { authorization: `Basic ${Buffer.from(credentials).toString('base64')}` },
  });
  const none = await fetch(`${server.url}/metrics`);
  assert.equal(none.status, 401);
  assert.match(none.headers.get('www-authenticate') ?? '', /^Basic realm=/);
  assert.equal(none.headers.get('x-frame-options'), 'deny');
  for (const wrong of ['prometheus:nope', 'someone:s3cret', 'prometheus', ':']) {
    assert.equal((await fetch(`${server.url}/readyz`, auth(wrong))).status, 401, wrong);
  }
  assert.equal(
    (await fetch(`${server.url}/readyz`, { headers: { authorization: 'Bearer x' } })).status,
    401,
  );
  const ok = await fetch(`${server.url}/readyz`, auth('prometheus:s3cret'));
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('x-content-type-options'), 'nosniff');
  assert.equal((await fetch(`${server.url}/nothing`, auth('prometheus:s3cret'))).status, 404);
  const health = await fetch(`${server.url}/healthz`);
  assert.equal(health.status, 200, '/healthz needs no credentials');
  assert.equal(health.headers.get('x-frame-options'), 'deny');
  const unauthorized = 'vfio_http_requests_unauthorized_total';
  assert.equal(await metric(registry, unauthorized, { reason: 'missing' }), 3);
  assert.equal(await metric(registry, unauthorized, { reason: 'wrong' }), 3);
});

test('bcrypt verdicts are cached: 20 scrapes with a cost-10 hash cost one bcrypt', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'web.yml');
  writeFileSync(file, `basic_auth_users:\n  prometheus: ${bcrypt.hashSync('s3cret', 10)}\n`);
  const server = await serve(t, file);
  const headers = { authorization: `Basic ${Buffer.from('prometheus:s3cret').toString('base64')}` };
  const first = performance.now();
  assert.equal((await fetch(`${server.url}/metrics`, { headers })).status, 200);
  const firstMs = performance.now() - first;
  const rest = performance.now();
  for (let i = 0; i < 20; i++) {
    assert.equal((await fetch(`${server.url}/metrics`, { headers })).status, 200);
  }
  const restMs = performance.now() - rest;
  // Cost 10 is ~200 ms in bcryptjs: twenty uncached checks would take seconds.
  assert.ok(restMs < firstMs, `20 cached checks took ${restMs} ms, the first ${firstMs} ms`);
});

test('reload: a valid change applies, an invalid one keeps the config in force and is counted; a file change reloads by itself', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'web.yml');
  writeFileSync(file, 'http_server_config:\n  headers:\n    X-Frame-Options: deny\n');
  const lines: Record<string, unknown>[] = [];
  const registry = new Registry();
  const server = await serve(t, file, lines, registry);
  assert.equal((await fetch(`${server.url}/metrics`)).status, 200);

  writeFileSync(file, `basic_auth_users:\n  prometheus: ${bcrypt.hashSync('s3cret', 4)}\n`);
  assert.equal(await server.reloadWebConfig(), true);
  assert.equal((await fetch(`${server.url}/metrics`)).status, 401);

  writeFileSync(file, 'basic_auth_users:\n  prometheus: not-a-hash\n');
  assert.equal(await server.reloadWebConfig(), false);
  assert.equal((await fetch(`${server.url}/metrics`)).status, 401, 'the old config stays');
  const failed = lines.find(
    (l) => l['msg'] === 'The web config file was not reloaded; the previous one stays in force.',
  );
  assert.match(
    String((failed?.['error'] as { message?: string } | undefined)?.message),
    /line 2: basic_auth_users.prometheus/,
  );
  assert.equal(await metric(registry, 'vfio_http_web_config_last_reload_successful'), 0);
  assert.ok(
    (await metric(registry, 'vfio_http_web_config_reloads_total', { result: 'failure' })) >= 1,
  );

  // Nobody calls reload now: the watcher sees the file change.
  writeFileSync(file, 'http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n');
  const answer = await waitFor(
    async () => {
      const r = await fetch(`${server.url}/metrics`);
      return r.status === 200 ? r : null;
    },
    { description: 'the changed file applied' },
  );
  assert.equal(answer.headers.get('x-frame-options'), 'sameorigin');
  assert.equal(await metric(registry, 'vfio_http_web_config_last_reload_successful'), 1);
});

test('invalid files are refused at start, naming the line at fault', async (t) => {
  const dir = tempDir(t);
  const problems = async (text: string): Promise<string> => {
    const file = join(dir, 'web.yml');
    writeFileSync(file, text);
    try {
      await loadWebConfig(file);
    } catch (error) {
      assert.ok(isTelemetryError(error, 'CONFIG_INVALID'));
      return error.message;
    }
    assert.fail('accepted');
  };
  assert.match(
    await problems('basic_auth_users:\n  a: x\n  a: y\n'),
    /line 3: Map keys must be unique/,
  );
  assert.match(await problems('tls_server_config:\n  cert_file: [\n'), /line 3: /);
  assert.match(
    await problems('# comment\nhttp_server_config:\n  headers:\n    Server: x\n'),
    /web\.yml: line 4: http_server_config\.headers\.Server: cannot be configured/,
  );
  assert.match(
    await problems('tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n'),
    /line 2: tls_server_config\.cert_file: .*missing\.crt cannot be read \(ENOENT\)/,
  );
  const certs = makeTestCerts(dir);
  writeFileSync(join(dir, 'wrong.key'), readFileSync(certs.clientKey));
  assert.match(
    await problems(`tls_server_config:\n  cert_file: server.crt\n  key_file: wrong.key\n`),
    /the certificate, key or CA is not usable/,
  );

  // The command: exit 2, the line in the message, nothing started.
  writeFileSync(join(dir, 'bad.yml'), 'basic_auth_users:\n  prometheus: password\n');
  const run = await runCli([
    'collect',
    '--web-config-file',
    join(dir, 'bad.yml'),
    '--socket-dir',
    dir,
    '--spool-dir',
    join(dir, 'spool'),
    '--brokers',
    '127.0.0.1:9',
    '--http-port',
    '0',
  ]);
  assert.equal(run.status, 2);
  assert.match(run.stderr, /bad\.yml: line 2: basic_auth_users\.prometheus: must be a bcrypt hash/);
  assert.doesNotMatch(run.stderr, /password\n/);
});

test('SIGHUP reloads the web config of a running stage (collect command)', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'web.yml');
  writeFileSync(file, 'http_server_config:\n  headers:\n    X-Frame-Options: deny\n');
  let stdout = '';
  const logs: Record<string, unknown>[] = [];
  const io: CommandIo = {
    write: (text) => {
      stdout += text;
      return Promise.resolve();
    },
    error: (text) => {
      for (const line of text.split('\n').filter((l) => l.startsWith('{')))
        logs.push(JSON.parse(line) as Record<string, unknown>);
    },
  };
  const status = main(
    [
      'collect',
      '--web-config-file',
      file,
      '--socket-dir',
      dir,
      '--spool-dir',
      join(dir, 'spool'),
      '--brokers',
      '127.0.0.1:9',
      '--http-host',
      '127.0.0.1',
      '--http-port',
      '0',
    ],
    io,
  );
  let stopped = false;
  t.after(async () => {
    if (!stopped) process.kill(process.pid, 'SIGTERM');
    await status;
  });
  const url = await waitFor(() => stdout.split('\n')[0] || null, {
    description: 'the URL printed',
  });
  assert.equal((await fetch(`${url}/metrics`)).status, 200);

  writeFileSync(file, `basic_auth_users:\n  prometheus: ${bcrypt.hashSync('s3cret', 4)}\n`);
  process.kill(process.pid, 'SIGHUP');
  await waitFor(async () => (await fetch(`${url}/metrics`)).status === 401, {
    description: 'basic auth in force',
  });
  assert.ok(
    logs.some((l) => l['msg'] === 'Web config reloaded.' && l['trigger'] === 'SIGHUP'),
    'reloaded by the signal',
  );
  stopped = true;
  process.kill(process.pid, 'SIGTERM');
  assert.equal(await status, 0);
});
