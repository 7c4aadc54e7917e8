// Fault injection on the agent's two listeners: a thousand connections and slow clients on the
// control socket, a slow-loris client, a connection flood, oversized headers and endless bodies
// on the TCP /metrics port. What must survive: normal clients are answered meanwhile, abusive
// connections are closed within the server's own timeouts, nothing oversized is accepted.
import { connect, type Socket } from "node:net";
import test from "ava";
import { agentctl, fetchText, QUIET_COLLECTORS, startAgent } from "./helpers/agent-process.js";
import { sleep } from "./helpers/quiet.js";
import { until } from "./helpers/faults.js";

/** The servers' header timeout (agent/control/server.ts, agent/metrics-server.ts). */
const HEADERS_TIMEOUT_MS = 5_000;
/** Generous slack on a loaded 2-core machine; a close that takes the old 30 s check interval still fails. */
const CLOSE_BOUND_MS = HEADERS_TIMEOUT_MS + 10_000;

interface Conn {
  readonly sock: Socket;
  readonly opened: number;
  closedAt: number | null;
  data: string;
}

function open(target: string | { port: number }): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const sock =
      typeof target === "string"
        ? connect(target)
        : connect({ host: "127.0.0.1", port: target.port });
    const c: Conn = { sock, opened: performance.now(), closedAt: null, data: "" };
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => (c.data += d));
    sock.on("close", () => (c.closedAt = performance.now()));
    sock.once("connect", () => resolve(c));
    sock.once("error", (e) => (c.closedAt === null ? reject(e) : undefined));
    sock.on("error", () => undefined);
  });
}

/** A slow-loris: a request line, then one header byte every `everyMs`, never finishing the headers. */
function drip(c: Conn, everyMs = 400): () => void {
  c.sock.write("GET /metrics HTTP/1.1\r\nHost: agent\r\nX-Slow: ");
  const t = setInterval(() => {
    if (c.closedAt === null && !c.sock.destroyed) c.sock.write("a");
  }, everyMs);
  return () => clearInterval(t);
}

test(
  "1,000 concurrent connections and slow clients on the control socket: a normal agentctl is answered, " +
    "the slow ones are closed at the header timeout",
  async (t) => {
    const a = await startAgent({ extraToml: QUIET_COLLECTORS });
    const conns: Conn[] = [];
    const stops: Array<() => void> = [];
    t.teardown(async () => {
      for (const s of stops) s();
      for (const c of conns) c.sock.destroy();
      await a.stop("SIGKILL");
    });
    // 950 connections that send nothing and 50 that send a request one byte at a time.
    for (let i = 0; i < 1000; i++) conns.push(await open(a.socket));
    const slow = conns.slice(950);
    for (const c of slow) stops.push(drip(c));
    await sleep(500);
    t.is(
      conns.filter((c) => c.closedAt !== null).length,
      0,
      "all 1,000 connections are open at once",
    );

    const status = agentctl(["--socket", a.socket, "status", "--json"]);
    t.is(status.code, 0, status.stderr);
    t.is((JSON.parse(status.stdout) as { schema: number }).schema, 1);
    t.is((await fetchText(`${a.url}/healthz`)).status, 200, "the agent's loop is not starved");

    // The slow clients never get to a request: each is closed within the header timeout.
    await until(
      "every slow client is closed",
      () => slow.every((c) => c.closedAt !== null),
      CLOSE_BOUND_MS + 5_000,
    );
    for (const c of slow)
      t.true(
        (c.closedAt ?? Infinity) - c.opened < CLOSE_BOUND_MS,
        `slow client open for ${((c.closedAt ?? NaN) - c.opened).toFixed(0)} ms`,
      );
    t.false(
      slow.some((c) => c.data.startsWith("HTTP/1.1 200")),
      "no slow client was served",
    );
    // The silent ones go too (header or idle timeout), so they cannot hold the socket forever.
    await until(
      "every silent connection is closed",
      () => conns.every((c) => c.closedAt !== null),
      45_000,
      500,
    );
    const again = agentctl(["--socket", a.socket, "status"]);
    t.true(again.code === 0 || again.code === 1, again.stderr);
  },
);

test("a slow-loris on /metrics is closed within the header timeout, and scrapes are answered meanwhile", async (t) => {
  const a = await startAgent({ extraToml: QUIET_COLLECTORS });
  const c = await open({ port: a.port });
  const stop = drip(c);
  t.teardown(async () => {
    stop();
    c.sock.destroy();
    await a.stop("SIGKILL");
  });
  let served = 0;
  while (c.closedAt === null && performance.now() - c.opened < CLOSE_BOUND_MS + 5_000) {
    const r = await fetchText(`${a.url}/metrics`);
    t.is(r.status, 200);
    served++;
    await sleep(250);
  }
  t.not(c.closedAt, null, "the slow-loris connection was closed");
  t.true(
    (c.closedAt ?? Infinity) - c.opened < CLOSE_BOUND_MS,
    `open for ${((c.closedAt ?? NaN) - c.opened).toFixed(0)} ms`,
  );
  t.true(served >= 3, `${served} scrapes answered while it dripped`);
  t.false(c.data.includes("200 OK"));
});

