// Fault injection on procfs: [host] proc_path points at a prepared tree, and while the real agent
// reads it, processes vanish (and come back as reused pids), a disk disappears and returns with
// reset counters, /proc/diskstats and mountinfo are removed and restored. What must survive: the
// agent keeps serving and collecting; vanishing processes are not failures; a missing diskstats is
// one counted failure streak that ends when it returns; no rate is ever negative.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import Database from "better-sqlite3";
import { agentctl, fetchText, startAgent, tempDir } from "./helpers/agent-process.js";
import { diskstatsLine, sample, scrape, until } from "./helpers/faults.js";
import { sleep } from "./helpers/quiet.js";

interface Col {
  name: string;
  runs: number;
  failures: number;
  consecutive_failures: number;
}
const collectors = (socket: string) =>
  (JSON.parse(agentctl(["--socket", socket, "status", "--json"]).stdout) as { collectors: Col[] })
    .collectors;
const col = (socket: string, name: string) => collectors(socket).find((c) => c.name === name);

function writePid(proc: string, pid: number, bytes: number): void {
  const d = join(proc, String(pid));
  mkdirSync(d, { recursive: true });
  writeFileSync(
    join(d, "stat"),
    `${pid} (worker${pid}) S 1 ${pid} ${pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0\n`,
  );
  writeFileSync(join(d, "comm"), `worker${pid}\n`);
  writeFileSync(join(d, "cgroup"), "0::/system.slice/worker.service\n");
  writeFileSync(
    join(d, "io"),
    `rchar: ${bytes}\nwchar: ${bytes}\nsyscr: 1\nsyscw: 1\nread_bytes: ${bytes}\nwrite_bytes: ` +
      `${bytes}\ncancelled_write_bytes: 0\n`,
  );
}

