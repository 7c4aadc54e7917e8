// Finding, reading, overriding and validating the configuration.
// Every failure is a list of one-line problems naming the file, the key and the reason.
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parse as parseToml, stringify as stringifyToml, TomlError } from "smol-toml";
import { z } from "zod";
import { type Config, configSchema, DEFAULT_CONFIG_FILE } from "./schema.js";
import { errorMessage } from "../errors.js";

export interface LoadedConfig {
  readonly config: Config;
  /** The file read, or null when running on embedded defaults. */
  readonly file: string | null;
}

/** untrusted: the file is fine but a root agent may not trust it (see trust.ts). */
export type LoadResult =
  { ok: true; loaded: LoadedConfig } | { ok: false; problems: string[]; untrusted?: boolean };

/** Environment variables that override single keys (for quick starts and containers). */
export const ENV_OVERRIDES: ReadonlyArray<{ env: string; section: "agent"; key: string }> = [
  { env: "STEMEDB_AGENT_LISTEN", section: "agent", key: "listen" },
  { env: "STEMEDB_AGENT_STATE_DIR", section: "agent", key: "state_dir" },
];

export interface LoadOptions {
  /** --config FILE; when absent the default file is read if it exists. */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Where the default file is looked for (tests point this elsewhere). */
  defaultFile?: string;
}

export function loadConfig(opts: LoadOptions = {}): LoadResult {
  const env = opts.env ?? process.env;
  const defaultFile = opts.defaultFile ?? DEFAULT_CONFIG_FILE;
  let file: string | null = null;
  if (opts.file !== undefined) file = resolve(opts.file);
  else if (existsSync(defaultFile)) file = defaultFile;

  let raw: Record<string, unknown> = {};
  if (file !== null) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      return { ok: false, problems: [`${file}: cannot read: ${errorMessage(e)}`] };
    }
    try {
      raw = parseToml(text);
    } catch (e) {
      if (e instanceof TomlError) {
        const first = e.message.split("\n")[0] ?? e.message;
        return {
          ok: false,
          problems: [
            `${file}:${e.line}:${e.column}: TOML syntax error: ${first.replace(/^Invalid TOML document: /, "")}`,
          ],
        };
      }
      return { ok: false, problems: [`${file}: ${errorMessage(e)}`] };
    }
  }

  const origin = new Map<string, string>(); // key path -> where its value came from, for messages
  for (const o of ENV_OVERRIDES) {
    const v = env[o.env];
    if (v === undefined || v === "") continue;
    const sec = raw[o.section];
    const target =
      typeof sec === "object" && sec !== null && !Array.isArray(sec)
        ? (sec as Record<string, unknown>)
        : {};
    target[o.key] = v;
    raw[o.section] = target;
    origin.set(`${o.section}.${o.key}`, `environment variable ${o.env}`);
  }

  const parsed = configSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    return {
      ok: false,
      problems: formatIssues(parsed.error.issues, file ?? "embedded defaults", origin),
    };
  }
  return { ok: true, loaded: { config: absolutise(parsed.data), file } };
}

function formatIssues(
  issues: readonly z.core.$ZodIssue[],
  file: string,
  origin: Map<string, string>,
): string[] {
  const out: string[] = [];
  for (const issue of issues) {
    const base = issue.path.map(String).join(".");
    if (issue.code === "unrecognized_keys") {
      for (const k of issue.keys) {
        const key = base ? `${base}.${k}` : k;
        out.push(
          `${file}: ${key}: unknown key (check the spelling against the configuration reference)`,
        );
      }
      continue;
    }
    const where = origin.get(base) ?? file;
    out.push(`${where}: ${base || "(top level)"}: ${describe(issue)}`);
  }
  return out;
}

function describe(issue: z.core.$ZodIssue): string {
  // Messages written in the schema are already specific; rephrase only zod's generic ones.
  if (!issue.message.startsWith("Invalid")) return issue.message;
  switch (issue.code) {
    case "invalid_type":
      return `expected ${issue.expected}, got ${typeName(issue.input)}`;
    case "invalid_value":
      return (
        `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}, ` +
        `got ${JSON.stringify(issue.input)}`
      );
    case "invalid_union":
      return `invalid value ${JSON.stringify(issue.input)}`;
    default:
      return issue.message;
  }
}

function typeName(v: unknown): string {
  if (v === undefined) return "nothing";
  if (Array.isArray(v)) return "an array";
  if (v === null) return "null";
  if (typeof v === "object") return v instanceof Date ? "a date" : "a table";
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** Relative paths (allowed for quick starts) are resolved once, here, against the working directory. */
function absolutise(c: Config): Config {
  return {
    ...c,
    agent: {
      ...c.agent,
      state_dir: resolve(c.agent.state_dir),
      control_socket: resolve(c.agent.control_socket),
    },
  };
}

/** The effective configuration as TOML: loadable again, durations and sizes as strings. */
export function printConfig(c: Config): string {
  return stringifyToml(z.encode(configSchema, c));
}
