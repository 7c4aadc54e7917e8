import { spawnSync } from "node:child_process";
import { existsSync, statSync, writeFileSync } from "node:fs";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import test from "ava";
import Database from "better-sqlite3";
import {
  agentctl,
  fetchText,
  hasCommand,
  QUIET_COLLECTORS,
  startAgent,
  tempDir,
  writeConfig,
} from "./helpers/agent-process.js";

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function rawGet(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

test("/metrics and /healthz over a real TCP socket; nothing else is served", async (t) => {
  const a = await startAgent({ extraToml: QUIET_COLLECTORS });
  t.teardown(() => a.stop("SIGKILL"));
  const health = await fetchText(`${a.url}/healthz`);
  t.is(health.status, 200);
  t.regex(health.text, /^ok: core loop ticking/);

  const m = await fetchText(`${a.url}/metrics`);
  t.is(m.status, 200);
  t.regex(m.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  t.regex(
    m.text,
    /^stemedb_agent_build_info\{version="\d+\.\d+\.\d+",node_version="v\d+\.\d+\.\d+"\} 1$/m,
  );
  t.regex(m.text, /^stemedb_agent_history_writable 1$/m);
  t.regex(m.text, /^process_resident_memory_bytes \d+/m);

  const gz = await rawGet(a.port, "/metrics", { "accept-encoding": "gzip" });
  t.is(gz.headers["content-encoding"], "gzip");
  t.regex(gunzipSync(gz.body).toString("utf8"), /stemedb_agent_build_info/);

  t.is((await fetchText(`${a.url}/`)).status, 404);
  t.is((await fetchText(`${a.url}/v1/status`)).status, 404, "the control API is never on TCP");
  t.is((await fetchText(`${a.url}/metrics`, { method: "POST", body: "x" })).status, 405);
});

test("promtool check metrics is clean on a real scrape", async (t) => {
  if (!hasCommand("promtool"))
    return t.pass(
      "skipped: promtool not installed (Debian package prometheus; npm test installs it as root)",
    );
  const a = await startAgent({ extraToml: QUIET_COLLECTORS });
  t.teardown(() => a.stop("SIGKILL"));
  const { text } = await fetchText(`${a.url}/metrics`);
  const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  t.is(r.status, 0, `${r.stdout}${r.stderr}`);
  t.is(`${r.stdout}${r.stderr}`.trim(), "");
});

test("agentctl status, text and --json, against a running agent", async (t) => {
  const a = await startAgent({ extraToml: QUIET_COLLECTORS });
  t.teardown(() => a.stop("SIGKILL"));
  const text = agentctl(["--socket", a.socket, "status"]);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /^storage OK\s+stemedb-agent \d+\.\d+\.\d+, pid \d+, up \d+s, config /m);
  t.true(text.stdout.includes(`config ${a.configFile}`));
  t.regex(text.stdout, /^OK\s+agent\s+all collectors running, history written$/m);
  const verbose = agentctl(["--socket", a.socket, "status", "-v"]);
  t.true(verbose.stdout.includes(`history  ${join(a.stateDir, "history.db")}`));
  t.false(text.stdout.includes("\u001b["), "no colour when piped");

  const js = agentctl(["--socket", a.socket, "status", "--json"]);
  t.is(js.code, 0);
  const s = JSON.parse(js.stdout) as {
    schema: number;
    agent: Record<string, unknown>;
    health: { verdict: string };
    collectors: unknown[];
    history: { mode: string; rows: Record<string, number> };
  };
  t.is(s.schema, 1);
  t.is(s.agent["config_file"], a.configFile);
  t.is(s.agent["pid"], a.proc.pid);
  t.is(s.health.verdict, "healthy");
  t.is(s.history.mode, "file");
  t.deepEqual(Object.keys(s.history.rows).sort(), ["events", "rollups", "samples", "series"]);

  // Found through --config too, without --socket.
  const viaConfig = agentctl(["--config", a.configFile, "status", "--json"]);
  t.is(viaConfig.code, 0, viaConfig.stderr);
});

test("the control socket is mode 0660 and a second agent on it refuses to start", async (t) => {
  const a = await startAgent({ extraToml: QUIET_COLLECTORS });
  t.teardown(() => a.stop("SIGKILL"));
  t.is(statSync(a.socket).mode & 0o777, 0o660);
  const { dir } = tempDir();
  const cfg = writeConfig(dir, { extraToml: QUIET_COLLECTORS });
  writeFileSync(
    cfg,
    `[agent]\nlisten = "127.0.0.1:0"\nstate_dir = "${join(dir, "state")}"\n` +
      `control_socket = "${a.socket}"\n${QUIET_COLLECTORS}`,
  );
  const r = spawnSync(
    process.execPath,
    [join(import.meta.dirname, "../agent/main.js"), "--config", cfg],
    { encoding: "utf8", timeout: 20_000 },
  );
  t.is(r.status, 1);
  t.regex(r.stdout, /another agent is already answering on/);
});

test("a stale socket file left by a crash is replaced", async (t) => {
  const a = await startAgent({ extraToml: QUIET_COLLECTORS });
  await a.stop("SIGKILL");
  t.true(existsSync(a.socket), "SIGKILL leaves the socket file behind");
  const b = await startAgent({ dir: a.dir, extraToml: QUIET_COLLECTORS });
  t.teardown(() => b.stop("SIGKILL"));
  t.is(agentctl(["--socket", b.socket, "status"]).code, 0);
});

test("agentctl exits 3 naming the socket when no agent runs", (t) => {
  const { dir } = tempDir();
  const sock = join(dir, "none.sock");
  const r = agentctl(["--socket", sock, "status"]);
  t.is(r.code, 3);
  t.true(r.stderr.includes(`${sock}: no such socket`), r.stderr);
  t.regex(r.stderr, /systemctl status stemedb-agent/);
  t.is(agentctl(["--socket", sock, "bogus"]).code, 64);
});

test(
  "agentctl gives up on an agent that accepts but never answers: exit 3 after its 5 s timeout, " +
    "saying so",
  async (t) => {
    const { dir } = tempDir();
    const sock = join(dir, "wedged.sock");
    const server = createServer(() => {}); // a wedged agent: the connection is accepted, nothing comes back
    await new Promise<void>((r) => server.listen(sock, r));
    t.teardown(() => server.close());
    const started = Date.now();
    const r = agentctl(["--socket", sock, "status"]); // the kernel accepts into the backlog while this process waits
    const took = Date.now() - started;
    t.is(r.code, 3, r.stderr);
    t.true(r.stderr.includes(`${sock}: no answer within 5000 ms`), r.stderr);
    t.true(took >= 4500 && took < 15_000, `gave up after ${took} ms`);
  },
);

test("SIGTERM stops the agent cleanly within 5 s: exit 0, socket removed, history flushed", async (t) => {
  const a = await startAgent({ extraToml: QUIET_COLLECTORS });
  const res = await a.stop("SIGTERM");
  t.is(res.code, 0, a.stderr.join(""));
  t.true(res.ms < 5000, `took ${res.ms.toFixed(0)} ms`);
  t.false(existsSync(a.socket));
  const db = new Database(join(a.stateDir, "history.db"), { readonly: true });
  const kinds = db.prepare("SELECT kind FROM events ORDER BY id").pluck().all();
  db.close();
  t.is(kinds[0], "agent.started");
  t.is(kinds.at(-1), "agent.stopped", "the last event before exit is flushed");
  t.true(a.logs.some((l) => l["msg"] === "stemedb-agent stopped"));
});

test("SIGINT stops it too", async (t) => {
  const a = await startAgent({ extraToml: QUIET_COLLECTORS });
  const res = await a.stop("SIGINT");
  t.is(res.code, 0);
});

test("SIGHUP with a broken file keeps the running config; a good file is applied", async (t) => {
  const a = await startAgent({ extraToml: QUIET_COLLECTORS });
  t.teardown(() => a.stop("SIGKILL"));
  const good = await import("node:fs").then((fs) => fs.readFileSync(a.configFile, "utf8"));
  writeFileSync(a.configFile, `${good}\n[history]\nflush_interval = "forever"\n`);
  a.proc.kill("SIGHUP");
  const refused = await a.waitForLog(
    (l) => l["msg"] === "reload refused: keeping the running configuration",
  );
  t.regex(String(refused["problem"]), /history\.flush_interval: invalid duration "forever"/);
  t.is((await fetchText(`${a.url}/healthz`)).status, 200, "still serving");

  // A good file: the metrics port moves, the old one closes.
  const port = await freePort();
  writeFileSync(
    a.configFile,
    good
      .replace('listen = "127.0.0.1:0"', `listen = "127.0.0.1:${port}"`)
      .replace('log_level = "debug"', 'log_level = "info"'),
  );
  a.proc.kill("SIGHUP");
  await a.waitForLog((l) => l["msg"] === "configuration reloaded");
  t.is((await fetchText(`http://127.0.0.1:${port}/healthz`)).status, 200);
  await t.throwsAsync(fetchText(`${a.url}/healthz`));
});

test(
  "the event-loop delay gauge shows a stalled loop (measured by the agent's own timers) and an idle one " +
    "as near zero",
  async (t) => {
    const a = await startAgent({
      extraToml: QUIET_COLLECTORS.replace("[collectors.kmsg]\nenabled = false\n", ""),
    });
    t.teardown(() => a.stop("SIGKILL"));
    const lag = async (stat: string) =>
      Number(
        new RegExp(`stemedb_agent_event_loop_delay_seconds\\{stat="${stat}"\\} (\\S+)`).exec(
          (await fetchText(`${a.url}/metrics`)).text,
        )?.[1] ?? NaN,
      );
    // Idle: a window closes every 10 ticks.
    const end = Date.now() + 20_000;
    while (Date.now() < end && !(Number.isFinite(await lag("p50")) && (await lag("max")) > 0))
      await new Promise((r) => setTimeout(r, 500));
    t.true((await lag("p50")) < 0.05, `idle p50 ${await lag("p50")} s`);
    // The whole process stopped for 2 s: every timer due meanwhile fires ~2 s late.
    process.kill(a.proc.pid ?? 0, "SIGSTOP");
    await new Promise((r) => setTimeout(r, 2000));
    process.kill(a.proc.pid ?? 0, "SIGCONT");
    const end2 = Date.now() + 25_000;
    let max = 0;
    while (Date.now() < end2 && max < 1.5) {
      await new Promise((r) => setTimeout(r, 500));
      max = await lag("max");
    }
    t.true(max >= 1.5 && max < 10, `max delay ${max} s after a 2 s stop`);
  },
);
