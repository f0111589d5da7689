/**
 * Where a processor's identity comes from (core/instance-identity.ts says what it is for):
 *
 * - `--instance-id ID` (e.g. the Kubernetes pod name, through the chart's environment): used as
 *   it is; no state directory. Kubernetes keeps pod names unique; whoever sets ids by hand must.
 * - `--state-dir DIR` (the systemd unit: StateDirectory=): `DIR/instance-id`, created on first
 *   start, under `DIR/lock` (shared/io/dir-lock.ts). One live processor per state directory: a
 *   second one stops with STATE_DIR_LOCKED (exit status 2) naming the PID that holds it; the lock
 *   of a dead holder is taken over, so a restart finds the same identity.
 * - neither: the first free slot of `.vfio-telemetry/processor/` in the working directory
 *   (`0/`, `1/`, ...), each slot a state directory as above. A restart with the same command in
 *   the same directory finds slot 0 (or the lowest slot no live processor holds) and so the same
 *   identity, and several processors started from one checkout (tests, demos) get one slot
 *   each instead of refusing to start.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { join, resolve } from 'node:path';
import { TelemetryError } from '../../shared/core/errors.ts';
import type { LockOwner } from '../../shared/core/lock-owner.ts';
import { errorCode, lockDir, type HeldDirLock } from '../../shared/io/dir-lock.ts';
import { parseInstanceIdFile } from '../core/instance-identity.ts';

export const DEFAULT_STATE_DIR = join('.vfio-telemetry', 'processor');
export const INSTANCE_ID_FILE = 'instance-id';
/** Slots of the default directory tried before giving up: more live processors than this in one checkout is a mistake. */
const MAX_SLOTS = 64;

export interface ProcessorIdentity {
  readonly instanceId: string;
  /** The state directory holding the id, or null for an explicit id. */
  readonly stateDir: string | null;
  /** The dead holder whose lock was taken over, or null. */
  readonly tookOverFrom: LockOwner | null;
  /** True when the id file was created now (a first start in this directory). */
  readonly created: boolean;
  /** Releases the state directory's lock. Never throws. */
  release(): void;
}

export function claimIdentity(options: {
  readonly instanceId: string;
  readonly stateDir: string;
  readonly cwd: string;
}): ProcessorIdentity {
  if (options.instanceId !== '') {
    return {
      instanceId: options.instanceId,
      stateDir: null,
      tookOverFrom: null,
      created: false,
      release: () => undefined,
    };
  }
  if (options.stateDir !== '') {
    const dir = resolve(options.cwd, options.stateDir);
    const claimed = claimDir(dir);
    if (claimed.kind === 'held') return claimed.identity;
    throw locked(dir, claimed.path, claimed.holder);
  }
  const base = resolve(options.cwd, DEFAULT_STATE_DIR);
  let last: { path: string; holder: LockOwner | null } | undefined;
  for (let slot = 0; slot < MAX_SLOTS; slot++) {
    const claimed = claimDir(join(base, String(slot)));
    if (claimed.kind === 'held') return claimed.identity;
    last = claimed;
  }
  throw locked(base, last?.path ?? base, last?.holder ?? null);
}

function claimDir(
  dir: string,
):
  | { kind: 'held'; identity: ProcessorIdentity }
  | { kind: 'busy'; path: string; holder: LockOwner | null } {
  let lock: HeldDirLock;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const result = lockDir(dir);
    if (result.kind === 'busy') return result;
    lock = result.lock;
  } catch (error) {
    throw unwritable(dir, error);
  }
  try {
    const { instanceId, created } = readOrCreateId(dir);
    return {
      kind: 'held',
      identity: {
        instanceId,
        stateDir: dir,
        tookOverFrom: lock.tookOverFrom,
        created,
        release: () => lock.release(),
      },
    };
  } catch (error) {
    lock.release();
    throw unwritable(dir, error);
  }
}

/** The id kept in `dir`; a missing or unreadable one is replaced (written whole, then renamed). */
function readOrCreateId(dir: string): { instanceId: string; created: boolean } {
  const path = join(dir, INSTANCE_ID_FILE);
  let text: string | null = null;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw error;
  }
  const kept = text === null ? null : parseInstanceIdFile(text);
  if (kept !== null) return { instanceId: kept, created: false };
  const instanceId = randomUUID();
  const temporary = `${path}.${process.pid}.tmp`;
  const fd = fs.openSync(temporary, 'w', 0o600);
  try {
    fs.writeFileSync(fd, `${instanceId}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temporary, path);
  return { instanceId, created: true };
}

function locked(dir: string, lockFile: string, holder: LockOwner | null): TelemetryError {
  const by = holder === null ? 'another processor starting on it' : `process ${holder.pid}`;
  return new TelemetryError(
    'STATE_DIR_LOCKED',
    `state directory ${dir} is in use by ${by} (lock file ${lockFile}); one processor per state directory`,
    { details: { dir, pid: holder?.pid ?? null, lockFile } },
  );
}

function unwritable(dir: string, error: unknown): TelemetryError {
  const reason = error instanceof Error ? error.message : String(error);
  return new TelemetryError(
    'STATE_DIR_UNWRITABLE',
    `state directory ${dir} cannot be used: ${reason}`,
    { cause: error, details: { dir, errno: errorCode(error) ?? null } },
  );
}
