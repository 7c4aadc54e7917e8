// agentctl diagnose --active: the WAL write test on real filesystems (ext4 and xfs on loop devices,
// ramfs which refuses O_DIRECT), with a real unprivileged user owning the WAL directory and its
// parent who plants links and FIFOs where the test's directory goes; the skip conditions through
// the real agent (a nearly full filesystem, a slow fsync judged from the real probe); root only.
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import test, { type ExecutionContext } from "ava";
import { type Diagnosis, stepOf } from "../agent/status/diagnose.js";
import { runWriteTestWorker } from "../agent/status/write-test.js";
import { TEST_DIR } from "../agent/status/write-test-protocol.js";
import {
  AGENTCTL_BIN,
  agentctl,
  hasCommand,
  isRoot,
  startAgent,
  tempDir,
} from "./helpers/agent-process.js";
import { makeLoopFs } from "./helpers/loop.js";
import { sleep } from "./helpers/quiet.js";
import { testUser } from "./helpers/users.js";

const MiB = 1024 * 1024;
const ready = isRoot && hasCommand("useradd") && hasCommand("runuser");

const user = testUser("sa-wtest", ready);

function skip(t: ExecutionContext, more = true): boolean {
  if (ready && more) return false;
  t.pass("skipped: needs root, useradd and runuser (and the filesystem's tools)");
  return true;
}

/** As the database's user: what it may do in its own directories. */
const asUser = (cmd: string, ...args: string[]): void => user.run(cmd, ...args);

/**
 * <mnt>/data (the database's, 0755) holding <mnt>/data/wal (the database's, 0700); the
 * directories above made passable for the user.
 */
function dbDirs(mnt: string): { data: string; wal: string } {
  chmodSync(dirname(mnt), 0o711);
  chmodSync(mnt, 0o755);
  const data = join(mnt, "data");
  const wal = join(data, "wal");
  mkdirSync(wal, { recursive: true, mode: 0o700 });
  chownSync(data, user.uid, user.gid);
  chownSync(wal, user.uid, user.gid);
  return { data, wal };
}

/** The runbook's own command on the same filesystem, for the log: the reference figure. */
function ddFigure(dir: string, count: number): string {
  const f = join(dir, "dd-reference.dat");
  const r = spawnSync(
    "dd",
    ["if=/dev/zero", `of=${f}`, "bs=1M", `count=${count}`, "oflag=direct"],
    { encoding: "utf8" },
  );
  spawnSync("rm", ["-f", f]);
  return r.stderr.trim().split("\n").at(-1) ?? "";
}

for (const fs of ["ext4", "xfs"] as const) {
  test.serial(
    `${fs}: the write test writes O_DIRECT next to the WAL directory, never in it, and removes everything`,
    async (t) => {
      if (skip(t, hasCommand(`mkfs.${fs}`))) return;
      const { dir, cleanup } = tempDir("sa-wt-");
      t.teardown(cleanup);
      const lfs = makeLoopFs(dir, { sizeMiB: 512, fs });
      t.teardown(() => lfs.cleanup());
      const { data, wal } = dbDirs(lfs.mnt);
      writeFileSync(join(wal, "segment.1.wal"), "x");
      const before = readdirSync(wal);
      const r = await runWriteTestWorker({
        walDir: wal,
        stateDir: join(dir, "state-elsewhere"), // not on the WAL's filesystem
        dir: "",
        size: 64 * MiB,
        deadlineMs: 60_000,
      });
      if (!r.ok) return t.fail(`${r.code}: ${r.message}`);
      t.is(r.path, join(data, TEST_DIR, "test.dat"));
      t.is(r.bytes, 64 * MiB);
      t.is(r.writes, 64);
      t.false(r.stopped_at_deadline);
      t.true(r.p50_seconds > 0 && r.p50_seconds <= r.p99_seconds && r.p99_seconds <= r.max_seconds);
      t.deepEqual(readdirSync(wal), before, "nothing written in the WAL directory");
      t.false(existsSync(join(data, TEST_DIR)), "its directory removed");
      t.log(
        `${fs} loop: write test ${(r.bytes / r.seconds / 1e6).toFixed(0)} MB/s, p50 ` +
          `${(r.p50_seconds * 1000).toFixed(2)} ms, p99 ${(r.p99_seconds * 1000).toFixed(2)} ms; ` +
          `dd oflag=direct in the same run: ${ddFigure(lfs.mnt, 64)}`,
      );
    },
  );
}

