import { tmpdir } from 'node:os';
import type { CommandIo } from '../shared/io/command-io.ts';
import { runStage } from '../shared/io/stage-runner.ts';
import { parseSimulateConfig, simulateHelp, simulatorConfigSpec } from './config.ts';
import { startSimulator } from './io/simulator.ts';

/** `vfio-telemetry simulate`: runs until its limits or SIGINT/SIGTERM, then closes the sockets. */
export function runSimulate(args: readonly string[], io: CommandIo): Promise<number> {
  return runStage(
    {
      name: 'simulator',
      spec: simulatorConfigSpec(tmpdir()),
      help: () => simulateHelp(tmpdir()),
      parseConfig: (sources) => parseSimulateConfig(tmpdir(), sources),
      start: async (config, { logger, onClose, shutdown, fail }) => {
        const simulator = await startSimulator({
          fleet: config.fleet,
          dir: config.dir,
          pretty: config.pretty,
          speed: config.speed,
          waitForClients: config.waitForClients,
          logger,
          ...(config.tcpPort === undefined ? {} : { tcpPort: config.tcpPort }),
          ...(config.durationSeconds === undefined
            ? {}
            : { durationSeconds: config.durationSeconds }),
          ...(config.migrations === undefined ? {} : { maxMigrations: config.migrations }),
          ...(config.transcripts === undefined ? {} : { transcriptsDir: config.transcripts }),
        });
        logger.info('QMP servers listening.', {
          dir: config.dir,
          vms: simulator.vms.length,
          firstSocket: simulator.sockets[0],
          tcp: simulator.tcpAddresses.length > 0 ? simulator.tcpAddresses[0] : undefined,
        });
        const progress = setInterval(
          () => logger.info('Simulation progress.', { ...simulator.stats() }),
          config.progressSeconds * 1000,
        );
        onClose('progress', () => clearInterval(progress));
        simulator.done.then(
          () => shutdown('simulation finished'),
          (error: unknown) => {
            logger.error('The simulation failed.', { error });
            fail('simulation failed');
          },
        );
        return {
          stop: async () => {
            await simulator.close();
            logger.info('Simulation finished.', { ...simulator.stats() });
          },
        };
      },
    },
    args,
    io,
  );
}
