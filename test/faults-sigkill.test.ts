// Fault injection: SIGKILL at random moments while the real agent turns kernel-log records into
// history events (and keeps its resume point with them), restart on the same state dir each time.
// What must survive: every record written to /dev/kmsg, while the agent ran or while it was down,
// ends up in history exactly once: no duplicate, no lost row. (The remediation journal under
// SIGKILL is covered by wal-compress-crash.test.ts.)
import { closeSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import Database from "better-sqlite3";
import { isRoot, startAgent, tempDir } from "./helpers/agent-process.js";
import { until } from "./helpers/faults.js";
import { sleep } from "./helpers/quiet.js";
import { exclusive, holdSysctl } from "./helpers/sysctl.js";

// The kernel ring buffer is shared: this file and faults-sigkill (which reads records back after
// each restart) must not write to /dev/kmsg at the same time.
let release: Array<() => void> = [];
test.before(async () => {
  if (isRoot)
    release = [await exclusive("kmsg-ring"), holdSysctl("/proc/sys/kernel/printk_devkmsg", "on")];
});
test.after.always(() => release.reverse().forEach((r) => r()));

const KILLS = 15;

test(
  "SIGKILL at random moments while kernel-log events are written, restart each time: every record in " +
    "history exactly once",
  async (t) => {
    if (!isRoot) return t.pass("skipped: needs root to write /dev/kmsg");
    // A disk name of our own per record ("sdq" + 3 random letters + 2 letters for the index), so the
    // per-device history rate limit never merges them and other tests' records never match.
    const randomLetter = () => String.fromCharCode(97 + Math.floor(Math.random() * 26));
    const base = `sdq${Array.from({ length: 3 }, randomLetter).join("")}`;
    const devOf = (i: number) =>
      `${base}${String.fromCharCode(97 + Math.floor(i / 26))}${String.fromCharCode(97 + (i % 26))}`;
    let written = 0;
    const inject = (count: number) => {
      const fd = openSync("/dev/kmsg", "w");
      try {
        for (let k = 0; k < count; k++, written++)
          writeSync(
            fd,
            `<3>I/O error, dev ${devOf(written)}, sector ${written} op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 2\n`,
          );
      } finally {
        closeSync(fd);
      }
    };
    const { dir } = tempDir();
    const toml =
      `[history]\nflush_interval = "1s"\n[collectors.kmsg]\nfacilities = ["kern", "user"]\ninterval = "200ms"\n` +
      ["diskstats", "fsync_probe", "smart", "mounts", "wal", "procio", "process", "netstat"]
        .map((c) => `[collectors.${c}]\nenabled = false\n`)
        .join("");
    // The first start reads the whole ring buffer: later restarts resume from the saved point.
    const first = await startAgent({ dir, extraToml: toml });
    await sleep(1500);
    await first.stop("SIGKILL");

    for (let k = 0; k < KILLS; k++) {
      inject(5); // written while the agent is down
      const a = await startAgent({ dir, extraToml: toml });
      // Records arrive while it runs; the kill lands anywhere: before, during or after a flush.
      const deadline = performance.now() + Math.random() * 2500;
      while (performance.now() < deadline) {
        inject(1 + Math.floor(Math.random() * 3));
        await sleep(50 + Math.random() * 150);
      }
      await a.stop("SIGKILL");
    }
    inject(5);
    t.true(written < 26 * 26, "device names stay distinct");

    // A final run that is allowed to finish: everything owed must arrive, once.
    const a = await startAgent({ dir, extraToml: toml });
    const file = join(a.stateDir, "history.db");
    const rows = () => {
      const db = new Database(file, { readonly: true });
      try {
        return db
          .prepare("SELECT subject FROM events WHERE class = 'kernel' AND subject LIKE ?")
          .pluck()
          .all(`${base}%`) as string[];
      } finally {
        db.close();
      }
    };
    await until("every record is in history", () => rows().length >= written, 30_000, 500).catch(
      () => undefined,
    );
    const res = await a.stop("SIGTERM");
    t.is(res.code, 0);
    const got = rows();
    const counts = new Map<string, number>();
    for (const s of got) counts.set(s, (counts.get(s) ?? 0) + 1);
    const dupes = [...counts].filter(([, c]) => c > 1);
    const missing = Array.from({ length: written }, (_, i) => devOf(i)).filter(
      (d) => !counts.has(d),
    );
    t.log(`${written} records over ${KILLS} SIGKILLs; ${got.length} rows`);
    t.deepEqual(dupes, [], "no record is in history twice");
    t.deepEqual(missing, [], "no record is missing from history");
  },
);
