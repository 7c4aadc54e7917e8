// The kernel's error counters on real filesystems: ext4 on a loop device mounted
// errors=continue, whose trigger_fs_error (fs/ext4/sysfs.c, there for tests) records a real
// error through __ext4_error; btrfs RAID1 on two loop devices; XFS on a loop device. Then the
// running agent with the kmsg collector: an ext4 error whose kernel-log line the agent read is
// accounted for; one whose line ext4's own rate limit held back (err_ratelimit_burst = 0 on
// that filesystem: __ext4_error counts it and prints nothing) is "kernel log missing a line".
import test from "ava";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Registry } from "prom-client";
import { ErrcountersCollector } from "../collectors/errcounters/collector.js";
import type { ErrcountersObservation } from "../collectors/errcounters/observation.js";
import { errcountersSinks } from "../collectors/errcounters/sink.js";
import type { EventInput } from "../core/history/store.js";
import { COLLECTOR_JUDGE } from "../judge/index.js";
import {
  agentctl,
  fetchText,
  hasCommand,
  isRoot,
  startAgent,
  tempDir,
} from "./helpers/agent-process.js";
import { sample, until } from "./helpers/faults.js";
import { makeLoopFs } from "./helpers/loop.js";
import { sleep } from "./helpers/quiet.js";
import { exclusive } from "./helpers/sysctl.js";

/** btrfs RAID1 (data and metadata) on two fresh loop devices, mounted at <dir>/mnt. */
function btrfsPair(dir: string): { devs: string[]; mnt: string; cleanup(): void } {
  const mnt = join(dir, "mnt");
  mkdirSync(mnt, { recursive: true });
  const devs: string[] = [];
  const cleanup = () => {
    spawnSync("umount", [mnt]);
    for (const d of devs) spawnSync("losetup", ["-d", d]);
  };
  try {
    for (const n of ["a", "b"]) {
      const img = join(dir, `${n}.img`);
      execFileSync("truncate", ["-s", "256M", img]);
      devs.push(execFileSync("losetup", ["--find", "--show", img], { encoding: "utf8" }).trim());
    }
    execFileSync("mkfs.btrfs", ["-q", "-f", "-d", "raid1", "-m", "raid1", ...devs], {
      stdio: "ignore",
    });
    execFileSync("mount", [devs[0] ?? "", mnt]);
  } catch (e) {
    cleanup();
    throw e;
  }
  return { devs, mnt, cleanup };
}

function collector(first: string[]) {
  const registry = new Registry();
  const sinks = errcountersSinks(registry, COLLECTOR_JUDGE);
  const col = new ErrcountersCollector({
    procPath: "/proc",
    sysPath: "/sys",
    devPath: "/dev",
    // Other tests mount filesystems too: ours come first, under the cap.
    firstPaths: first,
    logWindowMs: 1000,
    settleMs: 0,
    crossCheckOff: "not in this test",
    kernelLog: null,
  });
  const events: EventInput[] = [];
  const run = async (): Promise<ErrcountersObservation> => {
    const o = await col.collect({ signal: new AbortController().signal });
    sinks.observation.metrics?.(o);
    events.push(...(sinks.observation.events?.(o) ?? []));
    return o;
  };
  return { registry, run, events };
}

