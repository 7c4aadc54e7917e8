// Both listeners (TCP /metrics and the unix control sockets) are bounded the same way against
// slow or abusive clients: small headers, a short header deadline, idle sockets closed, capped
// connections.
import { createServer, type RequestListener, type Server, STATUS_CODES } from "node:http";
import { Socket } from "node:net";
import type { Duplex } from "node:stream";

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
  server.on("clientError", refuse);
  return server;
}

/** How long a refused client may go on sending before its socket is destroyed. */
const LINGER_MS = 1_000;
const refused = new WeakSet<Duplex>();

/**
 * Node's own answer to a bad request (431 for oversized headers, 408, 400), with a lingering
 * close: Node destroys the socket at once, and a client still sending its 1 MiB URL then gets a
 * reset that discards the answer before it is read. Here the answer goes out, the write side
 * is closed, and the socket is destroyed a moment later.
 */
function refuse(err: Error & { code?: string }, socket: Duplex): void {
  if (refused.has(socket)) return; // the parser reports each later chunk again
  refused.add(socket);
  // A reset peer gets nothing; neither does one that was half answered (an answer started).
  const answered = socket instanceof Socket && socket.bytesWritten > 0;
  if (err.code === "ECONNRESET" || !socket.writable || answered) {
    socket.destroy();
    return;
  }
  const status =
    err.code === "HPE_HEADER_OVERFLOW"
      ? 431
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? 408
        : err.code === "HPE_CHUNK_EXTENSIONS_OVERFLOW"
          ? 413
          : 400;
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\n\r\n`);
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}
