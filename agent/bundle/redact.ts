// What the diagnostic bundle leaves out of the configuration it carries, pure. A bundle leaves
// the node (attached to a ticket, sent to a vendor), so anything that could be a credential is
// replaced by a marker that says it was there: credentials and query strings of URLs, values of
// keys named like secrets, and secret-looking options inside command lines (wal.verify_command).

import { REDACTED, redactUrl } from "../../core/url.js";

export { REDACTED, redactUrl };

/** What redaction does, in words: printed by `agentctl bundle --list` and in the MANIFEST. */
export const REDACTION_RULES: readonly string[] = [
  "URLs (e.g. stemedb.metrics_url): user name, password, query string and fragment removed",
  "values of keys named like secrets (password, passwd, secret, token, api_key, credential, auth)",
  "secret-looking options inside strings (e.g. in wal.verify_command): --password X, token=X, " +
    "Authorization: Bearer X",
  "the agent's status, diagnosis and events (text and JSON): URLs and secret-looking options " +
    "as above (an event from before credentials were kept out of messages may hold one)",
  "journal lines, kernel-log lines and the database's /metrics text are included as logged, " +
    "NOT redacted",
];

const SECRET_KEY = /pass(word|wd)?|secret|token|api[_-]?key|credential|auth/i;
// An option or assignment naming a secret, and its value: "--password x", "--token=x",
// "password=x", "api_key: x", "Bearer x".
const SECRET_WORD = "(?:pass(?:word|wd)?|secret|token|api[_-]?key|credentials?)";
const SECRET_OPTION = new RegExp(
  `(--?(?:${SECRET_WORD}|auth)(?:[= ]+)|\\b${SECRET_WORD}\\s*[=:]\\s*|\\bBearer\\s+)` +
    `("[^"]*"|'[^']*'|[^\\s"']+)`,
  "gi",
);
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]+/gi;

/** One string value: URLs inside it, then secret-looking options. */
export function redactText(text: string): { text: string; changed: boolean } {
  let changed = false;
  let out = text.replace(URL_IN_TEXT, (m) => {
    const r = redactUrl(m);
    changed ||= r.changed;
    return r.text;
  });
  out = out.replace(SECRET_OPTION, (_m, opt: string, value: string) => {
    if (value === REDACTED) return `${opt}${value}`;
    changed = true;
    return `${opt}${REDACTED}`;
  });
  return { text: out, changed };
}

/**
 * A plain value (the configuration as TOML-ready data) with secrets replaced, and the dotted
 * keys where something was replaced.
 */
export function redactValue(v: unknown, path = ""): { value: unknown; redacted: string[] } {
  const redacted: string[] = [];
  const walk = (x: unknown, p: string, key: string): unknown => {
    if (typeof x === "string") {
      if (x !== "" && SECRET_KEY.test(key)) {
        redacted.push(p);
        return REDACTED;
      }
      const r = redactText(x);
      if (r.changed) redacted.push(p);
      return r.text;
    }
    if (Array.isArray(x)) return x.map((e, i) => walk(e, `${p}[${i}]`, key));
    if (typeof x === "object" && x !== null) {
      const o: Record<string, unknown> = {};
      for (const [k, e] of Object.entries(x)) o[k] = walk(e, p ? `${p}.${k}` : k, k);
      return o;
    }
    return x;
  };
  return { value: walk(v, path, path), redacted };
}
