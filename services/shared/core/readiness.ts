/** What /readyz answers: 200 when `ready`, else 503; the reasons one per line either way. */
export interface Readiness {
  readonly ready: boolean;
  /** Why the stage is not ready (or what it is ready with), for humans. */
  readonly reasons: readonly string[];
}

/** The stage's /readyz from its parts': ready when every part is, with every part's reasons. */
export function combineReadiness(parts: readonly Readiness[]): Readiness {
  return {
    ready: parts.every((p) => p.ready),
    reasons: parts.flatMap((p) => p.reasons),
  };
}
