import { parseArgs } from 'node:util';
import type { ConfigSources, ConfigSpec, OptionSpec } from '../core/config-spec.ts';
import { readConfigFile } from './config-file.ts';

/**
 * The command line every command shares: one flag per option of its config spec (`--no-<flag>`
 * turns off a boolean), `--config FILE`, `-h, --help`, and FILE... for the commands that read
 * files. Every bad argument is returned in `problems`, not only the first, so that the runner
 * reports them with the config's own problems in one go; what the flags say is validated with
 * the rest of the config by `parseConfig`.
 */
export type CommandArgs =
  | { help: true }
  | {
      help: false;
      sources: ConfigSources;
      positionals: readonly string[];
      /** Unknown options, missing values, unexpected arguments. */
      problems: readonly string[];
    };

export interface CommandArgsOptions {
  env?: Readonly<Record<string, string | undefined>>;
  /** Takes FILE... arguments; without, any argument that is not an option is a usage error. */
  positionals?: boolean;
  /** Takes `--config FILE` (YAML or JSON); on unless false. */
  configFile?: boolean;
}

type FlagValue = string | boolean | string[];

export async function parseCommandArgs(
  args: readonly string[],
  spec: ConfigSpec,
  options: CommandArgsOptions = {},
): Promise<CommandArgs> {
  const byFlag = new Map<string, OptionSpec>();
  for (const opt of Object.values(spec)) if (opt.flag !== undefined) byFlag.set(opt.flag, opt);
  const takesConfig = options.configFile !== false;
  const parseOptions: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  if (takesConfig) parseOptions['config'] = { type: 'string' };
  for (const [flag, opt] of byFlag) {
    parseOptions[flag] = { type: opt.type === 'boolean' ? 'boolean' : 'string' };
    // Booleans that default to true need a way off on the command line.
    if (opt.type === 'boolean') parseOptions[`no-${flag}`] = { type: 'boolean' };
  }
  // Not strict, so that every bad argument is reported, not only the first.
  const { tokens } = parseArgs({
    args: [...args],
    options: parseOptions,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const problems: string[] = [];
  const flags: Record<string, FlagValue> = {};
  const negated = new Set<string>();
  const positionals: string[] = [];
  let configFile: string | undefined;
  for (const token of tokens) {
    if (token.kind === 'positional') {
      if (options.positionals === true) positionals.push(token.value);
      else problems.push(`unexpected argument "${token.value}"`);
      continue;
    }
    if (token.kind !== 'option') continue;
    if (token.name === 'help') return { help: true };
    const isConfig = takesConfig && token.name === 'config';
    const negatedFlag = token.name.startsWith('no-') ? token.name.slice(3) : undefined;
    const negates = negatedFlag !== undefined && byFlag.get(negatedFlag)?.type === 'boolean';
    const opt = byFlag.get(token.name);
    if (!isConfig && !negates && opt === undefined) {
      problems.push(`Unknown option '${token.rawName}'`);
      continue;
    }
    const isBoolean = negates || opt?.type === 'boolean';
    if (isBoolean && token.value !== undefined) {
      problems.push(`${token.rawName} takes no value`);
    } else if (!isBoolean && token.value === undefined) {
      problems.push(`${token.rawName} needs a value`);
    } else if (isConfig) {
      configFile = token.value;
    } else if (negates) {
      negated.add(negatedFlag);
    } else if (opt?.type === 'list') {
      const before = flags[token.name];
      flags[token.name] = [...(Array.isArray(before) ? before : []), token.value as string];
    } else {
      flags[token.name] = token.value ?? true;
    }
  }
  for (const flag of negated) {
    if (flags[flag] === true) problems.push(`--${flag} and --no-${flag} contradict each other`);
    else flags[flag] = false;
  }
  const file = configFile === undefined ? undefined : await readConfigFile(configFile);
  return {
    help: false,
    sources: {
      file,
      ...(configFile === undefined ? {} : { fileName: configFile }),
      env: options.env ?? process.env,
      flags,
    },
    positionals,
    problems,
  };
}
