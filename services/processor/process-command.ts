import { renderOptionsHelp } from '../shared/core/config-spec.ts';
import type { CommandIo } from '../shared/io/command-io.ts';
import { runStage } from '../shared/io/stage-runner.ts';
import { parseProcessorConfig, processorConfigSpec } from './config.ts';
import { startProcessor } from './main.ts';
import { runSkip } from './skip-command.ts';

export function processHelp(): string {
  return `Usage: vfio-telemetry process [--config FILE] [options]

Consumes event records, computes prepare-to-completion latency and time in each state with
the same transition engine as "replay", and publishes transition records. Exactly once per
transition across crashes and rebalances (see README, "Delivery guarantees"). Processors in
one consumer group share the partitions. Settings come from flags, then the environment, then
the config file (YAML or JSON, keys as in parentheses below), then the defaults. The first line
on stdout is the URL of /metrics, /healthz and /readyz.

"vfio-telemetry process skip --partition N --to OFFSET" skips input on purpose (see its --help).

Options:
${renderOptionsHelp(processorConfigSpec(), [
  { flag: '--config FILE', text: 'YAML or JSON config file' },
  { flag: '-h, --help', text: 'show this help' },
])}

Exit status: 0 after a clean shutdown (SIGTERM/SIGINT), 1 on a runtime failure, 2 on bad usage
or configuration.
`;
}

/** `vfio-telemetry process`: runs until SIGINT/SIGTERM, then commits and leaves the group. */
export function runProcess(args: readonly string[], io: CommandIo): Promise<number> {
  if (args[0] === 'skip') return runSkip(args.slice(1), io);
  return runStage(
    {
      name: 'processor',
      spec: processorConfigSpec(),
      help: processHelp,
      parseConfig: parseProcessorConfig,
      start: (config, { logger, fail, onClose }) => {
        // A stop while Kafka refuses the start ends the wait (the start then fails).
        const starting = new AbortController();
        onClose('refused start', () => starting.abort());
        return startProcessor(config, logger, undefined, {
          onLoopFailed: () => fail('the processor loop failed'),
          signal: starting.signal,
        });
      },
    },
    args,
    io,
  );
}
