// The running agent, a loop device under fio: what an SRE would look at.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import Database from "better-sqlite3";
import { fetchText, hasCommand, isRoot, startAgent, tempDir } from "./helpers/agent-process.js";
import { makeLoopFs } from "./helpers/loop.js";
import { sleep } from "./helpers/quiet.js";

test("under fio on a loop device the await histograms, the fsync probe and the top-I/O history show it", async (t) => {
  if (!isRoot) return t.pass("skipped: needs root for a loop device");
  for (const cmd of ["fio", "losetup"])
    if (!hasCommand(cmd)) return t.pass(`skipped: ${cmd} not installed`);
  const { dir } = tempDir();
  const lfs = makeLoopFs(dir, { sizeMiB: 256 });
  t.teardown(() => lfs.cleanup());
  const wal = join(lfs.mnt, "wal");
  mkdirSync(wal);
  const a = await startAgent({
    extraToml:
      `[wal]\ndir = "${wal}"\n[history]\nflush_interval = "1s"\n[collectors.diskstats]\n` +
      `include = "^${lfs.device}$"\nexclude = ""\n[collectors.fsync_probe]\ninterval = "500ms"\n` +
      `[collectors.procio]\ninterval = "1s"\n[collectors.smart]\nenabled = false\n[collectors.kmsg]\n` +
      `enabled = false\n`,
  });
  t.teardown(() => a.stop("SIGKILL"));
  const fio = spawn(
    "fio",
    [
      "--name=hog",
      `--directory=${lfs.mnt}`,
      "--rw=randwrite",
      "--bs=16k",
      "--size=64M",
      "--ioengine=psync",
      "--runtime=4",
      "--time_based",
      "--fsync=8",
    ],
    { stdio: "ignore" },
  );
  t.teardown(() => fio.kill("SIGKILL"));
  await new Promise((r) => fio.once("close", r));
  await sleep(2500);

  const { text } = await fetchText(`${a.url}/metrics`);
  const count = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
  t.true(
    count(
      new RegExp(
        `stemedb_agent_disk_await_seconds_count\\{device="${lfs.device}",op="write"\\} (\\d+)`,
      ),
    ) >= 3,
    "one write-await observation per busy second",
  );
  t.true(
    count(
      new RegExp(
        `stemedb_agent_disk_await_seconds_count\\{device="${lfs.device}",op="flush"\\} (\\d+)`,
      ),
    ) >= 3,
  );
  t.true(
    count(
      new RegExp(`stemedb_agent_disk_writes_completed_total\\{device="${lfs.device}"\\} (\\d+)`),
    ) > 1000,
  );
  t.regex(text, new RegExp(`stemedb_agent_disk_role\\{device="${lfs.device}",role="wal"\\} 1`));
  t.true(
    count(
      new RegExp(
        `stemedb_agent_fsync_probe_duration_seconds_count\\{mountpoint="${lfs.mnt}"\\} (\\d+)`,
      ),
    ) >= 5,
  );
  t.regex(text, /stemedb_agent_collector_up\{collector="procio"\} 1/);

  if (hasCommand("promtool")) {
    const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    t.is(
      `${r.stdout}${r.stderr}`.trim(),
      "",
      "promtool check metrics is clean with every collector on",
    );
  }

  await a.stop("SIGTERM");
  const db = new Database(join(a.stateDir, "history.db"), { readonly: true });
  // Other tests run in parallel (their workers reap fio/dd children) and kernel writeback threads
  // show up too, so fio need not be first at every moment: it must be recorded as a real writer.
  const fioRate = db
    .prepare("SELECT max(write_bps) FROM io_top WHERE comm = 'fio'")
    .pluck()
    .get() as number | null;
  const awaits = db
    .prepare(
      "SELECT count(*) FROM samples s JOIN series x ON x.id = s.series_id " +
        "WHERE x.metric = 'disk_w_await_seconds' AND x.labels = ?",
    )
    .pluck()
    .get(JSON.stringify({ device: lfs.device })) as number;
  db.close();
  t.true((fioRate ?? 0) > 1024 * 1024, `fio recorded at ${fioRate ?? 0} B/s at most`);
  t.true(awaits >= 3, `history has ${awaits} per-second w_await samples for ${lfs.device}`);
});
