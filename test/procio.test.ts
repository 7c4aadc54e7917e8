import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import { Registry } from "prom-client";
import { ProcioCollector } from "../collectors/procio/collector.js";
import { procioSinks } from "../collectors/procio/sink.js";
import type { ProcioObservation } from "../collectors/procio/observation.js";
import { parseCgroupUnit, parseIoStat, parseProcIo } from "../collectors/procio/parse.js";
import { hasCommand, tempDir } from "./helpers/agent-process.js";
import { routed, sleep } from "./helpers/quiet.js";

test("/proc/<pid>/io parses; garbage is a reason, not a throw", (t) => {
  const real =
    "rchar: 16777702\nwchar: 33554432\nsyscr: 20\nsyscw: 512\nread_bytes: 20979712\nwrite_bytes: " +
    "41943040\ncancelled_write_bytes: 33554432\n";
  t.deepEqual(parseProcIo(real), {
    readBytes: 20979712,
    writeBytes: 41943040,
    cancelledWriteBytes: 33554432,
  });
  t.is(parseProcIo("rchar: 1\n"), "no read_bytes/write_bytes");
  t.is(typeof parseProcIo("\u0000\u0001garbage"), "string");
});

test("the unit comes from the cgroup v2 path, or from name=systemd on hybrid hosts", (t) => {
  t.deepEqual(parseCgroupUnit("0::/system.slice/backup.service\n"), {
    unit: "backup.service",
    path: "/system.slice/backup.service",
  });
  t.is(parseCgroupUnit("0::/user.slice/user-0.slice/session-3.scope\n").unit, "session-3.scope");
  t.is(
    parseCgroupUnit("12:name=systemd:/system.slice/log-archiver.service\n1:cpu:/\n0::/\n").unit,
    "log-archiver.service",
  );
  t.is(parseCgroupUnit("0::/system.slice/docker-1a2b.scope/init.scope\n").unit, "init.scope");
  t.deepEqual(parseCgroupUnit("0::/\n"), { unit: null, path: "/" });
  t.deepEqual(parseCgroupUnit(""), { unit: null, path: null });
});

test("io.stat parses per device, with extra keys ignored and junk skipped", (t) => {
  const m = parseIoStat(
    "8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=50331648 dios=3021\n" +
      "259:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0 cost.vrate=100.00\nnonsense\n",
  );
  t.deepEqual(m.get("8:0"), {
    rbytes: 90430464,
    wbytes: 299008000,
    rios: 8950,
    wios: 1252,
    dbytes: 50331648,
    dios: 3021,
  });
  t.is(m.get("259:0")?.wbytes, 2);
  t.is(m.size, 2);
});

function collector(procPath: string, units: string[] = [], topK = 10) {
  const registry = new Registry();
  const { col, once } = routed(
    procioSinks(registry, units),
    null,
    () => new ProcioCollector({ procPath, units, topK }),
  );
  return { col, registry, once };
}

test("a real fio writer shows in the top consumers with its write rate", async (t) => {
  if (!hasCommand("fio"))
    return t.pass("skipped: fio not installed (npm test installs it as root)");
  const { dir } = tempDir();
  const fio = spawn(
    "fio",
    [
      "--name=hog",
      `--directory=${dir}`,
      "--rw=write",
      "--bs=64k",
      "--size=64M",
      "--ioengine=psync",
      "--runtime=10",
      "--time_based",
      "--fsync=32",
    ],
    { stdio: "ignore" },
  );
  t.teardown(() => fio.kill("SIGKILL"));
  const { once } = collector("/proc");
  // fio may take a moment to start on a loaded machine: sample until it shows (bounded).
  // fio's parent process does little I/O; its forked job (same comm) does the writing.
  const writer = (x: ProcioObservation) =>
    x.top.filter((r) => r.comm === "fio").sort((a, b) => b.write_bps - a.write_bps)[0];
  await once();
  let o = await once();
  let hog = writer(o);
  for (let i = 0; i < 12 && (hog?.write_bps ?? 0) < 1024 * 1024; i++) {
    await sleep(500);
    o = await once();
    hog = writer(o);
  }
  t.truthy(hog, JSON.stringify(o.top.slice(0, 3)));
  t.true((hog?.write_bps ?? 0) > 1024 * 1024, `fio wrote ${hog?.write_bps} B/s`);
  t.true(o.processes > 3);
  t.true(
    o.top.every(
      (r, i) =>
        i === 0 ||
        r.read_bps + r.write_bps <= (o.top[i - 1]?.read_bps ?? 0) + (o.top[i - 1]?.write_bps ?? 0),
    ),
    "busiest first",
  );
});

test("processes exiting mid-scan are normal, not errors", async (t) => {
  const churn = spawn("sh", ["-c", "for i in $(seq 1 400); do (echo x > /dev/null) & done; wait"], {
    stdio: "ignore",
  });
  const done = new Promise((r) => churn.once("close", r));
  const { once } = collector("/proc");
  for (let i = 0; i < 5; i++) await t.notThrowsAsync(once());
  await done;
});

