import { TelemetryError } from './errors.ts';

/**
 * Declarative configuration (OADA convict specs): every option keeps its key, type, default,
 * environment variable, flag and one line of doc together. `parseConfig` reads a parsed config
 * file, the environment and the command-line flags (flags win over env, env over file, file over
 * default), validates the whole thing, and either returns a frozen object or throws one
 * CONFIG_INVALID that lists every problem — never just the first.
 *
 * Pure: the caller reads the file and passes `process.env`; nothing here touches the process.
 */
export type OptionType = 'string' | 'integer' | 'number' | 'boolean' | 'list';

type ValueOf<T extends OptionType> = T extends 'string'
  ? string
  : T extends 'integer' | 'number'
    ? number
    : T extends 'boolean'
      ? boolean
      : readonly string[];

export interface OptionSpec<T extends OptionType = OptionType, O extends boolean = boolean> {
  type: T;
  /** Value when no source sets it; an option without a default is required unless `optional`. */
  default?: ValueOf<T>;
  /** May stay unset (no default, not required): the key is then absent from the config. */
  optional?: O;
  /** Environment variable; a `list` is comma-separated there. */
  env?: string;
  /** Long flag name without the dashes; a `list` flag may be repeated or comma-separated. */
  flag?: string;
  doc: string;
  /** Inclusive bounds for numbers. */
  min?: number;
  max?: number;
  /** Allowed values for strings. */
  oneOf?: readonly string[];
  /** Extra check; returns a problem sentence or null. */
  check?: (value: ValueOf<T>) => string | null;
  /** Placeholder of the value in `--help` (`DIR`, `SECONDS`); derived from the type without. */
  metavar?: string;
}

export type ConfigSpec = Readonly<Record<string, OptionSpec>>;

export type ConfigOf<S extends ConfigSpec> = {
  readonly [K in keyof S]: S[K] extends OptionSpec<infer T, infer O>
    ? O extends true
      ? ValueOf<T> | undefined
      : ValueOf<T>
    : never;
};

/** Defines one option with its value type checked against `type`. */
export function option<T extends OptionType>(
  spec: OptionSpec<T, true> & { optional: true },
): OptionSpec<T, true>;
export function option<T extends OptionType>(spec: OptionSpec<T, false>): OptionSpec<T, false>;
export function option<T extends OptionType>(spec: OptionSpec<T>): OptionSpec<T> {
  return spec;
}

export interface ConfigSources {
  /** The parsed config file (YAML or JSON), keyed by option key; undefined when none was given. */
  file?: unknown;
  /** Where the file came from, for messages. */
  fileName?: string;
  env?: Readonly<Record<string, string | undefined>>;
  /** Parsed flags keyed by flag name, as `node:util` parseArgs returns them. */
  flags?: Readonly<Record<string, string | boolean | readonly string[] | undefined>>;
  /** Environment variables with this prefix that no option declares are reported. */
  envPrefix?: string;
}

/** Cross-option rules, run only when every single option is valid. */
export type WholeCheck<S extends ConfigSpec> = (config: ConfigOf<S>) => readonly string[];

export function parseConfig<S extends ConfigSpec>(
  spec: S,
  sources: ConfigSources,
  wholeCheck?: WholeCheck<S>,
): ConfigOf<S> {
  const problems: string[] = [];
  const file = readFileObject(sources, problems);
  const env = sources.env ?? {};
  const flags = sources.flags ?? {};
  const out: Record<string, unknown> = {};

  for (const [key, opt] of Object.entries(spec)) {
    const flagValue = opt.flag === undefined ? undefined : flags[opt.flag];
    const envValue = opt.env === undefined ? undefined : env[opt.env];
    let origin: string;
    let value: unknown;
    if (flagValue !== undefined) {
      origin = `--${opt.flag}`;
      value = fromText(opt.type, flagValue);
    } else if (envValue !== undefined && envValue !== '') {
      origin = `${opt.env} (environment)`;
      value = fromText(opt.type, envValue);
    } else if (file !== undefined && key in file) {
      origin = `${key} (${sources.fileName ?? 'config file'})`;
      value = file[key];
    } else if (opt.default !== undefined) {
      out[key] = opt.default;
      continue;
    } else if (opt.optional === true) {
      continue;
    } else {
      problems.push(`${key} is required (${whereToSet(key, opt)})`);
      continue;
    }
    const problem = validate(opt, value);
    if (problem === null) out[key] = Object.freeze(value);
    else problems.push(`${origin}: ${problem}`);
  }

  if (file !== undefined) {
    for (const key of Object.keys(file)) {
      if (!(key in spec))
        problems.push(`${sources.fileName ?? 'config file'}: unknown key "${key}"`);
    }
  }
  if (sources.envPrefix !== undefined) {
    const declared = new Set(Object.values(spec).map((o) => o.env));
    for (const name of Object.keys(env)) {
      if (name.startsWith(sources.envPrefix) && !declared.has(name)) {
        problems.push(`${name} (environment): no such option`);
      }
    }
  }
  if (problems.length === 0 && wholeCheck !== undefined) {
    problems.push(...wholeCheck(out as ConfigOf<S>));
  }
  if (problems.length > 0) {
    throw new TelemetryError(
      'CONFIG_INVALID',
      `invalid configuration:\n  - ${problems.join('\n  - ')}`,
      { details: { problems } },
    );
  }
  return Object.freeze(out) as ConfigOf<S>;
}

