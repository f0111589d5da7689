import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import {
  connectionSecurity,
  jwtExpiry,
  oauthBearerServerError,
  tokenFileProvider,
} from '../../../../services/shared/kafka/io/security.ts';

/** An unsigned JWT for `sub`, expiring at `exp` (seconds since the epoch). */
function jwt(sub: string, exp: number): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none' })}.${part({ sub, exp })}.`;
}

function tokenFile(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'token-file-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'token');
}

/**
 * Writes `text` to `path` with mtime `second` (whole seconds, which stat gives back exactly):
 * written again at the same second with the same size, a change only a re-read would see.
 */
function writeAt(path: string, text: string, second = 1_800_000_000): void {
  writeFileSync(path, text);
  utimesSync(path, second, second);
}

test('jwtExpiry reads exp, and nothing from what is not a JWT', () => {
  assert.equal(jwtExpiry(jwt('collector', 1_900_000_000)), 1_900_000_000);
  assert.equal(jwtExpiry('opaque-token'), undefined);
  assert.equal(jwtExpiry('a.not-json.'), undefined);
});

test('the token file is read again when it changes, not at every login', (t) => {
  const path = tokenFile(t);
  const far = Math.floor(Date.now() / 1000) + 3600;
  writeAt(path, `${jwt('aaaa', far)}\n`);
  const token = tokenFileProvider(path);
  assert.equal(token(), jwt('aaaa', far));
  // Same size, same mtime: the cached token (the file is not read at each login).
  writeAt(path, `${jwt('bbbb', far)}\n`);
  assert.equal(token(), jwt('aaaa', far));
  // Changed (new size and mtime): read again.
  writeAt(path, `${jwt('collector', far)}\n`, 1_800_000_001);
  assert.equal(token(), jwt('collector', far));
});

test('the token file is read again when its token expires within the margin', (t) => {
  const path = tokenFile(t);
  const soon = Math.floor(Date.now() / 1000) + 10;
  writeAt(path, jwt('aaaa', soon));
  const token = tokenFileProvider(path, 30_000);
  assert.equal(token(), jwt('aaaa', soon));
  // Unseen by size and mtime, but the cached token expires within 30 s: read again.
  writeAt(path, jwt('bbbb', soon));
  assert.equal(token(), jwt('bbbb', soon));
});

test('an OAUTHBEARER error answer fails the login without the token; an empty answer passes', () => {
  const results: [Error | null, Buffer][] = [];
  oauthBearerServerError(Buffer.from('{"status":"invalid_token"}'), (e, b) => results.push([e, b]));
  oauthBearerServerError(Buffer.alloc(0), (e, b) => results.push([e, b]));
  assert.equal(results.length, 2, 'one callback per answer');
  assert.match(
    String(results[0]?.[0]?.message),
    /refused the OAUTHBEARER token \("invalid_token"\)/,
  );
  assert.equal(results[1]?.[0], null);
});

test('connectionSecurity gives OAUTHBEARER a token provider and the error check', (t) => {
  const path = tokenFile(t);
  writeFileSync(path, 'opaque\n');
  const { sasl } = connectionSecurity({
    protocol: 'SASL_SSL',
    sasl: { mechanism: 'OAUTHBEARER', tokenFile: path },
  });
  assert.equal(sasl?.mechanism, 'OAUTHBEARER');
  assert.equal(typeof sasl?.token === 'function' ? sasl.token() : undefined, 'opaque');
  assert.equal(sasl?.authBytesValidator, oauthBearerServerError);
});
