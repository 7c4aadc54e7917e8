// A stable text for a value built from the configuration: object keys sorted, so the same
// options always give the same fingerprint whatever order they were built in.

export function fingerprint(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v === undefined
      ? "\u0000undefined" // JSON would drop it: {a: undefined} and {} must differ
      : v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(
            Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
          )
        : v,
  );
}
