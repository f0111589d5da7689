/**
 * The libvirt source's own events (see collector-telemetry.ts for the pattern): the connection to
 * each libvirt daemon, counted and logged together. Domain sessions and their events go through
 * the collector's telemetry like those of a QMP socket.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../../shared/io/logger.ts';
import { createRateLimitedLog } from '../../shared/io/rate-limited-log.ts';
import { METRIC_PREFIX } from './collector-telemetry.ts';

export type LibvirtTelemetry = ReturnType<typeof createLibvirtTelemetry>;

export function createLibvirtTelemetry(registry: Registry, logger: Logger) {
  const registers = [registry];
  const up = new Gauge({
    name: `${METRIC_PREFIX}libvirt_connections_up`,
    help: 'libvirt connections registered for QEMU monitor events.',
    registers,
  });
  const reconnects = new Counter({
    name: `${METRIC_PREFIX}libvirt_reconnects_total`,
    help: 'libvirt connections registered again after a loss (libvirtd restarted, keepalive).',
    registers,
  });
  const globSockets = new Gauge({
    name: `${METRIC_PREFIX}libvirt_glob_sockets`,
    help: 'libvirt daemon sockets matched by --libvirt-glob at the last listing.',
    registers,
  });
  const rateLimited = createRateLimitedLog(logger);
  let connections = 0;
  let matched = 0;

  return {
    connected(uri: string, socket: string, reconnect: boolean): void {
      up.set(++connections);
      if (reconnect) reconnects.inc();
      logger.info('Registered for QEMU monitor events of every libvirt domain.', {
        uri,
        socket,
        reconnect,
      });
    },
    disconnected(uri: string, reason: string, stopping: boolean): void {
      up.set(--connections);
      if (stopping) {
        logger.info('The libvirt connection was closed.', { uri });
        return;
      }
      logger.warn('The libvirt connection was lost; events until it is back are lost.', {
        uri,
        reason,
      });
    },
    globSocketFound(pattern: string, socket: string): void {
      globSockets.set(++matched);
      logger.info('A libvirt socket matching --libvirt-glob appeared; connecting.', {
        pattern,
        socket,
      });
    },
    globSocketGone(pattern: string, socket: string): void {
      globSockets.set(--matched);
      logger.info('A libvirt socket matching --libvirt-glob is gone; disconnected.', {
        pattern,
        socket,
      });
    },
    globListFailed(pattern: string, path: string, error: unknown): void {
      rateLimited(`glob:${path}`, 'error', 'A --libvirt-glob path cannot be listed.', {
        pattern,
        path,
        error,
      });
    },
    connectFailed(uri: string, error: unknown, retryInMs: number): void {
      rateLimited(`libvirt:${uri}`, 'error', 'libvirt could not be registered with; retrying.', {
        uri,
        retryInMs,
        error,
      });
    },
  };
}