function readFileObject(
  sources: ConfigSources,
  problems: string[],
): Record<string, unknown> | undefined {
  const file = sources.file;
  if (file === undefined || file === null) return undefined;
  if (typeof file !== 'object' || Array.isArray(file)) {
    problems.push(`${sources.fileName ?? 'config file'}: must be a mapping of option keys`);
    return undefined;
  }
  return file as Record<string, unknown>;
}

/** Text from the environment or a flag, converted to the option's type (or left for validate). */
function fromText(type: OptionType, raw: string | boolean | readonly string[]): unknown {
  if (typeof raw === 'boolean') return raw;
  if (type === 'list') {
    const parts = typeof raw === 'string' ? [raw] : raw;
    return parts
      .flatMap((p) => p.split(','))
      .map((p) => p.trim())
      .filter((p) => p !== '');
  }
  const text = typeof raw === 'string' ? raw : raw.join(',');
  if (type === 'integer' || type === 'number') {
    const value = Number(text);
    return text.trim() === '' || Number.isNaN(value) ? text : value;
  }
  if (type === 'boolean') {
    if (text === 'true' || text === '1') return true;
    if (text === 'false' || text === '0') return false;
    return text;
  }
  return text;
}

function validate(opt: OptionSpec, value: unknown): string | null {
  const typeProblem = checkType(opt.type, value);
  if (typeProblem !== null) return typeProblem;
  if (typeof value === 'number') {
    if (opt.min !== undefined && value < opt.min)
      return `must be at least ${opt.min}, got ${value}`;
    if (opt.max !== undefined && value > opt.max) return `must be at most ${opt.max}, got ${value}`;
  }
  if (typeof value === 'string' && opt.oneOf !== undefined && !opt.oneOf.includes(value)) {
    return `must be one of ${opt.oneOf.join(', ')}, got "${value}"`;
  }
  return (opt.check as ((v: unknown) => string | null) | undefined)?.(value) ?? null;
}

function checkType(type: OptionType, value: unknown): string | null {
  switch (type) {
    case 'string':
      return typeof value === 'string' ? null : `must be a string, got ${show(value)}`;
    case 'integer':
      return Number.isSafeInteger(value) ? null : `must be an integer, got ${show(value)}`;
    case 'number':
      return typeof value === 'number' && Number.isFinite(value)
        ? null
        : `must be a number, got ${show(value)}`;
    case 'boolean':
      return typeof value === 'boolean' ? null : `must be true or false, got ${show(value)}`;
    case 'list':
      return Array.isArray(value) && value.every((v) => typeof v === 'string')
        ? null
        : `must be a list of strings, got ${show(value)}`;
  }
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length <= 60 ? text : `${text.slice(0, 57)}...`;
}

function whereToSet(key: string, opt: OptionSpec): string {
  const ways = [`"${key}" in the config file`];
  if (opt.env !== undefined) ways.push(opt.env);
  if (opt.flag !== undefined) ways.push(`--${opt.flag}`);
  return `set ${ways.join(', ')}`;
}

/** The options part of `--help`: flag, env, default and doc of every option. */
export function renderOptionsHelp(
  spec: ConfigSpec,
  extraRows: readonly { flag: string; text: string }[] = [],
): string {
  const specRows = Object.entries(spec).map(([key, opt]) => {
    const flag = opt.flag === undefined ? `(${key})` : `--${opt.flag}${valueHint(opt)}`;
    const extra: string[] = [];
    if (opt.env !== undefined) extra.push(`env ${opt.env}`);
    if (opt.default !== undefined) extra.push(`default ${showDefault(opt.default)}`);
    else if (opt.optional !== true) extra.push('required');
    return { flag, text: extra.length === 0 ? opt.doc : `${opt.doc} [${extra.join('; ')}]` };
  });
  const rows = [...specRows, ...extraRows];
  const width = Math.max(...rows.map((r) => r.flag.length));
  return rows.map((r) => `  ${r.flag.padEnd(width)}  ${r.text}`).join('\n');
}

function valueHint(opt: OptionSpec): string {
  if (opt.type === 'boolean') return '';
  if (opt.metavar !== undefined) return ` ${opt.metavar}`;
  if (opt.type === 'list') return ' A,B';
  if (opt.oneOf !== undefined) return ` ${opt.oneOf.join('|')}`;
  return opt.type === 'string' ? ' TEXT' : ' N';
}

function showDefault(value: unknown): string {
  if (Array.isArray(value)) return value.length === 0 ? 'none' : value.join(',');
  if (value === '') return '""';
  return String(value);
}