test.serial("ext4, btrfs and XFS on loop devices: what sysfs holds, read and parsed", async (t) => {
  if (!isRoot || !hasCommand("mkfs.btrfs") || !hasCommand("mkfs.xfs"))
    return t.pass("skipped: needs root, mkfs.btrfs (btrfs-progs) and mkfs.xfs");
  const { dir, cleanup } = tempDir("sa-errc-");
  const done: Array<() => void> = [cleanup];
  t.teardown(() => done.reverse().forEach((f) => f()));
  mkdirSync(join(dir, "e"));
  mkdirSync(join(dir, "x"));
  mkdirSync(join(dir, "b"));
  const ext4 = makeLoopFs(join(dir, "e"), { fs: "ext4", mountOptions: "errors=continue" });
  done.push(() => ext4.cleanup());
  const xfs = makeLoopFs(join(dir, "x"), { fs: "xfs", sizeMiB: 320 });
  done.push(() => xfs.cleanup());
  const btrfs = btrfsPair(join(dir, "b"));
  done.push(() => btrfs.cleanup());

  const { registry, run, events } = collector([ext4.mnt, btrfs.mnt, xfs.mnt]);
  const o = await run();
  t.like(
    o.ext4.find((f) => f.device === ext4.device),
    { disk: ext4.device, mountpoint: ext4.mnt, errors: 0, first: null, last: null },
  );
  // The devids btrfs-progs reports (BTRFS_IOC_DEV_INFO), against the superblocks the agent read.
  const show = execFileSync("btrfs", ["filesystem", "show", btrfs.mnt], { encoding: "utf8" });
  const want = [...show.matchAll(/devid\s+(\d+) .* path \/dev\/(\S+)/g)].map((m) => [
    Number(m[1]),
    m[2],
  ]);
  const members = o.btrfs.filter((b) => b.mountpoint === btrfs.mnt);
  t.deepEqual(
    members.map((b) => [b.devid, b.device]),
    want,
  );
  t.is(want.length, 2);
  for (const b of members)
    t.deepEqual(b.counters, {
      stats: { write: 0, read: 0, flush: 0, corruption: 0, generation: 0 },
    });
  t.deepEqual(
    o.xfs.filter((x) => x.mountpoint === xfs.mnt),
    [{ device: xfs.device, mountpoint: xfs.mnt }],
  );
  // What XFS exposes per filesystem (fs/xfs/xfs_sysfs.c): retry policy, statistics and log
  // positions; no error counter. A kernel that adds one fails this, and it should be read.
  t.deepEqual(readdirSync(`/sys/fs/xfs/${xfs.device}`).sort(), ["error", "log", "stats"]);
  const statNames = readFileSync(`/sys/fs/xfs/${xfs.device}/stats/stats`, "utf8")
    .split("\n")
    .map((l) => l.split(" ")[0]);
  t.false(
    statNames.some((n) => n !== undefined && /err/.test(n)),
    statNames.join(" "),
  );

  let text = await registry.metrics();
  const fsLabels = `device="${ext4.device}",mountpoint="${ext4.mnt}"`;
  t.is(sample(text, `stemedb_agent_filesystem_errors_total{${fsLabels},fstype="ext4"}`), 0);
  for (const [devid, dev] of want)
    t.is(
      sample(
        text,
        `stemedb_agent_btrfs_device_errors_total{device="${dev}",mountpoint="${btrfs.mnt}",kind="corruption"}`,
      ),
      0,
      `devid ${devid}`,
    );

  // A real ext4 error: counted, timed and named by the kernel.
  const before = Math.floor(Date.now() / 1000);
  writeFileSync(`/sys/fs/ext4/${ext4.device}/trigger_fs_error`, "stemedb-agent errcounters test");
  const after = Math.ceil(Date.now() / 1000);
  events.length = 0;
  const o2 = await run();
  const f = o2.ext4.find((x) => x.device === ext4.device);
  t.is(f?.errors, 1);
  t.is(f?.last?.func, "trigger_test_error");
  t.true((f?.last?.time_s ?? 0) >= before && (f?.last?.time_s ?? 0) <= after);
  t.deepEqual(
    o2.rises.filter((r) => r.device === ext4.device).map((r) => [r.counter, r.from, r.to]),
    [["ext4_errors", 0, 1]],
  );
  const ev = events.filter((e) => e.subject === ext4.device);
  t.deepEqual(
    ev.map((e) => [e.class, e.kind, e.severity]),
    [["errcounter", "ext4_errors", "crit"]],
  );
  t.regex(ev[0]?.message ?? "", /last error: trigger_test_error at .* UTC, line \d+, errno 5$/);
  text = await registry.metrics();
  t.is(sample(text, `stemedb_agent_filesystem_errors_total{${fsLabels},fstype="ext4"}`), 1);
  t.is(
    sample(text, `stemedb_agent_filesystem_error_time_seconds{${fsLabels},which="last"}`),
    f?.last?.time_s,
  );
  t.is(
    sample(
      text,
      `stemedb_agent_filesystem_error_info{${fsLabels},which="last",function="trigger_test_error"}`,
    ),
    1,
  );
});