test(
  "proc entries vanishing and coming back while the agent reads them: it keeps collecting, " +
    "failures are bounded, no rate goes negative",
  async (t) => {
    const { dir } = tempDir();
    const proc = join(dir, "proc");
    const sys = join(dir, "sys");
    mkdirSync(join(proc, "self"), { recursive: true });
    mkdirSync(join(sys, "block"), { recursive: true });
    const mountinfo = () =>
      writeFileSync(
        join(proc, "self", "mountinfo"),
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n",
      );
    mountinfo();
    let n = 1;
    let sdb = 1;
    let sdbPresent = true;
    const diskstats = () =>
      writeFileSync(
        join(proc, "diskstats"),
        `${diskstatsLine("sda", n)}\n${sdbPresent ? `${diskstatsLine("sdb", sdb, 16)}\n` : ""}`,
      );
    diskstats();
    const PIDS = Array.from({ length: 200 }, (_, i) => 1000 + i);
    const io = new Map<number, number>(PIDS.map((p) => [p, 4096]));
    for (const p of PIDS) writePid(proc, p, 4096);

    const a = await startAgent({
      dir,
      extraToml:
        `[host]\nproc_path = "${proc}"\nsys_path = "${sys}"\n[history]\nflush_interval = "1s"\n` +
        `[collectors.diskstats]\ninterval = "500ms"\n[collectors.procio]\ninterval = "500ms"\n` +
        `timeout = "2s"\nunits = ["worker.service"]\n` +
        ["fsync_probe", "smart", "mounts", "kmsg", "wal"]
          .map((c) => `[collectors.${c}]\nenabled = false\n`)
          .join(""),
    });
    // Churn: every 20 ms a few processes exit (their directory goes, sometimes file by file, as
    // the kernel tears them down), others start under reused pids with lower counters, the rest
    // do I/O; the disks' counters move.
    let churning = true;
    const churn = (async () => {
      let i = 0;
      while (churning) {
        i++;
        n++;
        sdb++;
        diskstats();
        for (let k = 0; k < 10; k++) {
          const p = PIDS[Math.floor(Math.random() * PIDS.length)] ?? 1000;
          const r = Math.random();
          if (r < 0.3) rmSync(join(proc, String(p)), { recursive: true, force: true });
          else if (r < 0.4)
            rmSync(join(proc, String(p), "io"), { force: true }); // half torn down
          else if (r < 0.5) {
            io.set(p, 512); // a new process under a reused pid
            writePid(proc, p, 512);
          } else if (r < 0.55) {
            try {
              writeFileSync(join(proc, String(p), "io"), "rchar: 12\nwch"); // read mid-update
            } catch {
              // that process is gone already
            }
          } else {
            io.set(p, (io.get(p) ?? 0) + 65536);
            writePid(proc, p, io.get(p) ?? 0);
          }
        }
        if (i % 50 === 0) rmSync(join(proc, "self", "mountinfo"), { force: true });
        if (i % 50 === 25) mountinfo();
        await sleep(20);
      }
    })();
    t.teardown(async () => {
      churning = false;
      await churn;
      await a.stop("SIGKILL");
    });

    await until(
      "procio has run through the churn",
      () => (col(a.socket, "procio")?.runs ?? 0) >= 10,
      30_000,
    );
    const pio = col(a.socket, "procio");
    t.is(pio?.failures, 0, "vanishing, reused and half-read processes are not collector failures");

    // A disk disappears, then comes back with its counters reset (re-plugged): no negative rate.
    sdbPresent = false;
    await sleep(1500);
    sdb = 1;
    sdbPresent = true;
    await sleep(1500);

    // diskstats itself removed for a while: a failure streak, counted; the rest goes on.
    const ds0 = col(a.socket, "diskstats");
    t.is(ds0?.consecutive_failures, 0);
    churning = false;
    await churn;
    rmSync(join(proc, "diskstats"));
    await until(
      "the missing diskstats is a counted failure",
      async () => {
        const s = await scrape(a.url);
        return (
          sample(s.text, 'stemedb_agent_collector_up{collector="diskstats"}') === 0 &&
          (sample(
            s.text,
            'stemedb_agent_collector_errors_total{collector="diskstats",reason="error"}',
          ) ?? 0) > 0
        );
      },
      15_000,
    );
    t.is(
      (await fetchText(`${a.url}/healthz`)).status,
      200,
      "the agent is healthy while a collector fails",
    );
    const pRuns = col(a.socket, "procio")?.runs ?? 0;
    await until(
      "procio keeps running meanwhile",
      () => (col(a.socket, "procio")?.runs ?? 0) > pRuns + 2,
      15_000,
    );
    n += 100;
    diskstats();
    await until(
      "diskstats recovers when the file is back",
      async () =>
        sample((await scrape(a.url)).text, 'stemedb_agent_collector_up{collector="diskstats"}') ===
        1,
      15_000,
    );
    await until(
      "its failure streak has ended",
      () => col(a.socket, "diskstats")?.consecutive_failures === 0,
      15_000,
    );

    // No rate is negative: on /metrics and in every rate sample written to history.
    const text = (await scrape(a.url)).text;
    for (const line of text.split("\n")) {
      if (
        /^stemedb_agent_(disk_utilization_ratio|disk_queue_depth|unit_(read|written)_bytes_total)\{/.test(
          line,
        )
      )
        t.true(Number(line.split(" ").at(-1)) >= 0, line);
    }
    await sleep(1500); // one more flush
    const db = new Database(join(a.stateDir, "history.db"), { readonly: true });
    const negative = db
      .prepare(
        "SELECT s.metric, s.labels, min(x.value) AS v FROM samples x JOIN series s ON s.id = " +
          "x.series_id WHERE x.value < 0 GROUP BY s.id",
      )
      .all();
    const rated = db
      .prepare(
        "SELECT count(*) FROM samples x JOIN series s ON s.id = x.series_id WHERE s.metric LIKE " +
          "'%per_second' AND s.labels LIKE '%sdb%'",
      )
      .pluck()
      .get() as number;
    const topNeg = db
      .prepare("SELECT count(*) FROM io_top WHERE read_bps < 0 OR write_bps < 0")
      .pluck()
      .get() as number;
    const topRows = db.prepare("SELECT count(*) FROM io_top").pluck().get() as number;
    db.close();
    t.deepEqual(negative, [], "no negative sample in history");
    t.true(rated > 0, "sdb's rates were recorded");
    t.is(topNeg, 0, "no negative top-I/O rate");
    t.true(topRows > 0, "top I/O rows were recorded through the churn");
    t.is(a.proc.exitCode, null);
  },
);
