/**
 * What every @platformatic/kafka client of the port shares: connection and retry settings, and
 * its events routed to our structured logger.
 *
 * The library logs nothing by itself (only through the `debug` module, under DEBUG=plt:kafka:*);
 * what it reports goes through events on each client, which `observeClient` maps to log levels.
 * Connections, failed connection attempts and the client's own retries are expected noise (debug,
 * the operation that finally fails is reported by its caller); group membership changes
 * are worth a line (info); stalled heartbeats are a warning; an 'error' event is an error
 * (and must have a listener: an EventEmitter throws an unhandled 'error').
 */
import type { Base, BaseOptions } from '@platformatic/kafka';
import type { Logger } from '../../io/logger.ts';
import type { KafkaSecurity } from '../core/options.ts';
import { connectionSecurity } from './security.ts';

export interface KafkaClientOptions {
  brokers: readonly string[];
  clientId: string;
  logger: Logger;
  /** TCP connect timeout per broker, ms (default 3000). */
  connectTimeoutMs?: number;
  /** How long one request may wait for its response, ms (default 10 000). */
  requestTimeoutMs?: number;
  /** Attempts of one retriable operation inside the client before it fails (default 3). */
  retries?: number;
  /** TLS and SASL (kafka/core/options.ts); plaintext without. */
  security?: KafkaSecurity;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 3000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const DEFAULT_RETRIES = 3;
const RETRY_DELAY_MS = 250;

export function baseOptions(options: KafkaClientOptions, role: string): BaseOptions {
  return {
    clientId: `${options.clientId}-${role}`,
    bootstrapBrokers: [...options.brokers],
    connectTimeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    requestTimeout: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    timeout: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    retries: options.retries ?? DEFAULT_RETRIES,
    retryDelay: RETRY_DELAY_MS,
    // Topics are created by infra/kafka/create-topics.ts, never by a typo in a stage's config.
    autocreateTopics: false,
    ...connectionSecurity(options.security),
  };
}

type Listener = (...args: unknown[]) => void;

function errorOf(payload: unknown): unknown {
  if (payload instanceof Error) return payload;
  if (typeof payload === 'object' && payload !== null && 'error' in payload) {
    return payload.error;
  }
  return undefined;
}

/** `HOST:PORT` from a connection-pool event (`{ broker: { host, port }, connection }`). */
function brokerOf(payload: unknown): string | undefined {
  const broker = (payload as { broker?: { host?: unknown; port?: unknown } } | undefined)?.broker;
  return broker === undefined ? undefined : `${String(broker.host)}:${String(broker.port)}`;
}

/** Routes the client's events to `logger` (see the file comment for the levels). */
export function observeClient(client: Base, logger: Logger): void {
  const on = (event: string, listener: Listener): void => {
    (client as unknown as { on(event: string, listener: Listener): void }).on(event, listener);
  };
  on('client:broker:connect', (broker) =>
    logger.debug('Connected to a Kafka broker.', { broker: brokerOf(broker) }),
  );
  on('client:broker:disconnect', (broker) =>
    logger.debug('Disconnected from a Kafka broker.', { broker: brokerOf(broker) }),
  );
  on('client:broker:failed', (broker) =>
    logger.debug('A Kafka broker connection failed.', { broker: brokerOf(broker) }),
  );
  on('client:performWithRetry:retry', (operation, attempt, retries) =>
    logger.debug('Kafka client retries an operation.', { operation, attempt, retries }),
  );
  on('consumer:group:join', (payload) =>
    logger.info('Joined the consumer group.', { ...(payload as object) }),
  );
  on('consumer:group:leave', (payload) =>
    logger.info('Left the consumer group.', { ...(payload as object) }),
  );
  on('consumer:group:rebalance', (payload) =>
    logger.info('The consumer group is rebalancing.', { ...(payload as object) }),
  );
  on('consumer:heartbeat:error', (payload) =>
    logger.debug('A consumer group heartbeat failed.', { error: errorOf(payload) }),
  );
  on('consumer:heartbeat:stalled', (payload) =>
    logger.warn('Consumer group heartbeats are stalled.', {
      error: errorOf(payload),
      stalledForMs: (payload as { stalledFor?: unknown }).stalledFor,
    }),
  );
  on('error', (error) => logger.error('The Kafka client reported an error.', { error }));
}