test.serial(
  "through the running agent: an ext4 error the kernel log has is accounted for; one ext4's rate " +
    "limit kept out of the log is 'kernel log missing a line'",
  async (t) => {
    if (!isRoot) return t.pass("skipped: needs root");
    // The ring buffer is shared with the kmsg storm tests: a storm could overwrite our line.
    t.teardown(await exclusive("kmsg-ring"));
    const { dir, cleanup } = tempDir("sa-errc-agent-");
    const done: Array<() => void> = [cleanup];
    t.teardown(() => done.reverse().forEach((f) => f()));
    mkdirSync(join(dir, "e"));
    const ext4 = makeLoopFs(join(dir, "e"), { fs: "ext4", mountOptions: "errors=continue" });
    done.push(() => ext4.cleanup());
    const off = ["diskstats", "fsync_probe", "smart", "mounts", "wal", "procio", "process"];
    const a = await startAgent({
      dir,
      extraToml:
        off.map((n) => `[collectors.${n}]\nenabled = false\n`).join("") +
        `[history]\nflush_interval = "1s"\n` +
        `[collectors.netstat]\nenabled = false\n` +
        `[collectors.errcounters]\ninterval = "1s"\nlog_window = "2s"\n` +
        `[wal]\ndir = "${ext4.mnt}/wal"\n`,
    });
    done.push(() => void a.stop("SIGKILL"));
    const fsLabels = `device="${ext4.device}",mountpoint="${ext4.mnt}"`;
    const metric = async (series: string) =>
      sample((await fetchText(`${a.url}/metrics`)).text, series);
    await until(
      "the filesystem's baseline",
      async () =>
        (await metric(`stemedb_agent_filesystem_errors_total{${fsLabels},fstype="ext4"}`)) === 0,
    );
    // The kmsg collector starts with the ring buffer's backlog, where an earlier filesystem on a
    // loop device of the same name may have left lines: count from here.
    const lines = `stemedb_agent_kernel_io_errors_total{device="${ext4.device}",class="ext4_error"}`;
    await sleep(2_000);
    const lines0 = (await metric(lines)) ?? 0;
    const sysfs = `/sys/fs/ext4/${ext4.device}`;
    writeFileSync(`${sysfs}/trigger_fs_error`, "logged");
    await until(
      "the rise in /metrics",
      async () =>
        (await metric(`stemedb_agent_filesystem_errors_total{${fsLabels},fstype="ext4"}`)) === 1,
    );
    await until("the kernel log's line", async () => (await metric(lines)) === lines0 + 1);
    // The window (2 s) and the flush (1 s) pass; then 6 s more, so that the next rise's window
    // (from 5 s before its previous sample) cannot reach back to this line.
    await sleep(9_000);
    const events = (cls: string) =>
      JSON.parse(
        agentctl(["--socket", a.socket, "events", "--class", cls, "--since", "1h", "--json"])
          .stdout,
      ) as { events: Array<{ kind: string; subject: string | null; message: string }> };
    const mine = () => events("errcounter").events.filter((e) => e.subject === ext4.device);
    t.deepEqual(
      mine().map((e) => e.kind),
      ["ext4_errors"],
      "the rise, and no finding: the kernel log has its line",
    );
    t.is(
      await metric(
        `stemedb_agent_kernel_log_missing_total{${fsLabels.split(",")[0]},counter="ext4_errors"}`,
      ),
      undefined,
    );

    // ext4's own rate limit (s_err_ratelimit_state) with no burst: counted, not printed.
    writeFileSync(`${sysfs}/err_ratelimit_burst`, "0\n");
    writeFileSync(`${sysfs}/trigger_fs_error`, "rate-limited");
    await until(
      "the second rise",
      async () =>
        (await metric(`stemedb_agent_filesystem_errors_total{${fsLabels},fstype="ext4"}`)) === 2,
    );
    const missing = await until(
      "the finding",
      () => mine().find((e) => e.kind === "kernel_log.missing"),
      30_000,
    );
    t.regex(
      missing.message,
      new RegExp(
        `^ext4_errors on ${ext4.device} \\(${ext4.mnt.replace(/[/.]/g, "\\$&")}\\) rose 1 -> 2 between .*, ` +
          `and the kernel log has no line on ${ext4.device} from .*: `,
      ),
    );
    t.is(
      await metric(
        `stemedb_agent_kernel_log_missing_total{device="${ext4.device}",counter="ext4_errors"}`,
      ),
      1,
    );
    t.is(
      await metric(lines),
      lines0 + 1,
      "the kmsg collector saw one line: the second error was never printed",
    );
    const status = agentctl(["--socket", a.socket, "status", "-v"]).stdout;
    t.regex(status, new RegExp(`kernel log missing a line: ext4_errors on ${ext4.device}`));
    t.regex(
      status,
      new RegExp(`ext4 on ${ext4.device} \\(.*\\): 2 errors since its last fsck, rising today`),
    );
  },
);
