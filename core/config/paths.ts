// Where the configuration file and the agent's control sockets are, readable without validating
// the whole configuration: agentctl must start fast, and loading zod and the schema cost it about
// half of its 150 ms budget. Same precedence as loadConfig: --config, else the default file if it
// exists; STEMEDB_AGENT_STATE_DIR over the file; relative paths against the working directory.
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parse } from "smol-toml";

export const DEFAULT_CONFIG_FILE = "/etc/stemedb/agent.toml";
export const DEFAULT_CONTROL_SOCKET = "/run/stemedb-agent/agentctl.sock";
export const DEFAULT_STATE_DIR = "/var/lib/stemedb-agent";

const text = (v: unknown): string | undefined =>
  typeof v === "string" && v !== "" ? v : undefined;

export function controlPaths(
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): { controlSocket: string; stateDir: string } {
  const path =
    file !== undefined
      ? resolve(file)
      : existsSync(DEFAULT_CONFIG_FILE)
        ? DEFAULT_CONFIG_FILE
        : null;
  let agent: Record<string, unknown> = {};
  if (path !== null) {
    try {
      const t = parse(readFileSync(path, "utf8"))["agent"];
      if (typeof t === "object" && t !== null && !Array.isArray(t))
        agent = t as Record<string, unknown>;
    } catch {
      // unreadable or not TOML: the agent refuses such a file too; look where it would be by default
    }
  }
  return {
    controlSocket: resolve(text(agent["control_socket"]) ?? DEFAULT_CONTROL_SOCKET),
    stateDir: resolve(
      text(env["STEMEDB_AGENT_STATE_DIR"]) ?? text(agent["state_dir"]) ?? DEFAULT_STATE_DIR,
    ),
  };
}
