import type { CommandIo } from '../../services/shared/io/command-io.ts';
import { main } from '../../services/cli/main.ts';

/** Runs the CLI in-process with its output captured; resolves with the exit status and text. */
export async function runCli(
  args: string[],
): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CommandIo = {
    write: (text) => {
      stdout += text;
      return Promise.resolve();
    },
    error: (text) => {
      stderr += text;
    },
  };
  const status = await main(args, io);
  return { status, stdout, stderr };
}
