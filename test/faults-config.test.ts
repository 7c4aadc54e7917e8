// Fault injection on configuration reload: SIGHUP with garbage in every form a botched deploy
// leaves behind. What must survive: the old configuration keeps running (same port, same
// collectors on the same cadence, still collecting), each refusal is logged and recorded, and a
// good file afterwards is still applied.
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import { agentctl, fetchText, startAgent, tempDir } from "./helpers/agent-process.js";
import { diskstatsOnly, procTree, until } from "./helpers/faults.js";

interface Status {
  agent: { listen: string; config_file: string };
  health: { verdict: string };
  collectors: Array<{
    name: string;
    interval_seconds: number;
    runs: number;
    consecutive_failures: number;
  }>;
}

const status = (socket: string) =>
  JSON.parse(agentctl(["--socket", socket, "status", "--json"]).stdout) as Status;

test("SIGHUP with garbage keeps the old configuration running; a good file is still applied afterwards", async (t) => {
  const { dir } = tempDir();
  const proc = procTree(dir);
  const a = await startAgent({ dir, extraToml: diskstatsOnly(proc.root, join(dir, "sys")) });
  t.teardown(() => a.stop("SIGKILL"));
  const good = readFileSync(a.configFile, "utf8");
  const before = status(a.socket);
  t.deepEqual(
    before.collectors.map((c) => [c.name, c.interval_seconds]),
    [["diskstats", 1]],
  );

  const GARBAGE: ReadonlyArray<readonly [string, () => void]> = [
    ["random bytes", () => writeFileSync(a.configFile, randomBytes(4096))],
    ["2 MiB of random bytes", () => writeFileSync(a.configFile, randomBytes(2 << 20))],
    ["NUL bytes", () => writeFileSync(a.configFile, Buffer.alloc(1024))],
    [
      "a half-written file (cut inside a string)",
      () => writeFileSync(a.configFile, good.slice(0, good.indexOf('"') + 5)),
    ],
    [
      "valid TOML with wrong types, bad values and unknown keys",
      () =>
        writeFileSync(
          a.configFile,
          `[agent]\nlisten = 42\n[collectors.diskstats]\ninterval = "-1s"\ninclude = "(["\n[nosuch]\nx = 1\n`,
        ),
    ],
    ["the file removed", () => unlinkSync(a.configFile)],
    ["a directory where the file was", () => (rmSync(a.configFile), mkdirSync(a.configFile))],
  ];
  let refusals = 0;
  for (const [what, damage] of GARBAGE) {
    damage();
    a.proc.kill("SIGHUP");
    const n = ++refusals;
    await until(
      `${what}: reload refused`,
      () =>
        a.logs.filter((l) => l["msg"] === "reload refused: keeping the running configuration")
          .length >= n || undefined,
      20_000,
    );
    // The refusal may log one line per problem: wait for the reload to be fully handled.
    await until(
      `${what}: refusal recorded`,
      () => a.logs.filter((l) => l["msg"] === "SIGHUP: reloading configuration").length === n,
    );
    const s = status(a.socket);
    t.is(s.agent.listen, before.agent.listen, `${what}: same metrics address`);
    t.deepEqual(
      s.collectors.map((c) => [c.name, c.interval_seconds]),
      [["diskstats", 1]],
      `${what}: same collectors, same cadence`,
    );
    const runs = s.collectors[0]?.runs ?? 0;
    await until(
      `${what}: still collecting`,
      () => (status(a.socket).collectors[0]?.runs ?? 0) > runs + 1,
      15_000,
    );
    t.is((await fetchText(`${a.url}/healthz`)).status, 200, what);
    t.is(status(a.socket).health.verdict, "healthy", what);
    // Put the path back to a file for the next kind of garbage.
    rmSync(a.configFile, { recursive: true, force: true });
    writeFileSync(a.configFile, good);
  }
  t.false(
    a.logs.some((l) => l["msg"] === "configuration reloaded"),
    "no garbage was ever applied",
  );
  // Every refusal is in history, for agentctl events.
  const ev = await until(
    "refusals in history",
    () => {
      const r = JSON.parse(
        agentctl(["--socket", a.socket, "events", "--class", "agent", "--json"]).stdout,
      ) as { events: Array<{ kind: string }> };
      const k = r.events.filter((e) => e.kind === "config.reload_failed").length;
      return k >= GARBAGE.length ? k : undefined;
    },
    30_000,
    500,
  );
  t.is(ev, GARBAGE.length);

  // A good file with a change is applied: reload still works after all that.
  writeFileSync(
    a.configFile,
    good.replace(
      '[collectors.diskstats]\ninterval = "1s"',
      '[collectors.diskstats]\ninterval = "2s"',
    ),
  );
  a.proc.kill("SIGHUP");
  await a.waitForLog((l) => l["msg"] === "configuration reloaded", 20_000);
  t.deepEqual(
    status(a.socket).collectors.map((c) => [c.name, c.interval_seconds]),
    [["diskstats", 2]],
  );
});

