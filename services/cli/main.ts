import { isTelemetryError, type ErrorCode } from '../shared/core/errors.ts';
import { processIo, type CommandIo } from '../shared/io/command-io.ts';
import { buildInfo } from '../shared/io/packaged-files.ts';
import { runAudit } from './audit/audit-command.ts';
import { runReplay } from './replay/replay-command.ts';
import { runSimulate } from '../simulator/simulate-command.ts';
import { runCollect } from '../collector/collect-command.ts';
import { runExport } from '../exporter/export-command.ts';
import { runProcess } from '../processor/process-command.ts';
import { runDemo } from './demo/demo-command.ts';

type Command = (args: readonly string[], io: CommandIo) => Promise<number>;

const COMMANDS: Record<string, { run: Command; summary: string }> = {
  demo: { run: runDemo, summary: 'run the whole pipeline on a simulated fleet, with a live page' },
  replay: { run: runReplay, summary: 'analyse captured QMP transcripts offline' },
  simulate: { run: runSimulate, summary: 'run QMP servers that behave like migrating QEMU VMs' },
  collect: { run: runCollect, summary: 'read QMP sockets and publish events to Kafka' },
  process: {
    run: runProcess,
    summary: 'compute transitions from events, exactly once per transition',
  },
  export: { run: runExport, summary: 'serve Prometheus metrics and a live page from transitions' },
  audit: {
    run: runAudit,
    summary: 'check the transitions topic against a recomputation from the events topic',
  },
};

export function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(
    ([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`,
  );
  return `Usage: vfio-telemetry <command> [options]

How long VFIO device migration transitions really take.

Commands:
${lines.join('\n')}

Run "vfio-telemetry <command> --help" for a command's options.
"vfio-telemetry --version" prints the version, git commit and Node.js version.
`;
}

/**
 * Errors an operator must fix before a restart can help: exit status 2, like bad usage, which
 * the systemd units name in RestartPreventExitStatus= so that they are reported once, not
 * restarted in a loop.
 */
const SETUP_ERRORS: ReadonlySet<ErrorCode> = new Set([
  'SPOOL_LOCKED',
  'SPOOL_UNWRITABLE',
  'STATE_DIR_LOCKED',
  'STATE_DIR_UNWRITABLE',
]);

/** `vfio-telemetry --version`: what was built, from which commit, on which Node.js. */
export function versionText(): string {
  const info = buildInfo();
  return `vfio-telemetry ${info.version} (commit ${info.commit}, ${info.from}) on Node.js ${info.node}\n`;
}

/** Runs the CLI; returns the exit status. Errors become a message and a status, never a stack. */
export async function main(argv: readonly string[], io: CommandIo = processIo()): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    await io.write(mainHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    await io.write(versionText());
    return 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    io.error(`vfio-telemetry: unknown command "${name}"\n\n${mainHelp()}`);
    return 2;
  }
  try {
    return await command.run(args, io);
  } catch (error) {
    if (isTelemetryError(error, 'USAGE') || isTelemetryError(error, 'CONFIG_INVALID')) {
      io.error(`vfio-telemetry ${name}: ${error.message}\nRun "vfio-telemetry ${name} --help".\n`);
      return 2;
    }
    if (isTelemetryError(error)) {
      io.error(`vfio-telemetry ${name}: ${error.message} [${error.code}]\n`);
      return SETUP_ERRORS.has(error.code) ? 2 : 1;
    }
    throw error;
  }
}
