/**
 * Ordered shutdown. Parts register a close function as they start; on SIGINT or SIGTERM (or a
 * call to `shutdown`) they are closed in reverse order of registration — the QMP readers stop
 * before the spool is flushed, the spool before the Kafka producer disconnects, the HTTP server
 * last so that /metrics stays scrapeable while the stage drains. The whole sequence has one
 * deadline; a part that overruns it is abandoned with a SHUTDOWN_TIMEOUT logged, and the exit
 * status says so. A second signal exits at once.
 *
 * Last resort: an exception nothing caught, or a promise rejection nothing handled, means the
 * stage's state can no longer be trusted, so the stage does not limp on. The error is logged, the
 * synchronous fatal hooks run (the collector writes its spool's queue and syncs it, so nothing it
 * accepted is lost), and the process exits with status 1 for its supervisor to restart it.
 * Nothing asynchronous runs after the error: an orderly shutdown could wait forever on a part
 * the error broke.
 */
import { TelemetryError } from '../core/errors.ts';
import type { Logger } from './logger.ts';

export interface Lifecycle {
  /** Registers a part to close at shutdown; later registrations close first. */
  onClose(name: string, close: () => Promise<void> | void): void;
  /** Closes every part once; resolves with the exit status (0 clean, 1 when a part failed). */
  shutdown(reason: string): Promise<number>;
  /** Resolves with the exit status once shutdown has finished. */
  readonly done: Promise<number>;
  /** Installs SIGINT/SIGTERM handlers; returns a function that removes them. */
  handleSignals(): () => void;
  /** Registers a synchronous hook for the last resort; later registrations run first. */
  onFatal(name: string, hook: () => void): void;
  /** Installs the last-resort handlers (see above); returns a function that removes them. */
  handleFatalErrors(): () => void;
}

export interface LifecycleOptions {
  logger: Logger;
  timeoutMs: number;
  /** Called on a second signal; defaults to process.exit(130). */
  forceExit?: () => void;
  /** Called by the last resort once the hooks ran; defaults to process.exit(1). */
  fatalExit?: () => void;
}

/** Exit status after an uncaught exception or unhandled rejection. */
export const FATAL_EXIT_STATUS = 1;

export function createLifecycle(options: LifecycleOptions): Lifecycle {
  const { logger, timeoutMs } = options;
  const parts: { name: string; close: () => Promise<void> | void }[] = [];
  const fatalHooks: { name: string; hook: () => void }[] = [];
  let fatal = false;
  let shutdownPromise: Promise<number> | undefined;
  let resolveDone: (status: number) => void = () => {};
  const done = new Promise<number>((resolve) => (resolveDone = resolve));

  const closeAll = async (reason: string): Promise<number> => {
    logger.info('Shutting down.', { reason, timeoutMs });
    const deadline = Date.now() + timeoutMs;
    let status = 0;
    for (const part of [...parts].reverse()) {
      const left = Math.max(0, deadline - Date.now());
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), left);
      });
      try {
        const result = await Promise.race([Promise.resolve().then(part.close), timeout]);
        if (result === 'timeout') {
          status = 1;
          logger.error('A part did not close before the shutdown deadline.', {
            part: part.name,
            error: new TelemetryError('SHUTDOWN_TIMEOUT', 'shutdown deadline passed'),
          });
        }
      } catch (error) {
        status = 1;
        logger.error('A part failed to close.', { part: part.name, error });
      } finally {
        clearTimeout(timer);
      }
    }
    logger.info('Shut down.', { status });
    resolveDone(status);
    return status;
  };

  const shutdown = (reason: string): Promise<number> => {
    shutdownPromise ??= closeAll(reason);
    return shutdownPromise;
  };

  const onFatalError = (error: unknown, origin: string): void => {
    // An error thrown by a hook or the logger itself must not run the hooks twice.
    if (!fatal) {
      fatal = true;
      try {
        logger.error('A fatal internal error: exiting for the supervisor to restart the stage.', {
          origin,
          error,
        });
      } catch {
        // Exiting matters more than the log line.
      }
      for (const { name, hook } of [...fatalHooks].reverse()) {
        try {
          hook();
        } catch (hookError) {
          try {
            logger.error('A fatal hook failed.', { part: name, error: hookError });
          } catch {
            // As above.
          }
        }
      }
    }
    (options.fatalExit ?? (() => process.exit(FATAL_EXIT_STATUS)))();
  };

  return {
    onClose: (name, close) => parts.push({ name, close }),
    onFatal: (name, hook) => fatalHooks.push({ name, hook }),
    handleFatalErrors: () => {
      const onException = (error: Error): void => onFatalError(error, 'uncaughtException');
      const onRejection = (reason: unknown): void => onFatalError(reason, 'unhandledRejection');
      process.on('uncaughtException', onException);
      process.on('unhandledRejection', onRejection);
      return () => {
        process.off('uncaughtException', onException);
        process.off('unhandledRejection', onRejection);
      };
    },
    shutdown,
    done,
    handleSignals: () => {
      const onSignal = (signal: NodeJS.Signals): void => {
        if (shutdownPromise !== undefined) {
          logger.warn('Second signal: exiting without waiting.', { signal });
          (options.forceExit ?? (() => process.exit(130)))();
          return;
        }
        void shutdown(signal);
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      return () => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      };
    },
  };
}
