import type { QmpInput } from './qmp-input-splitter.ts';
import type { QmpJson } from './qmp-json.ts';

/**
 * One QMP monitor's command side, as QEMU 7.2 was observed to answer (domain notes §3.3, §3.4,
 * §4.8). A new connection is in capabilities negotiation: only `qmp_capabilities` runs, every
 * other command gets `CommandNotFound "Expecting capabilities negotiation with
 * 'qmp_capabilities'"`, and no events are delivered. After it, `query-status` is answered and any
 * other command is not found. `id` is echoed when given, in QEMU's member order: after `return`,
 * before `error`.
 */
export const QMP_GREETING: QmpJson = {
  QMP: {
    version: { qemu: { micro: 0, minor: 0, major: 11 }, package: 'vfio-telemetry-simulator' },
    capabilities: ['oob'],
  },
};

/** QEMU `RunState` values the simulated VMs pass through. */
export type RunStatus =
  'running' | 'finish-migrate' | 'postmigrate' | 'inmigrate' | 'shutdown' | 'paused';

export interface QmpAnswer {
  reply: QmpJson;
  /** True once this input completed capabilities negotiation. */
  negotiated: boolean;
  /** The command name, for the record of what clients sent; null when there was none. */
  command: string | null;
}

export function answerQmpInput(input: QmpInput, negotiated: boolean, status: RunStatus): QmpAnswer {
  if (input.kind === 'too-large') {
    return {
      reply: error('GenericError', 'JSON parse error, token too large'),
      negotiated,
      command: null,
    };
  }
  if (input.kind === 'parse-error') {
    return {
      reply: error('GenericError', 'JSON parse error, expecting value'),
      negotiated,
      command: null,
    };
  }
  const request = input.value;
  if (typeof request !== 'object' || request === null || Array.isArray(request)) {
    return {
      reply: error('GenericError', 'QMP input must be a JSON object'),
      negotiated,
      command: null,
    };
  }
  const fields = request as Record<string, unknown>;
  const id = 'id' in fields ? toJson(fields['id']) : undefined;
  const name = fields['execute'] ?? fields['exec-oob'];
  if (typeof name !== 'string') {
    return {
      reply: error('GenericError', "QMP input lacks member 'execute'", id),
      negotiated,
      command: null,
    };
  }
  if (!negotiated) {
    if (name === 'qmp_capabilities') return { reply: ok({}, id), negotiated: true, command: name };
    return {
      reply: error(
        'CommandNotFound',
        "Expecting capabilities negotiation with 'qmp_capabilities'",
        id,
      ),
      negotiated,
      command: name,
    };
  }
  if (name === 'qmp_capabilities') {
    return {
      reply: error(
        'CommandNotFound',
        'Capabilities negotiation is already complete, command ignored',
        id,
      ),
      negotiated,
      command: name,
    };
  }
  if (name === 'query-status') {
    return { reply: ok({ status, running: status === 'running' }, id), negotiated, command: name };
  }
  return {
    reply: error('CommandNotFound', `The command ${name} has not been found`, id),
    negotiated,
    command: name,
  };
}

function ok(value: QmpJson, id: QmpJson | undefined): QmpJson {
  return id === undefined ? { return: value } : { return: value, id };
}

function error(errorClass: string, desc: string, id?: QmpJson): QmpJson {
  const body = { class: errorClass, desc };
  return id === undefined ? { error: body } : { id, error: body };
}

/** A client's `id` as parsed JSON; non-integer numbers are echoed truncated (we write integers). */
function toJson(value: unknown): QmpJson {
  if (typeof value === 'number') return Number.isInteger(value) ? value : Math.trunc(value);
  if (typeof value === 'string' || typeof value === 'boolean' || value === null) return value;
  if (Array.isArray(value)) return value.map(toJson);
  if (typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJson(v)]));
  }
  return null;
}