test.serial(
  "a link, a FIFO or a directory the database's user planted where the test goes is never followed",
  async (t) => {
    if (skip(t)) return;
    const { dir, cleanup } = tempDir("sa-wt-");
    t.teardown(cleanup);
    const lfs = makeLoopFs(dir, { sizeMiB: 256 });
    t.teardown(() => lfs.cleanup());
    const { data, wal } = dbDirs(lfs.mnt);
    // A root-only directory and file the user would like the root agent to write into.
    const target = join(lfs.mnt, "root-only");
    mkdirSync(target, { mode: 0o700 });
    const victim = join(target, "victim");
    writeFileSync(victim, "precious", { mode: 0o600 });
    const planted = join(data, TEST_DIR);
    const run = () =>
      runWriteTestWorker({
        walDir: wal,
        stateDir: dir,
        dir: "",
        size: 4 * MiB,
        deadlineMs: 20_000,
      });

    asUser("ln", "-s", target, planted); // a link to a root directory on the same filesystem
    const viaLink = await run();
    t.true(viaLink.ok, JSON.stringify(viaLink));
    t.deepEqual(readdirSync(target), ["victim"], "nothing created through the link");
    t.false(existsSync(planted), "the planted link removed, the agent's directory too");

    asUser("mkfifo", planted);
    const viaFifo = await run();
    t.true(viaFifo.ok, JSON.stringify(viaFifo));
    t.false(existsSync(planted));

    // A directory of the user's own, with test.dat a link to the root-only file: refused.
    asUser("mkdir", planted);
    asUser("ln", "-s", victim, join(planted, "test.dat"));
    const viaDir = await run();
    t.false(viaDir.ok);
    if (!viaDir.ok) {
      t.is(viaDir.code, "EREFUSED");
      t.regex(
        viaDir.message,
        new RegExp(
          `${TEST_DIR} in .* is not the agent's \\(owned by uid ${user.uid}, not root\\): remove it`,
        ),
      );
    }
    t.is(readFileSync(victim, "utf8"), "precious");
    t.true(
      lstatSync(join(planted, "test.dat")).isSymbolicLink(),
      "the user's own files left alone",
    );
  },
);

