// Fault injection on the wall clock: the real agent runs under libfaketime (the host clock is
// never touched), whose faked CLOCK_REALTIME the test jumps an hour back and then two hours
// forward while the monotonic clock stays real. What must survive: schedules keep running (the
// scheduler uses the monotonic clock), no rate is negative on /metrics or in history, history
// keeps being written, and /healthz is ok again right after each jump.
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import Database from "better-sqlite3";
import { agentctl, fetchText, startAgent, tempDir } from "./helpers/agent-process.js";
import { diskstatsOnly, procTree, sample, scrape, until } from "./helpers/faults.js";
import { HistoryStore } from "../core/history/store.js";
import { CoreMetrics } from "../core/metrics/registry.js";
import { defaultRetention, quietLog } from "./helpers/quiet.js";
import { withHistoryFile } from "./helpers/history-file.js";

const LIB = [
  "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
  "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
].find((p) => existsSync(p));
const RUNS = 'stemedb_agent_collector_duration_seconds_count{collector="diskstats"}';

test(
  "wall clock jumping back an hour and forward two under libfaketime: no stuck schedule, " +
    "no negative rate, history goes on",
  async (t) => {
    if (!LIB)
      return t.pass(
        "skipped: libfaketime not installed (Debian package faketime; npm test installs it as root)",
      );
    const { dir } = tempDir();
    const proc = procTree(dir);
    const offset = join(dir, "faketime");
    writeFileSync(offset, "+0\n");
    const a = await startAgent({
      dir,
      extraToml: diskstatsOnly(proc.root, join(dir, "sys"), `[history]\nflush_interval = "1s"\n`),
      // Only the wall clock is faked; FAKETIME_NO_CACHE re-reads the offset file at every call.
      env: {
        LD_PRELOAD: LIB,
        FAKETIME_TIMESTAMP_FILE: offset,
        FAKETIME_NO_CACHE: "1",
        FAKETIME_DONT_FAKE_MONOTONIC: "1",
      },
    });
    let n = 1;
    const mover = setInterval(() => proc.tick((n += 3)), 200);
    t.teardown(async () => {
      clearInterval(mover);
      await a.stop("SIGKILL");
    });
    const agentNow = () =>
      Date.parse(
        (
          JSON.parse(agentctl(["--socket", a.socket, "status", "--json"]).stdout) as {
            agent: { started_at: string; uptime_seconds: number };
          }
        ).agent.started_at,
      );
    const started = agentNow();
    const file = join(a.stateDir, "history.db");
    const maxTs = () => {
      const db = new Database(file, { readonly: true });
      try {
        return (db.prepare("SELECT max(ts) FROM samples").pluck().get() as number | null) ?? 0;
      } finally {
        db.close();
      }
    };
    await until("samples in history", () => maxTs() > 0);

    for (const [what, shift, seconds] of [
      ["an hour back", "-3600", -3600],
      ["two hours forward (an hour past real time)", "+3600", 3600],
    ] as const) {
      const runsBefore = sample((await scrape(a.url)).text, RUNS) ?? 0;
      writeFileSync(offset, `${shift}\n`);
      const jumpedAt = Date.now() + seconds * 1000; // the agent's wall clock from now on
      // The jump is seen by the agent (its status reports times on the faked clock).
      await until(
        `${what}: the agent's clock moved`,
        () => {
          const s = JSON.parse(agentctl(["--socket", a.socket, "status", "--json"]).stdout) as {
            collectors: Array<{ last_success: string | null }>;
          };
          const last = Date.parse(s.collectors[0]?.last_success ?? "");
          return Math.abs(last - jumpedAt) < 60_000;
        },
        20_000,
      );
      // Schedules keep running: collector runs go on rising.
      await until(
        `${what}: collector runs keep rising`,
        async () => (sample((await scrape(a.url)).text, RUNS) ?? 0) > runsBefore + 5,
        20_000,
      );
      await until(
        `${what}: /healthz ok`,
        async () => (await fetchText(`${a.url}/healthz`)).status === 200,
        10_000,
      );
      // History keeps being written, at the new wall-clock times.
      await until(
        `${what}: samples written at the jumped time`,
        () => maxTs() >= jumpedAt - 5_000,
        20_000,
      );
    }
    t.true(started > 0);

    // No negative rate anywhere.
    const text = (await scrape(a.url)).text;
    for (const line of text.split("\n")) {
      if (/^stemedb_agent_(disk_utilization_ratio|disk_queue_depth)\{/.test(line))
        t.true(Number(line.split(" ").at(-1)) >= 0, line);
      if (/^stemedb_agent_disk_await_seconds_sum\{/.test(line))
        t.true(Number(line.split(" ").at(-1)) >= 0, line);
    }
    const db = new Database(file, { readonly: true });
    const negative = db
      .prepare(
        "SELECT s.metric, min(x.value) AS v FROM samples x JOIN series s ON s.id = x.series_id " +
          "WHERE x.value < 0 GROUP BY s.id",
      )
      .all();
    const rates = db
      .prepare(
        "SELECT count(*) FROM samples x JOIN series s ON s.id = x.series_id WHERE s.metric = " +
          "'disk_writes_per_second' AND x.value > 0",
      )
      .pluck()
      .get() as number;
    db.close();
    t.deepEqual(negative, [], "no negative sample in history");
    t.true(rates > 0, "rates were recorded through the jumps");
    t.false(
      a.logs.some((l) => (l["level"] as number) >= 50),
      JSON.stringify(a.logs.filter((l) => (l["level"] as number) >= 50)),
    );
  },
);

test("minute summaries go on after the wall clock steps back an hour (HistoryStore through its clock seam)", (t) => {
  const { dir } = tempDir();
  let now = Date.UTC(2026, 0, 1, 12, 0, 0);
  const h = new HistoryStore({
    stateDir: dir,
    retention: defaultRetention(),
    log: quietLog,
    metrics: new CoreMetrics(),
    now: () => now,
  });
  t.teardown(() => h.close());
  for (let i = 0; i < 30; i++, now += 1000) h.record("x", {}, 1);
  h.flush();
  now -= 3_600_000; // NTP steps the clock back an hour
  const back = now;
  for (let i = 0; i < 150; i++, now += 1000) {
    h.record("x", {}, 2);
    if (i % 10 === 0) h.flush();
  }
  h.flush();
  const minutes = withHistoryFile(
    h,
    (db) =>
      db
        .prepare("SELECT ts, count FROM rollups WHERE resolution = 60 AND ts >= ? AND ts < ?")
        .all(back - 60_000, back + 3_000_000) as Array<{ ts: number; count: number }>,
  );
  t.true(
    minutes.length >= 1,
    "the minutes after the step are summarised, not held until the clock catches up",
  );
  t.true(minutes.every((m) => m.count > 0));
});
