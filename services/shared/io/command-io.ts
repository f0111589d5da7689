/** Where a command writes; `main` binds it to stdout/stderr, tests to strings. */
export interface CommandIo {
  /** Writes to standard output, waiting for the stream to drain when it is full. */
  write(text: string): Promise<void>;
  /** Writes to standard error. */
  error(text: string): void;
}

export function processIo(): CommandIo {
  return {
    write: (text) =>
      new Promise((resolve, reject) => {
        process.stdout.write(text, (error) => (error ? reject(error) : resolve()));
      }),
    error: (text) => {
      process.stderr.write(text);
    },
  };
}
