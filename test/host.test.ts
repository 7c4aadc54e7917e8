// core/host: the pure /proc parsers and spaceOf, and the Host readers on a prepared procfs tree
// (processes exiting mid-walk, unreadable descriptor lists) and on the real one.
import {
  mkdirSync,
  openSync,
  closeSync,
  statfsSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import test from "ava";
import { Host } from "../core/host/host.js";
import { parseCapEff, parseProcStat, PF_KTHREAD } from "../core/host/proc.js";
import { spaceOf } from "../core/host/statfs.js";
import { tempDir } from "./helpers/agent-process.js";

test("/proc/<pid>/stat splits after the last ')': a comm may hold spaces and parentheses", (t) => {
  const s = parseProcStat("4242 (my (odd) comm) T 17 4242 4242 0 -1 2129984 0 0 0 0\n");
  t.is(s.comm, "my (odd) comm");
  t.is(s.state, "T");
  t.is(s.ppid, 17);
  t.is(s.flags, 2129984);
  t.true((parseProcStat("2 (kthreadd) S 0 0 0 0 -1 2129984 0").flags & PF_KTHREAD) !== 0);
  t.is(parseProcStat("1 (systemd) S 0 1 1 0 -1 4194560 0").flags & PF_KTHREAD, 0);
  // Truncated or garbage: no state, ppid 0, and no flag bit set.
  const g = parseProcStat("");
  t.is(g.state, null);
  t.is(g.ppid, 0);
  t.is(g.flags & PF_KTHREAD, 0);
});

test("CapEff parses as a bitmask; a status without it has no answer", (t) => {
  t.is(parseCapEff("Name:\tx\nCapInh:\t0\nCapEff:\t000001ffffffffff\n"), 0x1ffffffffffn);
  t.is(parseCapEff("Name:\tx\n"), null);
});

test("spaceOf: used counts the root reserve as free, used_ratio as full; size 0 is 0% used", (t) => {
  const s = spaceOf({ bsize: 4096, blocks: 1000, bfree: 300, bavail: 250, files: 64, ffree: 10 });
  t.deepEqual(s, {
    size_bytes: 4096000,
    free_bytes: 1228800,
    avail_bytes: 1024000,
    used_bytes: 2867200,
    used_ratio: 0.75,
    files: 64,
    files_free: 10,
  });
  t.is(spaceOf({ bsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0 }).used_ratio, 0);
});

test("Host reads a prepared procfs: pids, per-process fields, mountinfo, boot id", async (t) => {
  const { dir: proc, cleanup } = tempDir("host-");
  t.teardown(cleanup);
  for (const pid of ["1", "77", "self"]) mkdirSync(join(proc, pid, "fd"), { recursive: true });
  mkdirSync(join(proc, "sys/kernel/random"), { recursive: true });
  mkdirSync(join(proc, "net"));
  writeFileSync(join(proc, "sys/kernel/random/boot_id"), "b00t\n");
  writeFileSync(join(proc, "77/comm"), "stemedb\n");
  writeFileSync(join(proc, "77/stat"), "77 (stemedb) S 1 77 77 0 -1 4194560 0\n");
  writeFileSync(join(proc, "77/cgroup"), "0::/system.slice/stemedb.service\n");
  writeFileSync(
    join(proc, "self/mountinfo"),
    "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n23 22 8:2 / /srv/wal\\040dir rw,noatime - xfs /dev/sdb rw\n",
  );
  const host = new Host({ procPath: proc });
  t.deepEqual(host.pids().sort(), [1, 77]);
  t.deepEqual([...host.processes()].map((p) => p.pid).sort(), [1, 77]);
  const p = host.process(77);
  t.is(p.comm(), "stemedb");
  t.is(p.stat()?.state, "S");
  t.is(p.stat()?.ppid, 1);
  t.true(p.cgroup()?.includes("/stemedb.service"));
  // pid 1 has no files: every field reads as null, the walk goes on.
  t.is(host.process(1).comm(), null);
  t.is(host.process(1).stat(), null);
  t.is(host.bootId(), "b00t");
  const { mounts, problems } = await host.mountinfo();
  t.deepEqual(problems, []);
  t.deepEqual(
    mounts.map((m) => m.mountPoint),
    ["/", "/srv/wal dir"],
  );
  t.deepEqual(host.mountinfoSync("self"), { mounts, problems });
  await t.throwsAsync(host.mountinfo(1), { code: "ENOENT" });
});

test("Host descriptors: null for an exited process, a throw (fail closed) when unreadable", (t) => {
  const { dir: proc, cleanup } = tempDir("host-");
  t.teardown(cleanup);
  mkdirSync(join(proc, "10/fd"), { recursive: true });
  symlinkSync(join(proc, "target"), join(proc, "10/fd/3"));
  writeFileSync(join(proc, "target"), "x");
  mkdirSync(join(proc, "11"));
  writeFileSync(join(proc, "11/fd"), ""); // ENOTDIR: exists, but its descriptors cannot be listed
  const host = new Host({ procPath: proc });
  t.deepEqual(host.process(10).fds(), ["3"]);
  t.is(host.process(10).fdTarget("3"), join(proc, "target"));
  t.is(host.process(10).fdStat("3")?.ino, statSync(join(proc, "target")).ino);
  t.is(host.process(10).fdTarget("4"), null);
  t.is(host.process(10).fdStat("4"), null);
  t.is(host.process(12).fds(), null);
  t.throws(() => host.process(11).fds(), { code: "ENOTDIR" });
  t.throws(() => new Host({ procPath: join(proc, "none") }).pids(), { code: "ENOENT" });
  t.deepEqual([...new Host({ procPath: join(proc, "none") }).processes()], []);
});

test("Host on the real procfs sees this process's descriptors and statfs", async (t) => {
  const { dir, cleanup } = tempDir("host-");
  t.teardown(cleanup);
  const fd = openSync(join(dir, "held"), "w");
  t.teardown(() => closeSync(fd));
  const host = new Host();
  const self = host.process(process.pid);
  t.true(host.pids().includes(process.pid));
  t.true(self.fds()?.some((n) => self.fdTarget(n) === join(dir, "held")));
  t.is(self.stat()?.ppid, process.ppid);
  const st = statfsSync(dir);
  t.is(spaceOf(await host.statfs(dir)).size_bytes, st.blocks * st.bsize);
  t.is(spaceOf(host.statfsSync(dir)).size_bytes, st.blocks * st.bsize);
});
