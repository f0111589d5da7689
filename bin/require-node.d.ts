/** Whether VERSION (22.22.0) satisfies RANGE, a `||` of `^X.Y.Z` and `>=X.Y.Z` terms. */
export function satisfies(range: string, version: string): boolean;
