// Both listeners (TCP /metrics and the unix control sockets) are bounded the same way against
// slow or abusive clients: small headers, a short header deadline, idle sockets closed, capped
// connections.
import { createServer, type RequestListener, type Server } from "node:http";

export interface Bounds {
  /** The whole request, headers and body, must arrive within this. */
  readonly requestTimeoutMs: number;
  readonly maxConnections: number;
  /** How long an idle keep-alive connection is kept (Node's default when absent). */
  readonly keepAliveTimeoutMs?: number;
}

export function boundedServer(b: Bounds, listener: RequestListener): Server {
  const server = createServer(
    {
      maxHeaderSize: 8 * 1024,
      requestTimeout: b.requestTimeoutMs,
      headersTimeout: 5_000,
      ...(b.keepAliveTimeoutMs !== undefined ? { keepAliveTimeout: b.keepAliveTimeoutMs } : {}),
      // Node enforces the header and request deadlines only when it sweeps its connections
      // (default every 30 s): without this a slow-loris lives up to 35 s, not 5.
      connectionsCheckingInterval: 1_000,
    },
    listener,
  );
  server.maxConnections = b.maxConnections;
  server.setTimeout(30_000, (sock) => sock.destroy());
  return server;
}
