import { option } from '../../core/config-spec.ts';

/** `KAFKA_BROKERS` / `--brokers`: the one Kafka option every stage has, checked alike. */
export function brokersOption() {
  return option({
    type: 'list',
    env: 'KAFKA_BROKERS',
    flag: 'brokers',
    doc: 'Kafka bootstrap brokers, HOST:PORT',
    check: (list) =>
      list.length === 0
        ? 'needs at least one HOST:PORT'
        : (list
            .map((b) => (/^[^\s:]+:\d{1,5}$/.test(b) ? null : `"${b}" is not HOST:PORT`))
            .find((p) => p !== null) ?? null),
  });
}

/** A problem sentence for a string that Kafka would not take as a topic name, else null. */
export function topicNameProblem(name: string): string | null {
  return /^[A-Za-z0-9._-]{1,249}$/.test(name) ? null : `"${name}" is not a Kafka topic name`;
}
