// The errcounters collector and its sinks on a prepared sysfs tree, for what this machine has no
// hardware for: SCSI disks (no scsi_debug module here), btrfs members with nonzero error stats,
// and kernels without error_stats or devinfo. The layout is the kernel's:
//   /sys/block/sdX -> ../devices/.../host0/target0:0:0/0:0:0:0/block/sdX, device -> ../../../0:0:0:0
//     with iodone_cnt, ioerr_cnt, iotmo_cnt printed "0x%llx\n" (drivers/scsi/scsi_sysfs.c,
//     the show_sdev_iostat() macro: snprintf(buf, 20, "0x%llx\n", atomic_read(&sdev->field)));
//     this machine has neither SCSI disks nor modules, so the tree is written by hand
//   /sys/fs/ext4/<dev>/errors_count, first_error_* / last_error_* (fs/ext4/sysfs.c)
//   /sys/fs/btrfs/<fsid>/devices/<name>, devinfo/<devid>/error_stats (fs/btrfs/sysfs.c, 5.14 on)
// History is a real HistoryStore holding kernel-log rows as the kmsg collector writes them.
import test from "ava";
import { buildAreas, type Latest } from "../agent/status/areas.js";
import { diagnose, stepOf } from "../agent/status/diagnose.js";
import { loadConfig } from "../core/config/load.js";
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Registry } from "prom-client";
import { ErrcountersCollector } from "../collectors/errcounters/collector.js";
import type { ErrcountersObservation } from "../collectors/errcounters/observation.js";
import { errcountersSinks } from "../collectors/errcounters/sink.js";
import type { KmsgObservation } from "../collectors/kmsg/observation.js";
import { kernelLogSeen, kmsgSinks } from "../collectors/kmsg/sink.js";
import type { EventInput } from "../core/history/store.js";
import { COLLECTOR_JUDGE } from "../judge/index.js";
import { tempDir } from "./helpers/agent-process.js";
import { sample } from "./helpers/faults.js";
import { historyIn } from "./helpers/quiet.js";

const INFO_LAST =
  'stemedb_agent_filesystem_error_info{device="sda1",mountpoint="/",which="last",' +
  'function="ext4_validate_block_bitmap"}';
const FSID = "0f0e0d0c-0b0a-4909-8807-060504030201";
const SOLO = "11111111-2222-4333-8444-555555555555";
const OLD = "99999999-2222-4333-8444-555555555555";

