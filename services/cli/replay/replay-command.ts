import { createReadStream } from 'node:fs';
import { access, constants } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import {
  option,
  parseConfig,
  renderOptionsHelp,
  type ConfigSources,
} from '../../shared/core/config-spec.ts';
import { TelemetryError } from '../../shared/core/errors.ts';
import { DEFAULT_PREPARE_TIMEOUT_SECONDS } from '../../shared/core/transition-engine.ts';
import type { TransitionRecord } from '../../shared/core/transition-record.ts';
import type { CommandIo } from '../../shared/io/command-io.ts';
import { runCommand } from '../../shared/io/stage-runner.ts';
import { formatReplayTable } from './format-table.ts';
import { ReplaySession } from './replay-session.ts';
import { ReplayStats } from './replay-stats.ts';
import { TopPrepares } from './top-prepares.ts';

/** `replay`'s options: flags only (no environment, no config file). */
export function replayConfigSpec() {
  return {
    prepareTimeoutSeconds: option({
      type: 'number',
      default: DEFAULT_PREPARE_TIMEOUT_SECONDS,
      flag: 'prepare-timeout',
      metavar: 'SECONDS',
      doc: "open prepares older than the VM's newest event by more than this end as timed_out",
      check: (seconds) =>
        seconds > 0 ? null : `must be a positive number of seconds, got ${seconds}`,
    }),
    format: option({
      type: 'string',
      default: 'table',
      oneOf: ['table', 'json'],
      flag: 'format',
      doc:
        'table: counts and p50/p90/p99/max per target and outcome, dwell per state; ' +
        'json: one JSON object per line per record, then a summary line',
    }),
    top: option({
      type: 'integer',
      default: 0,
      min: 0,
      max: 100_000,
      flag: 'top',
      metavar: 'N',
      doc: 'table: also list the N slowest prepares (completed or failed) with VM and device',
    }),
  } as const;
}

export function replayHelp(): string {
  return `Usage: vfio-telemetry replay [--prepare-timeout SECONDS] [--format table|json] [--top N] FILE...

Replays captured QMP transcripts through the same transition engine the live processor runs,
and reports prepare-to-completion latency and time in each state.

Each FILE is one VM's QMP transcript: the raw bytes read from its QMP socket (CRLF or LF,
pretty=on monitors too). The VM name is the file name without its extension. Files with the
same VM name are read as one transcript, in the order given. --top N adds the N slowest
prepares to the table, each with its VM, device, target, outcome and the QEMU time that closed
it: the same answer as the exporter's exemplars and live page, offline.

Options:
${renderOptionsHelp(replayConfigSpec(), [{ flag: '-h, --help', text: 'show this help' }])}

Exit status: 0 on success, 1 when a file cannot be read, 2 on bad usage.
`;
}

interface ReplayOptions {
  files: readonly string[];
  format: 'table' | 'json';
  prepareTimeoutSeconds: number;
  top: number;
}

function parseReplayConfig(sources: ConfigSources, files: readonly string[]): ReplayOptions {
  const config = parseConfig(replayConfigSpec(), sources, (c) =>
    c.top > 0 && c.format !== 'table' ? ['top: --top lists rows of the table format only'] : [],
  );
  if (files.length === 0) throw new TelemetryError('USAGE', 'replay needs at least one FILE');
  return {
    files,
    format: config.format as ReplayOptions['format'],
    prepareTimeoutSeconds: config.prepareTimeoutSeconds,
    top: config.top,
  };
}

/** The VM a transcript belongs to: its file name without the extension. */
export function vmNameOf(file: string): string {
  const name = basename(file);
  const ext = extname(name);
  return ext === '' || ext === name ? name : name.slice(0, -ext.length);
}

export function runReplay(args: readonly string[], io: CommandIo): Promise<number> {
  return runCommand(
    {
      name: 'replay',
      spec: replayConfigSpec(),
      help: replayHelp,
      positionals: true,
      configFile: false,
      parseConfig: parseReplayConfig,
      run: (options) => replay(options, io),
    },
    args,
    io,
  );
}

async function replay(options: ReplayOptions, io: CommandIo): Promise<number> {
  // Check every file before any output, so a typo fails fast and alone.
  const unreadable: string[] = [];
  for (const file of options.files) {
    try {
      await access(file, constants.R_OK);
    } catch (error) {
      unreadable.push(`${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
  }
  if (unreadable.length > 0) {
    throw new TelemetryError('FILE_UNREADABLE', `cannot read ${unreadable.join('; ')}`);
  }

  const session = new ReplaySession({ prepareTimeoutSeconds: options.prepareTimeoutSeconds });
  const stats = new ReplayStats();
  const top = new TopPrepares(options.top);
  const emit = async (records: TransitionRecord[]): Promise<void> => {
    if (options.format === 'json') {
      if (records.length > 0) await io.write(records.map(toJsonLine).join(''));
    } else {
      for (const record of records) {
        stats.add(record);
        top.add(record);
      }
    }
  };

  for (const file of options.files) {
    const transcript = session.openTranscript(vmNameOf(file));
    try {
      for await (const chunk of createReadStream(file))
        await emit(transcript.push(chunk as Buffer));
    } catch (error) {
      throw new TelemetryError(
        'FILE_UNREADABLE',
        `cannot read ${file}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    await emit(transcript.end());
  }
  const { records, summary } = session.finish();
  await emit(records);
  if (options.format === 'json') await io.write(JSON.stringify(summary) + '\n');
  else {
    await io.write(
      formatReplayTable(
        stats.prepareRows(),
        stats.dwellRows(),
        summary,
        options.top > 0 ? { n: options.top, prepares: top.slowest() } : undefined,
      ),
    );
  }
  return 0;
}

/** One record as the documented JSON line: the engine's fields, `type` first. */
function toJsonLine(record: TransitionRecord): string {
  return JSON.stringify(record) + '\n';
}
