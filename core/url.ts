// URLs that may carry credentials (stemedb.metrics_url): how to fetch them (fetch refuses a URL
// with a user name or password: they go in an Authorization header) and how to show them (never
// with the credentials or the query string, which often holds a token).

export const REDACTED = "<redacted>";

/** A URL without credentials, query or fragment; the text unchanged when it is not a URL. */
export function redactUrl(text: string): { text: string; changed: boolean } {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return { text, changed: false };
  }
  const changed = u.username !== "" || u.password !== "" || u.search !== "" || u.hash !== "";
  if (!changed) return { text, changed };
  const cred = u.username !== "" || u.password !== "" ? `${REDACTED}@` : "";
  const query = u.search ? `?${REDACTED}` : "";
  const hash = u.hash ? `#${REDACTED}` : "";
  return { text: `${u.protocol}//${cred}${u.host}${u.pathname}${query}${hash}`, changed };
}

/** What to pass to fetch for `url`: its credentials moved into a Basic Authorization header. */
export function fetchable(url: string): { target: URL; headers: Record<string, string> } {
  const target = new URL(url);
  const headers: Record<string, string> = {};
  if (target.username !== "" || target.password !== "") {
    const user = decodeURIComponent(target.username);
    const pass = decodeURIComponent(target.password);
    headers["authorization"] = `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;
    target.username = "";
    target.password = "";
  }
  return { target, headers };
}

/** An error message about fetching `url`, with the URL shown redacted wherever it appears. */
export function fetchError(url: string, e: unknown): string {
  const msg = (x: unknown) => (x instanceof Error ? x.message : String(x));
  const cause = (e as { cause?: unknown } | null)?.cause;
  const text = cause === undefined ? msg(e) : `${msg(e)}: ${msg(cause)}`;
  return text.split(url).join(redactUrl(url).text);
}
