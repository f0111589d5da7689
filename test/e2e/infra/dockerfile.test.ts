/**
 * infra/docker/Dockerfile ships what `npm run package` builds (docker cannot run on this machine:
 * the file is checked as text): the builder stage runs the packaging script, and the default
 * (last) stage is the executable alone on a minimal base, as a non-root user.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const TEXT = readFileSync(new URL('../../../infra/docker/Dockerfile', import.meta.url), 'utf8');
const stages = TEXT.split(/^(?=FROM )/m).filter((s) => s.startsWith('FROM '));

test('the builder stage builds the executable with the packaging script', () => {
  const builder = stages.find((s) => /^FROM \S+ AS builder$/m.test(s)) ?? '';
  assert.match(builder, /infra\/package\/package\.ts\s+\\?\s*--out dist --executable-only/);
  assert.match(builder, /\.\/dist\/vfio-telemetry --version/);
});

test('the shipped stage is the executable alone, non-root, on a minimal base', () => {
  const last = stages.at(-1) ?? '';
  assert.match(last, /^FROM gcr\.io\/distroless\/cc-debian12:nonroot$/m);
  assert.match(
    last,
    /^COPY --from=builder \/build\/dist\/vfio-telemetry \/usr\/bin\/vfio-telemetry$/m,
  );
  assert.match(last, /^USER nonroot$/m);
  assert.match(last, /^ENTRYPOINT \["\/usr\/bin\/vfio-telemetry"\]$/m);
  assert.doesNotMatch(last, /^(RUN|ADD) /m, 'nothing installed or run in the shipped image');
});