test(
  "a storm of SIGHUPs alternating two good files and garbage: the agent ends on the last good file with " +
    "each collector once",
  async (t) => {
    const { dir } = tempDir();
    const proc = procTree(dir);
    const a = await startAgent({ dir, extraToml: diskstatsOnly(proc.root, join(dir, "sys")) });
    t.teardown(() => a.stop("SIGKILL"));
    const good = readFileSync(a.configFile, "utf8");
    // Interval and device filter both change: a schedule update and a rebuild in each reload.
    const variant = (secs: number) =>
      good.replace(
        '[collectors.diskstats]\ninterval = "1s"',
        `[collectors.diskstats]\ninterval = "${secs}s"\ninclude = "^(sd|vd)[a-z]{${secs}}$"`,
      );
    // Each file replaced atomically (write, rename), as deploy tools do: the storm is about reloads
    // overlapping one another, not about reading a file half-written.
    const put = (data: string | Buffer) => {
      writeFileSync(`${a.configFile}.tmp`, data);
      renameSync(`${a.configFile}.tmp`, a.configFile);
    };
    for (let i = 0; i < 30; i++) {
      put(i % 3 === 2 ? randomBytes(512) : variant(1 + (i % 3)));
      a.proc.kill("SIGHUP");
      await new Promise((r) => setTimeout(r, i % 5 === 0 ? 0 : 15));
    }
    put(variant(3));
    a.proc.kill("SIGHUP");
    await until(
      "the last good file is in force",
      () => {
        const s = status(a.socket);
        return s.collectors.length === 1 && s.collectors[0]?.interval_seconds === 3;
      },
      30_000,
      300,
    ).catch((e: unknown) => {
      t.log(
        JSON.stringify(status(a.socket).collectors),
        a.logs
          .filter((l) => (l["level"] as number) >= 40)
          .map((l) => `${String(l["msg"])} ${JSON.stringify(l["err"] ?? "")}`)
          .join("\n"),
      );
      throw e;
    });
    const s = status(a.socket);
    t.deepEqual(
      s.collectors.map((c) => [c.name, c.interval_seconds]),
      [["diskstats", 3]],
    );
    t.false(
      a.logs.some((l) => l["msg"] === "reload failed"),
      JSON.stringify(a.logs.filter((l) => l["msg"] === "reload failed")),
    );
    const runs = s.collectors[0]?.runs ?? 0;
    await until(
      "still collecting",
      () => (status(a.socket).collectors[0]?.runs ?? 0) > runs,
      15_000,
    );
    t.is(a.proc.exitCode, null, "still running");
    t.is(s.agent.listen, `127.0.0.1:${a.port}`, "the metrics port did not move");
    t.is((await fetchText(`${a.url}/healthz`)).status, 200);
  },
);
