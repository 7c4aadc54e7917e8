// The control API: HTTP+JSON on the unix socket (curl --unix-socket works).
// Read-only routes today; actions (root only) arrive with the remediators.
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { boundedServer } from "../http.js";
import { unlinkSync } from "node:fs";
import { errorMessage } from "../../core/errors.js";
import type { Logger } from "../../core/log.js";
import { listenUnix, SocketInUse } from "./socket.js";

export type RouteHandler = (url: URL) => unknown;

/** Thrown by a route for a request it cannot answer as asked (answered 400, not 500). */
export class BadRequest extends Error {}

export interface ControlServerOptions {
  /** Tried in order: the configured path, then the fallback in the state dir. */
  readonly paths: readonly string[];
  readonly group: string;
  /** Socket file mode: 0660 (group may read) by default; 0600 for the root-only admin socket. */
  readonly mode?: number;
  readonly routes: ReadonlyMap<string, RouteHandler>;
  readonly log: Logger;
}

export class ControlServer {
  private constructor(
    private readonly server: Server,
    readonly path: string,
  ) {}

  static async start(opts: ControlServerOptions): Promise<ControlServer> {
    const server = boundedServer(
      { requestTimeoutMs: 60_000, maxConnections: 1024 },
      (req, res) => void handle(req, res, opts),
    );
    const failures: string[] = [];
    for (const path of opts.paths) {
      try {
        const { groupApplied } = await listenUnix(server, path, opts.group, opts.mode ?? 0o660);
        if (failures.length > 0)
          opts.log.warn(
            { path, failures },
            "control: configured socket path unusable; using the fallback",
          );
        if (!groupApplied)
          opts.log.info(
            { path, group: opts.group },
            "control: group not found or not settable; socket readable by its owner's group only",
          );
        server.on("error", (e) =>
          opts.log.error({ err: errorMessage(e) }, "control: server error"),
        );
        return new ControlServer(server, path);
      } catch (e) {
        // a second agent on one socket is a mistake, not a reason to hide elsewhere
        if (e instanceof SocketInUse) throw e;
        failures.push(`${path}: ${errorMessage(e)}`);
      }
    }
    throw new Error(`cannot create the control socket (${failures.join("; ")})`);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

/** Longer request targets are refused: no route or parameter the agent knows needs more. */
const MAX_URL = 2048;

function send(res: ServerResponse, status: number, body: unknown, close = false): void {
  const text = `${JSON.stringify(body)}\n`;
  const headers: Record<string, string | number> = {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  };
  // A malformed request is answered and its connection closed at once, not left to the timeout.
  if (close) headers["connection"] = "close";
  res.writeHead(status, headers);
  res.end(text);
}

/**
 * The request target as a URL, or why not. Anything a socket member sends is untrusted: only the
 * origin form ("/path?query") is accepted, bounded in length, parsed where a throw is caught.
 */
export function requestUrl(target: string | undefined): URL | string {
  const t = target ?? "";
  if (t.length > MAX_URL) return `request target longer than ${MAX_URL} bytes`;
  if (!t.startsWith("/") || t.startsWith("//"))
    return "request target must be a path such as /v1/status";
  try {
    return new URL(t, "http://agent");
  } catch {
    return "request target is not a valid URL";
  }
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  opts: ControlServerOptions,
): Promise<void> {
  req.resume();
  try {
    const url = requestUrl(req.url);
    if (typeof url === "string") {
      send(res, 400, { error: url }, true);
      return;
    }
    const route = opts.routes.get(`${req.method ?? "GET"} ${url.pathname}`);
    if (!route) {
      send(res, 404, { error: `no such command: ${req.method} ${url.pathname}` });
      return;
    }
    try {
      send(res, 200, await route(url));
    } catch (e) {
      if (e instanceof BadRequest) {
        send(res, 400, { error: e.message });
        return;
      }
      opts.log.error({ path: url.pathname, err: errorMessage(e) }, "control: request failed");
      send(res, 500, { error: errorMessage(e) });
    }
  } catch (e) {
    // Nothing a client sends may become an unhandled rejection; a reply already begun is cut.
    opts.log.error({ err: errorMessage(e) }, "control: cannot answer a request");
    if (!res.headersSent) send(res, 500, { error: "internal error" }, true);
    else res.destroy();
  }
}
