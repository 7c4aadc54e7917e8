// Small helpers for the errors that reach us from Node, SQLite and child processes.

/** errno-style code of an error ("ENOENT", "SQLITE_FULL"), or undefined. */
export function errorCode(e: unknown): string | undefined {
  if (typeof e === "object" && e !== null && "code" in e) {
    const c = e.code;
    if (typeof c === "string") return c;
  }
  return undefined;
}

export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Raised when a collector or command ran past its deadline. */
export class TimeoutError extends Error {
  override readonly name = "TimeoutError";
}
