// Talking to the agent over its control socket.
import { request } from "node:http";
import { connect } from "node:net";
import { dirname, join } from "node:path";
import { controlPaths } from "../../core/config/paths.js";
import { errorMessage } from "../../core/errors.js";

export class Unreachable extends Error {
  constructor(
    readonly tried: readonly string[],
    readonly reasons: readonly string[],
  ) {
    super(`cannot reach the agent: ${reasons.join("; ")}`);
  }
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Where to look for the socket: --socket alone if given, else $STEMEDB_AGENT_SOCKET, else the
 * config's path and its fallback.
 */
export function socketCandidates(
  opts: { socket?: string | undefined; config?: string | undefined },
  env = process.env,
): string[] {
  if (opts.socket) return [opts.socket];
  if (env["STEMEDB_AGENT_SOCKET"]) return [env["STEMEDB_AGENT_SOCKET"]];
  const { controlSocket, stateDir } = controlPaths(opts.config, env);
  return [...new Set([controlSocket, join(stateDir, "agentctl.sock")])];
}

/** The root-only socket for actions, next to each read socket. */
export function adminCandidates(candidates: readonly string[]): string[] {
  return candidates.map((c) => join(dirname(c), "agentctl-admin.sock"));
}

function getOnce(
  socketPath: string,
  path: string,
  timeoutMs: number,
  method = "GET",
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    // Our own connection instead of http's global Agent: the Agent checks whether the host
    // name is an IP address, and compiling that IPv6 regex costs agentctl ~14 ms per run.
    const req = request(
      { createConnection: () => connect(socketPath), host: "agent", path, method },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            reject(
              new ApiError(
                res.statusCode ?? 0,
                `agent answered with non-JSON: ${text.slice(0, 200)}`,
              ),
            );
            return;
          }
          if ((res.statusCode ?? 500) >= 400) {
            const msg =
              typeof body === "object" && body !== null && "error" in body
                ? String(body.error)
                : text;
            reject(new ApiError(res.statusCode ?? 0, msg));
            return;
          }
          resolve(body);
        });
      },
    );
    // setTimeout, not the `timeout` option: with createConnection the option is never applied.
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

export class Refused extends Error {}

/** A full listen queue: the agent is busy or flooded, and a moment later it may accept. */
const BUSY_RETRY_MS = [50, 100, 200, 400, 800];

/** getOnce, retried while the socket's listen queue is full (EAGAIN), within the same timeout. */
async function getRetrying(
  socket: string,
  path: string,
  timeoutMs: number,
  method: string,
): Promise<unknown> {
  const deadline = performance.now() + timeoutMs;
  for (const wait of BUSY_RETRY_MS) {
    try {
      return await getOnce(socket, path, timeoutMs, method);
    } catch (e) {
      const left = deadline - performance.now() - wait;
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN" || left <= 0) throw e;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
  return getOnce(socket, path, Math.max(1, deadline - performance.now()), method);
}

export async function get(
  candidates: readonly string[],
  path: string,
  timeoutMs = 5000,
  method = "GET",
  /** On the root-only admin socket: permission denied is a refusal, not an unreachable agent. */
  rootOnly = method !== "GET",
): Promise<{ body: unknown; socket: string }> {
  const reasons: string[] = [];
  for (const socket of candidates) {
    try {
      return { body: await getRetrying(socket, path, timeoutMs, method), socket };
    } catch (e) {
      if (e instanceof ApiError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EACCES" && rootOnly)
        throw new Refused(`${socket}: permission denied: actions are for root only`);
      const why =
        code === "ENOENT"
          ? "no such socket"
          : code === "ECONNREFUSED"
            ? "nothing listening (stale socket)"
            : code === "EACCES"
              ? "permission denied"
              : code === "EAGAIN"
                ? "the agent's connection queue stayed full (busy or flooded)"
                : errorMessage(e);
      reasons.push(`${socket}: ${why}`);
    }
  }
  throw new Unreachable(candidates, reasons);
}
