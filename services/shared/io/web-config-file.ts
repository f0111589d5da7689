/**
 * Reads a web configuration file (services/shared/core/web-config.ts, the Prometheus exporter
 * toolkit's format): parses the YAML keeping each key's line, validates it, reads the
 * certificate, key and CA files it names (relative to the file's directory, as the toolkit does)
 * and builds the TLS context once, so that a key that does not match its certificate is refused
 * here, with the file named, rather than at the first handshake.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { isMap, isScalar, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { TelemetryError } from '../core/errors.ts';
import {
  validateWebConfig,
  type LineOf,
  type PemSource,
  type WebConfig,
} from '../core/web-config.ts';

export interface LoadedWebConfig {
  readonly config: WebConfig;
  /** Options for `tls.createServer`/`setSecureContext`; null for plain HTTP. */
  readonly tlsOptions: SecureContextOptions | null;
  /** The web config file and every file it names: a change to any of them reloads. */
  readonly files: readonly string[];
}

/** Throws CONFIG_INVALID listing every problem, each with its line where it has one. */
export async function loadWebConfig(path: string): Promise<LoadedWebConfig> {
  const fail = (problems: readonly string[], cause?: unknown): never => {
    const listed = problems.map((p) => `${path}: ${p}`);
    throw new TelemetryError(
      'CONFIG_INVALID',
      `invalid web configuration:\n  - ${listed.join('\n  - ')}`,
      { details: { path, problems: listed }, ...(cause === undefined ? {} : { cause }) },
    );
  };
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    return fail([`cannot be read (${(cause as NodeJS.ErrnoException).code ?? 'error'})`], cause);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    return fail(
      doc.errors.map((e) => {
        const line = lineCounter.linePos(e.pos[0]).line;
        return `line ${line}: ${e.message.split('\n')[0] ?? ''}`;
      }),
    );
  }
  const lineOf: LineOf = (keys) => {
    let node: unknown = doc.contents;
    let line: number | null = null;
    for (const key of keys) {
      if (!isMap(node)) break;
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(key));
      if (pair === undefined) break;
      const start = (pair.key as YamlNode).range?.[0];
      if (start !== undefined) line = lineCounter.linePos(start).line;
      node = pair.value;
    }
    return line;
  };
  const result = validateWebConfig(doc.toJS() as unknown, lineOf);
  if (result.kind === 'invalid') return fail(result.problems);
  const { config } = result;
  if (config.tls === null) return { config, tlsOptions: null, files: [path] };

  const base = dirname(resolve(path));
  const files = [path];
  const problems: string[] = [];
  const read = async (source: PemSource | null, key: string): Promise<string | undefined> => {
    if (source === null) return undefined;
    if ('pem' in source) return source.pem;
    const file = resolve(base, source.file);
    files.push(file);
    try {
      return await readFile(file, 'utf8');
    } catch (cause) {
      const line = lineOf(['tls_server_config', key]);
      problems.push(
        `${line === null ? '' : `line ${line}: `}tls_server_config.${key}: ${file} cannot be read (${(cause as NodeJS.ErrnoException).code ?? 'error'})`,
      );
      return undefined;
    }
  };
  const [cert, key, ca] = await Promise.all([
    read(config.tls.cert, 'cert_file'),
    read(config.tls.key, 'key_file'),
    read(config.tls.clientCa, 'client_ca_file'),
  ]);
  if (problems.length > 0) return fail(problems);
  const tlsOptions: SecureContextOptions = {
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    ...(ca === undefined ? {} : { ca }),
    minVersion: config.tls.minVersion,
    maxVersion: config.tls.maxVersion,
  };
  try {
    createSecureContext(tlsOptions);
  } catch (cause) {
    return fail(
      [`tls_server_config: the certificate, key or CA is not usable (${(cause as Error).message})`],
      cause,
    );
  }
  return { config, tlsOptions, files };
}