/**
 * A captured-style proc tree: two processes of backup.service, one of another unit, and a cgroup2
 * mount with io.stat.
 */
function fakeTree(
  root: string,
  io: { backupA: number; backupB: number; other: number; stat: string },
) {
  const proc = join(root, "proc");
  const cg = join(root, "cgroup");
  const pid = (n: number, comm: string, cgroup: string, written: number) => {
    mkdirSync(join(proc, String(n)), { recursive: true });
    writeFileSync(join(proc, String(n), "comm"), `${comm}\n`);
    writeFileSync(join(proc, String(n), "cgroup"), `0::${cgroup}\n`);
    writeFileSync(
      join(proc, String(n), "io"),
      `rchar: 0\nwchar: 0\nread_bytes: 0\nwrite_bytes: ${written}\ncancelled_write_bytes: 0\n`,
    );
  };
  pid(100, "restic", "/system.slice/backup.service", io.backupA);
  pid(101, "gzip", "/system.slice/backup.service", io.backupB);
  pid(200, "stemedb", "/system.slice/stemedb-api.service", io.other);
  mkdirSync(join(proc, "self"), { recursive: true });
  writeFileSync(
    join(proc, "self", "mountinfo"),
    `41 31 0:38 / ${cg} rw,relatime - cgroup2 cgroup2 rw\n`,
  );
  mkdirSync(join(cg, "system.slice", "backup.service"), { recursive: true });
  writeFileSync(join(cg, "system.slice", "backup.service", "io.stat"), io.stat);
  return proc;
}

test(
  "per-unit figures come from io.stat where present, from the processes otherwise; " +
    "counters only for configured units",
  async (t) => {
    const { dir } = tempDir();
    const proc = fakeTree(dir, {
      backupA: 0,
      backupB: 0,
      other: 0,
      stat: "7:1 rbytes=0 wbytes=1000 rios=0 wios=1\n",
    });
    const { once, registry } = collector(proc, ["backup.service"]);
    await once();
    await sleep(200);
    fakeTree(dir, {
      backupA: 4_000_000,
      backupB: 1_000_000,
      other: 2_000_000,
      stat: "7:1 rbytes=0 wbytes=8001000 rios=0 wios=90\n254:0 rbytes=5 wbytes=0 rios=1 wios=0\n",
    });
    const o = await once();
    const backup = o.units.find((u) => u.unit === "backup.service");
    const db = o.units.find((u) => u.unit === "stemedb-api.service");
    t.is(backup?.source, "io.stat");
    const secs = o.interval_seconds ?? 1;
    t.true(
      Math.abs((backup?.write_bps ?? 0) * secs - 8_000_000) < 1,
      "io.stat, not the 5 MB its processes dirtied",
    );
    t.deepEqual(Object.keys(backup?.devices ?? {}), ["7:1"], "only devices that moved");
    t.is(db?.source, "processes");
    t.true(Math.abs((db?.write_bps ?? 0) * secs - 2_000_000) < 1);
    t.deepEqual(
      o.top.map((r) => r.comm),
      ["restic", "stemedb", "gzip"],
    );
    const text = await registry.metrics();
    t.regex(text, /stemedb_agent_unit_written_bytes_total\{unit="backup\.service"\} 8000000/);
    t.notRegex(text, /unit="stemedb-api\.service"/, "unconfigured units are not exported");
  },
);

test("top_k bounds the list", async (t) => {
  const { dir } = tempDir();
  const proc = fakeTree(dir, { backupA: 0, backupB: 0, other: 0, stat: "" });
  const { once } = collector(proc, [], 2);
  await once();
  await sleep(100);
  fakeTree(dir, { backupA: 10, backupB: 20, other: 30, stat: "" });
  t.deepEqual(
    (await once()).top.map((r) => r.pid),
    [200, 101],
  );
});

test("a parent reaping a child is not charged with the child's lifetime I/O", async (t) => {
  const { dir } = tempDir();
  const file = join(dir, "blob");
  // parent sh -> subshell (writes 32 MiB through dd, then lingers 1.5 s) ; the parent lives on.
  const parent = spawn(
    "sh",
    [
      "-c",
      `( dd if=/dev/zero of=${file} bs=1M count=32 conv=fsync status=none; sleep 1.5 ); sleep 6`,
    ],
    { stdio: "ignore" },
  );
  t.teardown(() => parent.kill("SIGKILL"));
  const { once } = collector("/proc");
  await once();
  await sleep(900); // the subshell is alive and already carries dd's 32 MiB
  await once();
  await sleep(1600); // the subshell has exited and been reaped by the parent
  const o = await once();
  const parentRow = o.top.find((r) => r.pid === parent.pid);
  t.true(
    (parentRow?.write_bytes ?? 0) < 8 * 1024 * 1024,
    `parent charged ${parentRow?.write_bytes ?? 0} bytes`,
  );
});
