// Fault injection on the history file of the running agent: deleted, truncated, overwritten and
// on a full filesystem while it runs. What must survive: /metrics keeps answering with counters
// rising, /healthz stays ok, and history recovers (a fresh, sound file that receives new rows,
// the damaged one moved aside, never deleted; rows buffered while the disk was full arrive).
import { randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import {
  openSync,
  readdirSync,
  rmSync,
  truncateSync,
  unlinkSync,
  writeSync,
  closeSync,
} from "node:fs";
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";
import Database from "better-sqlite3";
import { agentctl, fetchText, isRoot, startAgent, tempDir } from "./helpers/agent-process.js";
import { diskstatsOnly, procTree, sample, scrape, until } from "./helpers/faults.js";
import { makeTmpfs } from "./helpers/loop.js";

const RUNS = 'stemedb_agent_collector_duration_seconds_count{collector="diskstats"}';

function readDb<T>(file: string, fn: (db: Database.Database) => T): T {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

const recoveries = (text: string) =>
  (sample(text, 'stemedb_agent_history_recoveries_total{reason="corrupt"}') ?? 0) +
  (sample(text, 'stemedb_agent_history_recoveries_total{reason="replaced"}') ?? 0);

/**
 * The agent on a captured diskstats tree whose counters move every 300 ms, flushing history
 * every second (state under `dir`/state); killed at teardown.
 */
async function busyAgent(t: ExecutionContext, dir: string) {
  const proc = procTree(dir);
  const a = await startAgent({
    dir,
    extraToml: diskstatsOnly(proc.root, join(dir, "sys"), `[history]\nflush_interval = "1s"\n`),
  });
  let n = 1;
  const mover = setInterval(() => proc.tick(++n), 300);
  t.teardown(async () => {
    clearInterval(mover);
    await a.stop("SIGKILL");
  });
  return a;
}

const FAULTS: ReadonlyArray<readonly [string, (file: string) => void, RegExp]> = [
  ["deleted", (f) => unlinkSync(f), /removed while running/],
  ["truncated to 0 bytes", (f) => truncateSync(f, 0), /damaged while running/],
  ["truncated to its first page", (f) => truncateSync(f, 4096), /damaged while running/],
  [
    "overwritten with 64 KiB of garbage from its start",
    (f) => {
      const fd = openSync(f, "r+");
      writeSync(fd, randomBytes(65536), 0, 65536, 0);
      closeSync(fd);
    },
    /damaged while running/,
  ],
];

test(
  "the history file deleted, truncated and overwritten while the agent runs: metrics keep flowing, " +
    "history recovers each time",
  async (t) => {
    const { dir, cleanup } = tempDir();
    t.teardown(cleanup); // teardowns run last-registered first: stop the agent, then remove
    const a = await busyAgent(t, dir);
    const file = join(a.stateDir, "history.db");
    await until("samples reach the history file", () =>
      readDb(
        file,
        (db) => (db.prepare("SELECT count(*) FROM samples").pluck().get() as number) > 0,
      ),
    );

    for (const [fault, damage, reason] of FAULTS) {
      // Put the rows in the main file (not only its -wal), as a long-running agent's file has them.
      readDb(file, () => undefined);
      const ck = new Database(file, { fileMustExist: true });
      ck.pragma("wal_checkpoint(TRUNCATE)");
      ck.close();
      const before = await scrape(a.url);
      const runsBefore = sample(before.text, RUNS) ?? 0;
      const recBefore = recoveries(before.text);
      const damagedAt = Date.now();
      damage(file);

      // Metrics keep flowing while the store notices and recovers.
      await until(
        `${fault}: a recovery counted on /metrics`,
        async () => recoveries((await scrape(a.url)).text) > recBefore,
        30_000,
      );
      const after = await until(`${fault}: collector runs keep rising`, async () => {
        const s = await scrape(a.url);
        return s.status === 200 && (sample(s.text, RUNS) ?? 0) > runsBefore + 2 ? s : undefined;
      });
      t.is(
        sample(after.text, "stemedb_agent_history_writable"),
        1,
        `${fault}: history writable again`,
      );
      const hz = await fetchText(`${a.url}/healthz`);
      t.is(hz.status, 200, `${fault}: ${hz.text}`);

      // History recovers: a sound new file that says what happened and receives new samples.
      const fresh = await until(`${fault}: new samples in a fresh file`, () =>
        readDb(file, (db) => {
          const ok = db.pragma("quick_check", { simple: true }) === "ok";
          const ev = db
            .prepare("SELECT message FROM events WHERE kind = 'history.recovered'")
            .pluck()
            .all() as string[];
          const newer = db
            .prepare("SELECT count(*) FROM samples WHERE ts > ?")
            .pluck()
            .get(damagedAt) as number;
          return ok && ev.length > 0 && newer > 0 ? { ev } : undefined;
        }),
      );
      t.regex(fresh.ev.join("\n"), reason, fault);
      const st = JSON.parse(agentctl(["--socket", a.socket, "status", "--json"]).stdout) as {
        history: { write_state: string; mode: string };
      };
      t.like(st.history, { write_state: "ok", mode: "file" }, fault);
    }
    // Damaged files are moved aside, never deleted (the deleted one had nothing left to move).
    const aside = readdirSync(a.stateDir).filter((f) =>
      /^history\.db\.(corrupt|replaced)-[^.]+$/.test(f),
    );
    t.true(
      aside.filter((f) => f.includes(".corrupt-")).length >= 3,
      `moved aside: ${aside.join(", ")}`,
    );
    t.false(
      a.logs.some((l) => l["level"] === 60),
      "nothing fatal logged",
    );
  },
);

test(
  "a full filesystem under the history file while running: metrics flow, " +
    "rows wait in memory and arrive when space returns",
  async (t) => {
    if (!isRoot) return t.pass("skipped: needs root to mount a small tmpfs for the state dir");
    const { dir, cleanup } = tempDir();
    t.teardown(cleanup); // teardowns run last-registered first: stop the agent, unmount, then remove
    const state = makeTmpfs(dir, "state", "6m", t.teardown.bind(t), "0700");
    const a = await busyAgent(t, dir);
    const file = join(state, "history.db");
    await until("samples reach the history file", () =>
      readDb(
        file,
        (db) => (db.prepare("SELECT count(*) FROM samples").pluck().get() as number) > 0,
      ),
    );

    spawnSync("dd", ["if=/dev/zero", `of=${join(state, "filler")}`, "bs=64k"], { stdio: "ignore" });
    const fullFrom = Date.now();
    const full = await until("history writes stop as full", async () => {
      const s = await scrape(a.url);
      return sample(s.text, "stemedb_agent_history_writable") === 0 &&
        (sample(s.text, 'stemedb_agent_history_write_errors_total{reason="full"}') ?? 0) > 0
        ? s
        : undefined;
    });
    const runsFull = sample(full.text, RUNS) ?? 0;
    await until(
      "collectors keep running while the disk is full",
      async () => (sample((await scrape(a.url)).text, RUNS) ?? 0) > runsFull + 3,
    );
    t.is((await fetchText(`${a.url}/healthz`)).status, 200);
    const st = JSON.parse(agentctl(["--socket", a.socket, "status", "--json"]).stdout) as {
      history: { write_state: string; pending_rows: number };
    };
    t.is(st.history.write_state, "full");
    t.true(st.history.pending_rows > 0, "rows wait in memory");
    const fullUntil = Date.now();

    rmSync(join(state, "filler"));
    await until(
      "writes resume",
      async () => sample((await scrape(a.url)).text, "stemedb_agent_history_writable") === 1,
    );
    // The rows sampled while the disk was full are in the file now.
    const during = await until("rows from the full period reach the file", () =>
      readDb(file, (db) => {
        const c = db
          .prepare("SELECT count(*) FROM samples WHERE ts BETWEEN ? AND ?")
          .pluck()
          .get(fullFrom + 1500, fullUntil) as number;
        return c > 0 ? c : undefined;
      }),
    );
    t.true(during > 0);
    const after = JSON.parse(agentctl(["--socket", a.socket, "status", "--json"]).stdout) as {
      history: { write_state: string; dropped_rows: number };
    };
    t.is(after.history.write_state, "ok");
    t.is(after.history.dropped_rows, 0, "nothing dropped within the pending bound");
  },
);