function write(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

function tree() {
  const { dir, cleanup } = tempDir("sa-errc-");
  const sys = join(dir, "sys");
  const dev = join(dir, "dev");
  mkdirSync(dev);
  const host = join(sys, "devices/pci0000:00/0000:00:1f.2/ata1/host0");
  const disk = (name: string, lun: string, major: number, minor: number, parts: string[] = []) => {
    const sdev = join(host, `target${lun.split(":").slice(0, 3).join(":")}`, lun);
    const node = join(sdev, "block", name);
    write(join(node, "dev"), `${major}:${minor}\n`);
    symlinkSync(`../../../${lun}`, join(node, "device"));
    mkdirSync(join(sys, "block"), { recursive: true });
    mkdirSync(join(sys, "class/block"), { recursive: true });
    mkdirSync(join(sys, "dev/block"), { recursive: true });
    symlinkSync(node, join(sys, "block", name));
    symlinkSync(node, join(sys, "class/block", name));
    symlinkSync(node, join(sys, "dev/block", `${major}:${minor}`));
    parts.forEach((p, i) => {
      write(join(node, p, "partition"), `${i + 1}\n`);
      symlinkSync(join(node, p), join(sys, "class/block", p));
      symlinkSync(join(node, p), join(sys, "dev/block", `${major}:${minor + i + 1}`));
    });
    return sdev;
  };
  const scsi = (sdev: string, done: string, err: string, tmo: string) => {
    write(join(sdev, "iodone_cnt"), done);
    write(join(sdev, "ioerr_cnt"), err);
    write(join(sdev, "iotmo_cnt"), tmo);
  };
  const sda = disk("sda", "0:0:0:0", 8, 0, ["sda1"]);
  scsi(sda, "0x1b3e\n", "0x3\n", "0x0\n");
  scsi(disk("sdb", "1:0:0:0", 8, 16), "0x10\n", "zz\n", "0x0\n"); // garbage: left out, said
  for (const [n, l, m] of [
    ["sdc", "2:0:0:0", 32],
    ["sdd", "3:0:0:0", 48],
    ["sde", "4:0:0:0", 64],
    ["sdf", "5:0:0:0", 80],
  ] as const)
    scsi(disk(n, l, 8, m), "0x0\n", "0x0\n", "0x0\n");
  // An NVMe disk: no SCSI counters, not a SCSI disk.
  const nvme = join(sys, "devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1");
  write(join(nvme, "dev"), "259:0\n");
  symlinkSync(nvme, join(sys, "block", "nvme0n1"));

  const ext4 = join(sys, "fs/ext4/sda1");
  const ext4Files = (errors: number, lastTime: number) => {
    write(join(ext4, "errors_count"), `${errors}\n`);
    write(join(ext4, "first_error_time"), "1700000000\n");
    write(join(ext4, "first_error_func"), "ext4_lookup\n");
    write(join(ext4, "first_error_line"), "1813\n");
    write(join(ext4, "first_error_ino"), "12\n");
    write(join(ext4, "first_error_block"), "0\n");
    write(join(ext4, "first_error_errcode"), "117\n");
    write(join(ext4, "last_error_time"), `${lastTime}\n`);
    write(join(ext4, "last_error_func"), "ext4_validate_block_bitmap\n");
    write(join(ext4, "last_error_line"), "421\n");
    write(join(ext4, "last_error_ino"), "0\n");
    write(join(ext4, "last_error_block"), "32768\n");
    write(join(ext4, "last_error_errcode"), "117\n");
  };
  ext4Files(2, 1700000100);

  const btrfs = join(sys, "fs/btrfs");
  const stats = (fsid: string, devid: number, s: string) =>
    write(join(btrfs, fsid, "devinfo", String(devid), "error_stats"), s);
  const zero = "write_errs 0\nread_errs 0\nflush_errs 0\ncorruption_errs 0\ngeneration_errs 0\n";
  for (const m of ["sdc", "sdd"]) mkdirSync(join(btrfs, FSID, "devices", m), { recursive: true });
  stats(FSID, 1, zero);
  stats(FSID, 2, zero.replace("read_errs 0", "read_errs 4"));
  mkdirSync(join(btrfs, SOLO, "devices", "sde"), { recursive: true });
  stats(SOLO, 1, zero.replace("corruption_errs 0", "corruption_errs 2"));
  // A 5.4 kernel: no devinfo at all.
  mkdirSync(join(btrfs, OLD, "devices", "sdf"), { recursive: true });
  mkdirSync(join(btrfs, "features"), { recursive: true });

  const proc = join(dir, "proc");
  write(
    join(proc, "self/mountinfo"),
    [
      "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw,errors=continue",
      "23 22 0:30 / /data rw,relatime - btrfs /dev/sdc rw,space_cache=v2",
      "24 22 0:31 / /solo rw,relatime - btrfs /dev/sde rw",
      "25 22 0:32 / /old rw,relatime - btrfs /dev/sdf rw",
      "26 22 0:30 /sub /data/sub rw,relatime - btrfs /dev/sdc rw", // a subvolume: same filesystem
      "27 22 8:1 /srv /bind rw,relatime - ext4 /dev/sda1 rw", // a bind mount: same filesystem
      "28 22 0:5 / /dev rw - devtmpfs udev rw",
    ].join("\n") + "\n",
  );
  return { dir, sys, dev, proc, sda, ext4, ext4Files, btrfs, stats, cleanup };
}

function setup(t: { teardown(fn: () => void): void }) {
  const tr = tree();
  const h = historyIn(join(tr.dir, "state"));
  t.teardown(() => {
    h.close();
    tr.cleanup();
  });
  const registry = new Registry();
  const sinks = errcountersSinks(registry, COLLECTOR_JUDGE);
  const collector = new ErrcountersCollector({
    procPath: tr.proc,
    sysPath: tr.sys,
    devPath: tr.dev,
    firstPaths: ["/data/wal"],
    logWindowMs: 1000,
    settleMs: 0,
    crossCheckOff: null,
    kernelLog: kernelLogSeen(h),
  });
  const events: EventInput[] = [];
  const signal = new AbortController().signal;
  const run = async (): Promise<ErrcountersObservation> => {
    const o = await collector.collect({ signal });
    sinks.observation.metrics?.(o);
    events.push(...(sinks.observation.events?.(o) ?? []));
    return o;
  };
  return { tr, h, registry, run, events };
}

test("SCSI disks, ext4, btrfs members and an old btrfs from a prepared tree", async (t) => {
  const { registry, run, events } = setup(t);
  const o = await run();
  t.deepEqual(
    o.scsi.map((d) => [d.device, d.done, d.errors, d.timeouts]),
    [
      ["sda", 0x1b3e, 3, 0],
      ["sdc", 0, 0, 0],
      ["sdd", 0, 0, 0],
      ["sde", 0, 0, 0],
      ["sdf", 0, 0, 0],
    ],
    "sdb (garbage) and nvme0n1 (no SCSI counters) are not SCSI figures",
  );
  t.true(o.notes.some((n) => n.startsWith("sdb: SCSI counters unreadable") && n.includes('"zz')));
  t.deepEqual(o.ext4.length, 1, "a bind mount is the same filesystem");
  t.like(o.ext4[0], {
    device: "sda1",
    disk: "sda",
    mountpoint: "/",
    errors: 2,
    first: {
      time_s: 1700000000,
      func: "ext4_lookup",
      line: 1813,
      ino: 12,
      block: null,
      errcode: 117,
    },
    last: { time_s: 1700000100, func: "ext4_validate_block_bitmap", block: 32768 },
  });
  // The WAL's filesystem first; members sysfs does not name (no /dev here) by devid.
  const figure = (b: (typeof o.btrfs)[number]) =>
    "stats" in b.counters ? b.counters.stats.read + b.counters.stats.corruption : "unavailable";
  t.deepEqual(
    o.btrfs.map((b) => [b.mountpoint, b.devid, b.device, figure(b)]),
    [
      ["/data", 1, null, 0],
      ["/data", 2, null, 4],
      ["/old", null, null, "unavailable"],
      ["/solo", 1, "sde", 2],
    ],
  );
  const old = o.btrfs[2]?.counters;
  t.regex(old && "unavailable" in old ? old.unavailable : "", /devinfo \(kernel before 5\.9\)$/);
  const text = await registry.metrics();
  t.is(sample(text, 'stemedb_agent_scsi_commands_completed_total{device="sda"}'), 6974);
  t.is(sample(text, 'stemedb_agent_scsi_command_errors_total{device="sda"}'), 3);
  t.is(sample(text, 'stemedb_agent_scsi_command_errors_total{device="sdb"}'), undefined);
  t.is(
    sample(
      text,
      'stemedb_agent_filesystem_errors_total{device="sda1",mountpoint="/",fstype="ext4"}',
    ),
    2,
  );
  t.is(
    sample(
      text,
      'stemedb_agent_filesystem_error_time_seconds{device="sda1",mountpoint="/",which="last"}',
    ),
    1700000100,
  );
  t.is(sample(text, INFO_LAST), 1);
  t.is(
    sample(
      text,
      'stemedb_agent_btrfs_device_errors_total{device="devid 2",mountpoint="/data",kind="read"}',
    ),
    4,
  );
  t.is(
    sample(
      text,
      'stemedb_agent_btrfs_device_errors_total{device="sde",mountpoint="/solo",kind="corruption"}',
    ),
    2,
  );
  // First sight: errors on record are a condition, said once; rises there are none (baseline).
  t.deepEqual(
    events.map((e) => [e.kind, e.subject]),
    [
      ["errors_on_record", "sda1"],
      ["errors_on_record", "devid 2"],
      ["errors_on_record", "sde"],
    ],
  );
  t.deepEqual(o.rises, []);
});

test("rises: events, counters that follow the kernel's, and the kernel log's say", async (t) => {
  const { tr, h, registry, run, events } = setup(t);
  await run();
  events.length = 0;
  // ext4 records two more errors; sdd's read errors rise; sda's SCSI error count rises.
  tr.ext4Files(4, 1700000200);
  tr.stats(
    FSID,
    2,
    "write_errs 0\nread_errs 6\nflush_errs 0\ncorruption_errs 0\ngeneration_errs 0\n",
  );
  writeFileSync(join(tr.sda, "ioerr_cnt"), "0x5\n");
  const o = await run();
  t.deepEqual(
    o.rises.map((r) => [r.counter, r.device, r.from, r.to, r.logged]),
    [
      ["scsi_ioerr", "sda", 3, 5, false],
      ["ext4_errors", "sda1", 2, 4, true],
      ["btrfs_read", "devid 2", 4, 6, true],
    ],
  );
  t.is(o.pending, 1, "the ext4 rise waits; devid 2 has no known disk: not checked");
  // The kernel log has the ext4 line on sda (the whole disk, as kmsg names it), nothing on sdd,
  // recorded 4.5 s before the first sample: inside this rise's window (from 5 s before it) and
  // out of the next rise's, which opens 5 s before a sample more than a second later.
  const since = o.rises[1]?.sinceMs ?? 0;
  h.event({
    ts: since - 4_500,
    class: "kernel",
    kind: "ext4_error",
    severity: "crit",
    subject: "sda",
    message: "EXT4-fs error",
  });
  h.flush();
  t.deepEqual(
    events.map((e) => [e.kind, e.severity, e.subject]),
    [
      ["scsi_ioerr", "info", "sda"],
      ["ext4_errors", "crit", "sda1"],
      ["btrfs_read", "warn", "devid 2"],
    ],
  );
  t.regex(
    String(events[1]?.message),
    new RegExp(
      "^ext4_errors on sda1 \\(/\\) rose 2 -> 4 between .* last error: ext4_validate_block_bitmap " +
        "at 2023-11-14 22:16:40 UTC, line 421, block 32768, errno 117$",
    ),
  );
  const text = await registry.metrics();
  t.is(sample(text, 'stemedb_agent_scsi_command_errors_total{device="sda"}'), 5);
  t.is(
    sample(
      text,
      'stemedb_agent_filesystem_errors_total{device="sda1",mountpoint="/",fstype="ext4"}',
    ),
    4,
  );
  t.is(
    sample(
      text,
      'stemedb_agent_btrfs_device_errors_total{device="devid 2",mountpoint="/data",kind="read"}',
    ),
    6,
  );
  // Past the window: the ext4 line accounts for the rise, no finding.
  await new Promise((r) => setTimeout(r, 1100));
  events.length = 0;
  const later = await run();
  t.is(later.checks.length, 1);
  t.like(later.checks[0], { lines: 1, rise: { device: "sda1", disk: "sda" } });
  t.deepEqual(events, []);
  t.is(
    sample(
      await registry.metrics(),
      'stemedb_agent_kernel_log_missing_total{device="sda1",counter="ext4_errors"}',
    ),
    undefined,
  );

  // Another rise, and this time the kernel log says nothing on sda (but lost 3 records).
  tr.ext4Files(5, 1700000300);
  h.event({
    class: "kernel",
    kind: "kernel_log.lost",
    severity: "warn",
    message:
      "3 kernel log records were overwritten before they could be read; fault counts are lower bounds",
  });
  h.flush();
  await run();
  await new Promise((r) => setTimeout(r, 1100));
  events.length = 0;
  const judged = await run();
  t.like(judged.checks[0], { lines: 0, lost: 3, rise: { from: 4, to: 5 } });
  t.deepEqual(
    events.map((e) => [e.kind, e.severity, e.subject]),
    [["kernel_log.missing", "warn", "sda1"]],
  );
  t.regex(
    String(events[0]?.message),
    /and the kernel log has no line on sda from .*: the kernel log lost 3 records in that window/,
  );
  t.is(
    sample(
      await registry.metrics(),
      'stemedb_agent_kernel_log_missing_total{device="sda1",counter="ext4_errors"}',
    ),
    1,
  );
});

test("files that vanish between samples: the device is left out and its series go", async (t) => {
  const { tr, registry, run } = setup(t);
  await run();
  rmSync(join(tr.sda, "iotmo_cnt"));
  rmSync(join(tr.ext4, "errors_count"));
  rmSync(join(tr.btrfs, SOLO, "devinfo/1/error_stats"));
  const o = await run();
  t.false(o.scsi.some((d) => d.device === "sda"));
  t.true(
    o.notes.some((n) => n.startsWith("sda: SCSI counters unreadable") && n.includes("missing")),
  );
  t.deepEqual(o.ext4, []);
  t.true(o.notes.some((n) => n.startsWith("ext4 sda1: errors_count missing")));
  const solo = o.btrfs.find((b) => b.mountpoint === "/solo");
  t.deepEqual(solo?.counters, { unavailable: "no error_stats (kernel before 5.14)" });
  const text = await registry.metrics();
  t.is(sample(text, 'stemedb_agent_scsi_command_errors_total{device="sda"}'), undefined);
  t.is(
    sample(
      text,
      'stemedb_agent_filesystem_errors_total{device="sda1",mountpoint="/",fstype="ext4"}',
    ),
    undefined,
  );
  t.is(sample(text, INFO_LAST), undefined);
  t.is(
    sample(
      text,
      'stemedb_agent_btrfs_device_errors_total{device="sde",mountpoint="/solo",kind="corruption"}',
    ),
    undefined,
  );
  // A huge attribute is read only up to its bound, and is then not a counter.
  writeFileSync(join(tr.sda, "iotmo_cnt"), "0x1".padEnd(1 << 20, "f"));
  const big = await run();
  t.false(big.scsi.some((d) => d.device === "sda"));
});

test("the caps: at most MAX_FILESYSTEMS filesystems, the WAL's first; the rest counted", async (t) => {
  const { tr, run } = setup(t);
  const lines = Array.from(
    { length: 40 },
    (_, i) => `${100 + i} 22 8:1 / /m${String(i).padStart(2, "0")} rw - xfs /dev/sda1 rw`,
  );
  // xfs on sda1 forty times is one filesystem; forty xfs on distinct devices need dev entries.
  for (let i = 0; i < 40; i++) {
    const node = join(tr.sys, "devices/virtual/block", `loop${i}`);
    write(join(node, "dev"), `7:${i}\n`);
    symlinkSync(node, join(tr.sys, "dev/block", `7:${i}`));
    lines[i] = `${100 + i} 22 7:${i} / /m${String(i).padStart(2, "0")} rw - xfs /dev/loop${i} rw`;
  }
  writeFileSync(
    join(tr.proc, "self/mountinfo"),
    `23 22 0:30 / /data rw - btrfs /dev/sdc rw\n${lines.join("\n")}\n`,
  );
  const o = await run();
  t.is(o.btrfs[0]?.mountpoint, "/data", "the WAL's filesystem is never the one left out");
  t.is(o.xfs.length, 31);
  t.is(o.omitted.filesystems, 9);
});

test("the kmsg collector's record as errcounters reads it: lines per disk, lost, suppressed", (t) => {
  const { dir, cleanup } = tempDir("sa-errc-h-");
  const h = historyIn(join(dir, "state"));
  t.teardown(() => {
    h.close();
    cleanup();
  });
  // Through kmsg's own sinks: an ext4 line on loop3, 2 lost records, 4 suppressed messages.
  const sinks = kmsgSinks(new Registry());
  const o: KmsgObservation = {
    source: "kmsg",
    records: 3,
    faults: [
      {
        seq: 1,
        class: "ext4_error",
        severity: "crit",
        device: "loop3",
        logical: null,
        count: 1,
        line: "EXT4-fs error (device loop3): trigger_test_error:129: comm sh: x",
        atMs: 1,
      },
    ],
    lost: 2,
    suppressed: 4,
    resume: null,
  };
  const from = Date.now();
  sinks.observation.metrics?.(o);
  for (const e of sinks.observation.events?.(o) ?? []) h.event(e);
  h.flush();
  const seen = kernelLogSeen(h);
  if (!seen) return t.fail("no query");
  t.deepEqual(seen("loop3", from - 1000, Date.now() + 1000), { lines: 1, lost: 2, suppressed: 4 });
  t.deepEqual(seen("loop4", from - 1000, Date.now() + 1000), { lines: 0, lost: 2, suppressed: 4 });
  t.deepEqual(seen("loop3", from - 60_000, from - 1000), { lines: 0, lost: 0, suppressed: 0 });
  t.is(kernelLogSeen(null), null, "--once: no history, no record");
});

test("status and diagnose: errors on record warn, a rise today is crit, a missing line is said", async (t) => {
  const { h, run } = setup(t);
  const o = await run();
  const cfg = (() => {
    const r = loadConfig({ env: {}, defaultFile: "/nonexistent" });
    if (!r.ok) throw new Error(r.problems.join("\n"));
    return r.loaded.config;
  })();
  const latest = (obs: ErrcountersObservation): Latest => ({
    get: <T>(name: string) =>
      name === "errcounters" ? { at: Date.now(), observation: obs as T } : undefined,
  });
  const kernelArea = () =>
    buildAreas(cfg, latest(o), h, { verdict: "healthy", reasons: [] }).find(
      (a) => a.area === "kernel",
    );
  // Errors long on record (sda1's 2, devid 2's 4 reads, sde's 2 corruptions), no rise: warn.
  const before = kernelArea();
  t.is(before?.verdict, "warn");
  t.regex(before?.summary ?? "", /^ext4 on sda1 \(\/\): 2 errors since its last fsck; last: /);
  t.true(
    before?.details.some((d) => d.startsWith("btrfs member sde of /solo: 2 corruption errors")),
  );
  t.true(before?.details.includes("no storage errors in the kernel log in the last 24 h"));
  // A rise today on sda1 and a rise the log had no line for: crit, and said.
  h.event({
    class: "errcounter",
    kind: "ext4_errors",
    severity: "crit",
    subject: "sda1",
    message: "x",
  });
  h.event({
    class: "errcounter",
    kind: "kernel_log.missing",
    severity: "warn",
    subject: "sda1",
    message: "ext4_errors on sda1 (/) rose 2 -> 3 ..., and the kernel log has no line on sda",
  });
  h.flush();
  const after = kernelArea();
  t.is(after?.verdict, "crit");
  t.regex(after?.summary ?? "", /2 errors since its last fsck, rising today/);
  t.true(
    after?.details.some((d) => d.startsWith("kernel log missing a line: ext4_errors on sda1")),
  );
  const step = stepOf(diagnose(cfg, latest(o), h, Date.now()), "storage-errors", 6);
  t.is(step?.verdict, "crit");
  t.regex(step?.step ?? "", /the kernel's error counters/);
});
