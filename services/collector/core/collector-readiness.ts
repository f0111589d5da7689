import type { Readiness } from '../../shared/core/readiness.ts';
import type { Refusal } from '../../shared/kafka/core/refusal.ts';

/** What the collector's readiness depends on, read from its parts at each /readyz. */
export interface CollectorHealth {
  /** The last produce to Kafka succeeded. */
  readonly kafkaConnected: boolean;
  /** Why Kafka refused the last attempt (authentication, authorization, TLS), if it did. */
  readonly kafkaRefusal: Refusal | undefined;
  /** The spool takes new events (not full). */
  readonly spoolAccepting: boolean;
  /** The socket directory watched, and whether it can be listed; null without one. */
  readonly watcher: { readonly dir: string; readonly running: boolean } | null;
  /** Kafka acknowledges nothing while events wait; null when it does. */
  readonly stall: {
    readonly sinceMs: number;
    readonly pendingEvents: number;
    readonly lastError: string | null;
  } | null;
  /** libvirt daemons configured but not registered with (down, restarting, refusing us). */
  readonly libvirtUnconnected: readonly string[];
  /** `--libvirt-glob` patterns whose fixed directory cannot be listed (mount missing?). */
  readonly libvirtGlobsUnlisted?: readonly string[];
}

/**
 * The collector is ready while every event it reads is kept: Kafka reachable or the spool taking
 * the events, the socket directory listable, Kafka not stalled, every libvirt daemon connected
 * (a daemon we cannot register with means the events of its domains are not read), every
 * `--libvirt-glob` pattern listable (a missing mount would find no daemon, silently).
 */
export function collectorReadiness(health: CollectorHealth): Readiness {
  const reasons: string[] = [];
  const kafkaOk = health.kafkaConnected || health.spoolAccepting;
  if (!health.kafkaConnected) {
    const refusal = health.kafkaRefusal;
    reasons.push(
      (refusal === undefined
        ? 'kafka: unreachable'
        : `kafka: refused (${refusal.reason}: ${refusal.detail})`) +
        (health.spoolAccepting ? ', spooling' : ' and spool full'),
    );
  }
  const watching = health.watcher === null || health.watcher.running;
  if (health.watcher !== null && !health.watcher.running) {
    reasons.push(`watcher: ${health.watcher.dir} cannot be listed`);
  }
  const { stall } = health;
  if (stall !== null) {
    reasons.push(
      `kafka: no event acknowledged for ${Math.round(stall.sinceMs / 1000)} s while ` +
        `${stall.pendingEvents} wait in the spool` +
        (stall.lastError === null ? '' : ` (last error: ${stall.lastError})`),
    );
  }
  for (const text of health.libvirtUnconnected) reasons.push(`libvirt: ${text} not connected`);
  const unlisted = health.libvirtGlobsUnlisted ?? [];
  for (const pattern of unlisted) reasons.push(`libvirt-glob: ${pattern} cannot be listed`);
  return {
    ready:
      kafkaOk &&
      watching &&
      stall === null &&
      health.libvirtUnconnected.length === 0 &&
      unlisted.length === 0,
    reasons,
  };
}