test.serial(
  "a write_test_dir inside the WAL directory or on another filesystem is refused",
  async (t) => {
    if (skip(t)) return;
    const { dir, cleanup } = tempDir("sa-wt-");
    t.teardown(cleanup);
    const lfs = makeLoopFs(dir, { sizeMiB: 256 });
    t.teardown(() => lfs.cleanup());
    const { wal } = dbDirs(lfs.mnt);
    const run = (at: string) =>
      runWriteTestWorker({ walDir: wal, stateDir: dir, dir: at, size: MiB, deadlineMs: 5000 });
    const inside = await run(join(wal, "t"));
    t.false(inside.ok);
    if (!inside.ok) t.regex(inside.message, /is inside the WAL directory/);
    const elsewhere = await run(join(dir, "t"));
    t.false(elsewhere.ok);
    if (!elsewhere.ok) t.regex(elsewhere.message, /is not on the WAL's filesystem/);
    t.deepEqual(readdirSync(wal), []);
    t.false(existsSync(join(dir, "t")));
  },
);

test.serial("ramfs refuses O_DIRECT: the test says so and leaves nothing behind", async (t) => {
  if (skip(t)) return;
  const { dir, cleanup } = tempDir("sa-wt-");
  t.teardown(cleanup);
  const mnt = join(dir, "ramfs");
  mkdirSync(mnt);
  execFileSync("mount", ["-t", "ramfs", "none", mnt]);
  t.teardown(() => spawnSync("umount", ["-l", mnt]));
  const { data, wal } = dbDirs(mnt);
  const r = await runWriteTestWorker({
    walDir: wal,
    stateDir: dir,
    dir: "",
    size: 4 * MiB,
    deadlineMs: 5000,
  });
  t.false(r.ok);
  if (!r.ok) t.regex(r.message, /refuses O_DIRECT \(EINVAL opening .*; ramfs does\)/);
  t.deepEqual(readdirSync(data), ["wal"], "its directory removed");
});

test.serial("the write test stops at its deadline and reports what it measured", async (t) => {
  if (skip(t)) return;
  const { dir, cleanup } = tempDir("sa-wt-");
  t.teardown(cleanup);
  const lfs = makeLoopFs(dir, { sizeMiB: 512 });
  t.teardown(() => lfs.cleanup());
  const { wal } = dbDirs(lfs.mnt);
  // 256 MiB within 1 ms: no device writes that fast, so the deadline ends it.
  const r = await runWriteTestWorker({
    walDir: wal,
    stateDir: dir,
    dir: "",
    size: 256 * MiB,
    deadlineMs: 1,
  });
  if (!r.ok) return t.fail(r.message);
  t.true(r.stopped_at_deadline, `${r.bytes} bytes in ${r.seconds} s`);
  t.true(r.bytes < 256 * MiB && r.bytes === r.writes * MiB);
});

/** This machine's fsync under other tests' load is not what these tests are about: slow is far away. */
const CALM = `[thresholds]\nfsync_p99_warn = "5s"\nfsync_p99_crit = "10s"\n`;

/** An agent with the WAL on `wal`, its state elsewhere; figures of the write test from `extra`. */
async function agentOn(wal: string, data: string, extra = "") {
  const a = await startAgent({
    extraToml:
      `[wal]\ndir = "${wal}"\n[stemedb]\ndata_dir = "${data}"\n[collectors.diskstats]\ninclude = ` +
      `"^none$"\n[collectors.smart]\nenabled = false\n[collectors.kmsg]\nenabled = false\n` +
      `[collectors.procio]\nenabled = false\n[collectors.mounts]\ninterval = "1s"\n` +
      `[collectors.fsync_probe]\ninterval = "250ms"\n${extra}`,
  });
  return a;
}

async function until(what: string, f: () => boolean): Promise<void> {
  for (let i = 0; i < 80; i++) {
    if (f()) return;
    await sleep(250);
  }
  throw new Error(`never: ${what}`);
}

const statusOf = (socket: string, area: string) => {
  const r = agentctl(["--socket", socket, "status", "--json"]);
  if (r.code === 3) return null;
  return (JSON.parse(r.stdout) as { areas: Array<{ area: string; verdict: string }> }).areas.find(
    (a) => a.area === area,
  )?.verdict;
};

test.serial(
  "agentctl diagnose --active: root runs it through the admin socket, journalled; anyone else is refused",
  async (t) => {
    if (skip(t)) return;
    const { dir, cleanup } = tempDir("sa-wt-");
    t.teardown(cleanup);
    const lfs = makeLoopFs(dir, { sizeMiB: 512 });
    t.teardown(() => lfs.cleanup());
    const { data, wal } = dbDirs(lfs.mnt);
    const a = await agentOn(
      wal,
      data,
      CALM + `[diagnose]\nwrite_test_size = "32MiB"\nwrite_test_reserve = "64MiB"\n`,
    );
    t.teardown(() => a.stop("SIGKILL"));
    await until("fsync and filesystems known", () =>
      ["fsync", "filesystems"].every((x) =>
        ["ok", "warn", "crit"].includes(statusOf(a.socket, x) ?? ""),
      ),
    );
    const passive = JSON.parse(
      agentctl(["--socket", a.socket, "diagnose", "replication-lag", "--json"]).stdout,
    ) as Diagnosis;
    t.is(stepOf(passive, "replication-lag", 4)?.verdict, "info");
    t.is(
      stepOf(passive, "replication-lag", 4)?.action,
      "as root: agentctl diagnose --active replication-lag",
    );

    const r = agentctl(["--socket", a.socket, "diagnose", "ReplicationLagCritical", "--active"]);
    t.log(r.stdout);
    const step4 =
      /4\. WAL write performance \(dd bs=1M oflag=direct\)\n\s+(.*)/.exec(r.stdout)?.[1] ?? "";
    t.regex(
      step4,
      new RegExp(
        String.raw`^\d+ MB/s \(32\.0 MiB in [\d.]+ m?s\); per 1 MiB write p50 [\d.]+ ms, ` +
          String.raw`p99 [\d.]+ ms; expected over (100|50) MB/s`,
      ),
    );
    t.false(existsSync(join(data, TEST_DIR)));
    const events = agentctl(["--socket", a.socket, "events", "--class", "agent", "--json"]);
    const kinds = (
      JSON.parse(events.stdout) as { events: Array<{ kind: string; message: string }> }
    ).events
      .map((e) => e.kind)
      .filter((k) => k.startsWith("write_test."));
    t.deepEqual(kinds.sort(), ["write_test.done", "write_test.started"]);

    // A group member (here: anyone, with the read socket opened to all) is refused, nothing written.
    spawnSync("chmod", ["0755", a.dir]);
    spawnSync("chmod", ["0666", a.socket]);
    const nobody = spawnSync(
      "runuser",
      [
        "-u",
        user.name,
        "--",
        process.execPath,
        AGENTCTL_BIN,
        "--socket",
        a.socket,
        "diagnose",
        "--active",
      ],
      { encoding: "utf8" },
    );
    t.is(nobody.status, 77, nobody.stderr);
    t.regex(
      nobody.stderr,
      /refused: .*agentctl-admin\.sock: permission denied: actions are for root only/,
    );
    const read = spawnSync(
      "runuser",
      [
        "-u",
        user.name,
        "--",
        process.execPath,
        AGENTCTL_BIN,
        "--socket",
        a.socket,
        "diagnose",
        "slow-fsync.md",
      ],
      { encoding: "utf8" },
    );
    t.true([0, 1, 2].includes(read.status ?? -1), `the passive diagnose is a read: ${read.stderr}`);
  },
);

test.serial("the write test is skipped on a nearly full WAL filesystem", async (t) => {
  if (skip(t)) return;
  const { dir, cleanup } = tempDir("sa-wt-");
  t.teardown(cleanup);
  const lfs = makeLoopFs(dir, { sizeMiB: 256 });
  t.teardown(() => lfs.cleanup());
  const { data, wal } = dbDirs(lfs.mnt);
  // ~150 MiB free on 256: the filesystem itself is still ok by the judge (under 85% used), but
  // the test's 128 MiB and its 64 MiB reserve do not fit.
  execFileSync("fallocate", ["-l", "80M", join(data, "filler")]);
  const a = await agentOn(
    wal,
    data,
    CALM + `[diagnose]\nwrite_test_size = "128MiB"\nwrite_test_reserve = "64MiB"\n`,
  );
  t.teardown(() => a.stop("SIGKILL"));
  await until("filesystems known", () => statusOf(a.socket, "filesystems") === "ok");
  const r = agentctl(["--socket", a.socket, "diagnose", "replication-lag", "--active", "--json"]);
  const s = stepOf(JSON.parse(r.stdout) as Diagnosis, "replication-lag", 4);
  t.is(s?.verdict, "info");
  t.regex(
    s?.evidence ?? "",
    /^not run: only \d+ MiB free on the WAL filesystem; the test needs its 128 MiB plus the 64 MiB reserve$/,
  );
  t.false(existsSync(join(data, TEST_DIR)));
});

test.serial(
  "the write test is skipped while WAL fsync is judged slow (the real probe, strict figures)",
  async (t) => {
    if (skip(t)) return;
    const { dir, cleanup } = tempDir("sa-wt-");
    t.teardown(cleanup);
    const lfs = makeLoopFs(dir, { sizeMiB: 256 });
    t.teardown(() => lfs.cleanup());
    const { data, wal } = dbDirs(lfs.mnt);
    // Every real fsync is at least "0": the probe's p99 is judged warn or crit, as on a slow node.
    const a = await agentOn(
      wal,
      data,
      `[thresholds]\nfsync_p99_warn = "0"\nfsync_p99_crit = "1ms"\n`,
    );
    t.teardown(() => a.stop("SIGKILL"));
    await until("fsync judged", () => ["warn", "crit"].includes(statusOf(a.socket, "fsync") ?? ""));
    const r = agentctl(["--socket", a.socket, "diagnose", "replication-lag", "--active", "--json"]);
    const s = stepOf(JSON.parse(r.stdout) as Diagnosis, "replication-lag", 4);
    t.regex(
      s?.evidence ?? "",
      /^not run: WAL fsync is already (slow|degrading) \((crit|warn)\): the test would add to the load$/,
    );
    t.false(existsSync(join(data, TEST_DIR)));
  },
);
