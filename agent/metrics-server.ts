// The only TCP listener: GET /metrics and GET /healthz. Nothing else, and never an action.
// Bounded against slow or abusive clients: small headers, short timeouts, capped connections.
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { boundedServer } from "./http.js";
import type { AddressInfo } from "node:net";
import { constants as zlibConstants, gzipSync } from "node:zlib";
import type { Registry } from "prom-client";
import { errorMessage } from "../core/errors.js";
import type { Logger } from "../core/log.js";

// Synchronous, level 3: ~0.25 ms for a 38 KB scrape (p99 0.41 ms), where the async form's hand-off
// to the thread pool cost ~3 ms at p99 (measured on a real scrape); level 6 saves 8% of the bytes
// for 60% more time.
const GZIP = { level: 3, memLevel: zlibConstants.Z_DEFAULT_MEMLEVEL };

export interface Health {
  readonly ok: boolean;
  readonly reason: string;
}

export interface MetricsServerOptions {
  readonly listen: string;
  readonly registry: Registry;
  readonly health: () => Health;
  readonly log: Logger;
}

export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(":");
  let host = listen.slice(0, i);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  return { host: host === "" ? "::" : host, port: Number(listen.slice(i + 1)) };
}

export class MetricsServer {
  private constructor(private readonly server: Server) {}

  static async start(opts: MetricsServerOptions): Promise<MetricsServer> {
    const server = boundedServer(
      { requestTimeoutMs: 10_000, maxConnections: 256, keepAliveTimeoutMs: 30_000 },
      (req, res) => {
        handle(req, res, opts).catch((e: unknown) => {
          opts.log.error({ err: errorMessage(e) }, "metrics: request failed");
          if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
          res.end("internal error\n");
        });
      },
    );
    const { host, port } = parseListen(opts.listen);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host, port, ipv6Only: false }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", (e) => opts.log.error({ err: errorMessage(e) }, "metrics: server error"));
    return new MetricsServer(server);
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  opts: MetricsServerOptions,
): Promise<void> {
  req.resume(); // a body is never expected; drain it without buffering
  const url = new URL(req.url ?? "/", "http://x");
  if (req.method !== "GET" && req.method !== "HEAD") {
    res
      .writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" })
      .end("method not allowed\n");
    return;
  }
  if (url.pathname === "/healthz") {
    const h = opts.health();
    res.writeHead(h.ok ? 200 : 503, {
      "content-type": "text/plain; charset=utf-8",
      "cache-control": "no-store",
    });
    res.end(req.method === "HEAD" ? undefined : `${h.ok ? "ok" : "unhealthy"}: ${h.reason}\n`);
    return;
  }
  if (url.pathname !== "/metrics") {
    res
      .writeHead(404, { "content-type": "text/plain" })
      .end("not found: this port serves /metrics and /healthz only\n");
    return;
  }
  const text = await opts.registry.metrics();
  const headers: Record<string, string> = {
    "content-type": opts.registry.contentType,
    "cache-control": "no-store",
    vary: "accept-encoding",
  };
  const wantsGzip = /\bgzip\b/.test(req.headers["accept-encoding"] ?? "");
  const body = wantsGzip ? gzipSync(text, GZIP) : Buffer.from(text);
  if (wantsGzip) headers["content-encoding"] = "gzip";
  headers["content-length"] = String(body.length);
  res.writeHead(200, headers);
  res.end(req.method === "HEAD" ? undefined : body);
}
