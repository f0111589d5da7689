import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { TelemetryError } from '../core/errors.ts';

/** Reads a YAML or JSON config file (JSON is YAML); the spec validates what it holds. */
export async function readConfigFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new TelemetryError('CONFIG_INVALID', `config file ${path} cannot be read`, {
      cause,
      details: { path, problems: [`${path}: cannot be read`] },
    });
  }
  try {
    return parse(text) as unknown;
  } catch (cause) {
    const problem = `${path}: not valid YAML or JSON (${(cause as Error).message.split('\n')[0]})`;
    throw new TelemetryError('CONFIG_INVALID', `invalid configuration:\n  - ${problem}`, {
      cause,
      details: { path, problems: [problem] },
    });
  }
}
