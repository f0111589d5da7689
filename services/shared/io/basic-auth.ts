/**
 * HTTP basic authentication against the bcrypt hashes of a web config's `basic_auth_users`.
 *
 * bcrypt is slow on purpose (cost 10 is about 70 ms in Go and 200 ms in bcryptjs's pure
 * JavaScript), so verdicts are cached briefly by a SHA-256 of user, password and hash, as the
 * exporter toolkit caches them: Prometheus scraping every 15 s with the same credentials costs one
 * bcrypt per `cacheMs`, not one per scrape. The hash is part of the key, so a reload that changes
 * a user's hash is honoured at once. An unknown user is checked against a fixed hash, so that the
 * time taken does not tell which users exist.
 */
import { createHash } from 'node:crypto';
import bcrypt from 'bcryptjs';

export type BasicAuthVerdict = 'ok' | 'missing' | 'wrong';

export interface BasicAuthOptions {
  /** How long a verdict is reused. */
  cacheMs: number;
  /** Most verdicts kept; the oldest goes first. */
  maxEntries?: number;
  now?: () => number;
}

export type BasicAuth = (
  authorization: string | undefined,
  users: ReadonlyMap<string, string>,
) => Promise<BasicAuthVerdict>;

/** A cost-10 hash of a random password nobody knows: only its cost matters. */
const UNKNOWN_USER_HASH = '$2b$10$2hBg5oSpj/aWg6h0Me3Pie24C.GuT5INUB1a3InyblVP48nrpg83m';

export function createBasicAuth(options: BasicAuthOptions): BasicAuth {
  const { cacheMs, maxEntries = 1024, now = Date.now } = options;
  const cache = new Map<string, { ok: boolean; until: number }>();
  return async (authorization, users) => {
    const credentials = parseBasic(authorization);
    if (credentials === null) return 'missing';
    const { user, password } = credentials;
    const hash = users.get(user);
    const key = createHash('sha256')
      .update(user)
      .update('\0')
      .update(password)
      .update('\0')
      .update(hash ?? '')
      .digest('base64');
    const at = now();
    const cached = cache.get(key);
    if (cached !== undefined && cached.until > at) return cached.ok ? 'ok' : 'wrong';
    const matches = await bcrypt.compare(password, hash ?? UNKNOWN_USER_HASH);
    const ok = matches && hash !== undefined;
    cache.delete(key);
    cache.set(key, { ok, until: at + cacheMs });
    if (cache.size > maxEntries) {
      const oldest = cache.keys().next();
      if (oldest.done !== true) cache.delete(oldest.value);
    }
    return ok ? 'ok' : 'wrong';
  };
}

/** `Basic base64(user:password)` → its parts, or null when absent or malformed. */
function parseBasic(header: string | undefined): { user: string; password: string } | null {
  if (header === undefined) return null;
  const match = /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (match?.[1] === undefined) return null;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