test(
  "a flood of 300 silent connections on /metrics (cap 256) blocks scrapes only until the header timeout " +
    "closes them",
  async (t) => {
    const a = await startAgent({ extraToml: QUIET_COLLECTORS });
    const conns: Conn[] = [];
    t.teardown(async () => {
      for (const c of conns) c.sock.destroy();
      await a.stop("SIGKILL");
    });
    for (let i = 0; i < 300; i++) conns.push(await open({ port: a.port }));
    const t0 = performance.now();
    // Connections past the cap are closed at once by the server.
    await until(
      "connections past the cap are refused",
      () => conns.filter((c) => c.closedAt !== null).length >= 300 - 256,
      10_000,
    );
    const ok = await until(
      "a scrape is answered again",
      async () => {
        try {
          const r = await fetchText(`${a.url}/metrics`, { signal: AbortSignal.timeout(2000) });
          return r.status === 200;
        } catch {
          return false;
        }
      },
      CLOSE_BOUND_MS + 10_000,
      250,
    );
    t.true(ok);
    t.true(performance.now() - t0 < CLOSE_BOUND_MS + 10_000);
    await until(
      "every silent connection is closed",
      () => conns.every((c) => c.closedAt !== null),
      CLOSE_BOUND_MS + 5_000,
    );
  },
);

test(
  "oversized requests on /metrics: a 1 MiB header and a 1 MiB URL are refused with 431; " +
    "an endless body is cut off at the request timeout",
  async (t) => {
    const a = await startAgent({ extraToml: QUIET_COLLECTORS });
    t.teardown(() => a.stop("SIGKILL"));
    for (const [what, req] of [
      [
        "1 MiB header",
        `GET /metrics HTTP/1.1\r\nHost: agent\r\nX-Big: ${"a".repeat(1 << 20)}\r\n\r\n`,
      ],
      ["1 MiB URL", `GET /metrics?${"a".repeat(1 << 20)} HTTP/1.1\r\nHost: agent\r\n\r\n`],
      [
        "10,000 small headers",
        `GET /metrics HTTP/1.1\r\nHost: agent\r\n${"X-A: b\r\n".repeat(10_000)}\r\n`,
      ],
    ] as const) {
      const c = await open({ port: a.port });
      c.sock.on("error", () => undefined);
      c.sock.write(req);
      await until(`${what}: answered and closed`, () => c.closedAt !== null, 15_000);
      t.regex(c.data, /^HTTP\/1\.1 431 /, what);
      t.false(c.data.includes("stemedb_agent_build_info"), `${what}: no metrics served`);
    }

    // GET /metrics with a chunked body that never ends: the request is cut at the request timeout.
    const c = await open({ port: a.port });
    c.sock.write("GET /metrics HTTP/1.1\r\nHost: agent\r\nTransfer-Encoding: chunked\r\n\r\n");
    const chunk = `400\r\n${"z".repeat(1024)}\r\n`;
    const feeder = setInterval(() => {
      if (c.closedAt === null && !c.sock.destroyed) c.sock.write(chunk);
    }, 20);
    t.teardown(() => clearInterval(feeder));
    let served = 0;
    while (c.closedAt === null && performance.now() - c.opened < 30_000) {
      t.is((await fetchText(`${a.url}/healthz`)).status, 200);
      served++;
      await sleep(500);
    }
    clearInterval(feeder);
    t.not(c.closedAt, null, "the endless request was cut off");
    t.true(
      (c.closedAt ?? Infinity) - c.opened < 10_000 + 10_000,
      `open for ${((c.closedAt ?? NaN) - c.opened).toFixed(0)} ms (request timeout 10 s)`,
    );
    t.true(served >= 2, "others were served meanwhile");
    // And the port still works for a normal scrape afterwards.
    t.is((await fetchText(`${a.url}/metrics`)).status, 200);
  },
);

test(
  "malformed request targets on the control socket are answered 400 and the connection closed at once; " +
    "no unhandled rejection",
  async (t) => {
    const a = await startAgent({ extraToml: QUIET_COLLECTORS });
    t.teardown(() => a.stop("SIGKILL"));
    const targets = [
      "//%zz",
      "http://%zz/",
      "http://[/v1/status",
      "*",
      "//agent/v1/status",
      "v1/status",
      `/v1/status?${"a".repeat(3000)}`,
    ];
    for (const target of targets) {
      for (const method of ["GET", "POST"]) {
        const c = await open(a.socket);
        c.sock.write(`${method} ${target} HTTP/1.1\r\nHost: agent\r\n\r\n`);
        await until(`${method} ${target}: closed`, () => c.closedAt !== null, 3000);
        t.true((c.closedAt ?? Infinity) - c.opened < 2000, `${method} ${target}: closed promptly`);
        t.regex(c.data, /^HTTP\/1\.1 400 /, `${method} ${target}`);
        // Node's parser answers some itself (no body); the rest reach the agent's check.
        if (!c.data.endsWith("\r\n\r\n"))
          t.regex(c.data, /"error":"request target /, `${method} ${target}`);
        else t.log(`${method} ${target}: refused by Node's HTTP parser`);
      }
    }
    // The admin socket runs the same handler.
    const adm = await open(a.socket.replace(/ctl\.sock$/, "agentctl-admin.sock"));
    adm.sock.write("POST //%zz HTTP/1.1\r\nHost: agent\r\n\r\n");
    await until("admin: closed", () => adm.closedAt !== null, 3000);
    t.regex(adm.data, /^HTTP\/1\.1 400 /);
    t.is(agentctl(["--socket", a.socket, "status", "--json"]).code, 0, "still serving");
    t.false(
      a.logs.some((l) => /unhandled rejection/.test(String(l["msg"]))),
      JSON.stringify(a.logs.filter((l) => (l["level"] as number) >= 50)),
    );
  },
);
