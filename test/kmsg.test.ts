// The kernel log follower against the real /dev/kmsg. Needs root; userspace writes are made
// unthrottled by setting kernel.printk_devkmsg=on for the run (restored after).
import { execFileSync, spawnSync } from "node:child_process";
import {
  closeSync,
  constants,
  mkdirSync,
  openSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import test from "ava";
import { Registry } from "prom-client";
import { loadConfig } from "../core/config/load.js";
import { HistoryStore } from "../core/history/store.js";
import { buildAreas } from "../agent/status/areas.js";
import { diagnose, stepOf } from "../agent/status/diagnose.js";
import { classify } from "../collectors/kmsg/classify.js";
import { KmsgCollector, parseJournalLine } from "../collectors/kmsg/collector.js";
import { kmsgSinks } from "../collectors/kmsg/sink.js";
import type { KmsgObservation } from "../collectors/kmsg/observation.js";
import { DeviceResolver } from "../collectors/kmsg/resolve.js";
import { fetchText, hasCommand, isRoot, startAgent, tempDir } from "./helpers/agent-process.js";
import { makeLoopFs } from "./helpers/loop.js";
import { historyIn, quietLog, routed, sleep } from "./helpers/quiet.js";
import { exclusive, holdSysctl } from "./helpers/sysctl.js";
import { withHistoryFile } from "./helpers/history-file.js";

// The kernel ring buffer is shared: this file and faults-sigkill (which reads records back after
// each restart) must not write to /dev/kmsg at the same time.
let release: Array<() => void> = [];
test.before(async () => {
  if (isRoot)
    release = [await exclusive("kmsg-ring"), holdSysctl("/proc/sys/kernel/printk_devkmsg", "on")];
});
test.after.always(() => release.reverse().forEach((r) => r()));

/** Writes lines into the kernel log as userspace (facility user), one record each. */
function inject(lines: string[]): void {
  const fd = openSync("/dev/kmsg", "w");
  try {
    // without the newline the kernel holds the record open for a continuation
    for (const l of lines) writeSync(fd, `<3>${l}\n`);
  } finally {
    closeSync(fd);
  }
}

function follower(facilities: string[], history: HistoryStore | null = null) {
  const registry = new Registry();
  const {
    col: collector,
    route,
    once,
  } = routed(
    kmsgSinks(registry),
    history,
    () =>
      new KmsgCollector({
        kmsgPath: "/dev/kmsg",
        procPath: "/proc",
        sysPath: "/sys",
        facilities,
        state: history,
        log: quietLog,
        once: false,
      }),
  );
  // Closing the follower closes its route too: what was pending (summaries, incidents) is written.
  const col = {
    close: () => {
      collector.close();
      route.close();
    },
  };
  return { col, registry, once };
}

/** A disk name nobody has ("sdq" + five letters), so partitions of it normalise like real ones. */
const tag = () =>
  `sdq${Array.from({ length: 5 }, () => String.fromCharCode(97 + Math.floor(Math.random() * 26))).join("")}`;
const faultsOn = (o: KmsgObservation, dev: string) => o.faults.filter((f) => f.device === dev);
const cfg = () => {
  const r = loadConfig({ env: {}, defaultFile: "/nonexistent" });
  if (!r.ok) throw new Error(r.problems.join("\n"));
  return r.loaded.config;
};

test.serial(
  "records written into /dev/kmsg are counted per device and class when their facility is allowed",
  async (t) => {
    if (!isRoot) return t.pass("skipped: needs root to write /dev/kmsg");
    const dev = tag();
    const { once, col, registry } = follower(["kern", "user"]);
    t.teardown(() => col.close());
    await once(); // catch up with what is already there
    inject([
      `I/O error, dev ${dev}, sector 18434 op 0x1:(WRITE) flags 0x800 phys_seg 16 prio class 2`,
      `Buffer I/O error on dev ${dev}1, logical block 16385, lost sync page write`,
      `critical medium error, dev ${dev}, sector 0 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2`,
      "blk_print_req_error: 7 callbacks suppressed",
    ]);
    const o = await once();
    t.deepEqual(
      faultsOn(o, dev).map((f) => [f.class, f.logical]),
      [
        ["blk_io_error", null],
        ["buffer_io_error", `${dev}1`],
        ["blk_medium_error", null],
      ],
    );
    const text = await registry.metrics();
    t.regex(
      text,
      new RegExp(
        `stemedb_agent_kernel_io_errors_total\\{device="${dev}",class="buffer_io_error"\\} 1`,
      ),
    );
    t.true(o.suppressed >= 7);
  },
);

test.serial(
  "by default only kernel-facility records count: userspace cannot fake a disk fault",
  async (t) => {
    if (!isRoot) return t.pass("skipped: needs root to write /dev/kmsg");
    const dev = tag();
    const { once, col } = follower(["kern"]);
    t.teardown(() => col.close());
    await once();
    inject([`I/O error, dev ${dev}, sector 1 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 2`]);
    const o = await once();
    t.true(o.records >= 1);
    t.deepEqual(faultsOn(o, dev), []);
  },
);

test.serial(
  "a restart in the middle neither re-counts nor misses (resume point committed with the events)",
  async (t) => {
    if (!isRoot) return t.pass("skipped: needs root to write /dev/kmsg");
    const dev = tag();
    const { dir } = tempDir();
    const open = () => historyIn(dir);
    const line = (i: number) =>
      `EXT4-fs error (device ${dev}): ext4_find_entry:1613: inode #${i}: comm cat: reading directory lblock 0`;
    const h1 = open();
    const a = follower(["kern", "user"], h1);
    await a.once();
    inject([line(1), line(2), line(3)]);
    const first = faultsOn(await a.once(), dev).length;
    a.col.close();
    h1.close(); // flushes events and the resume point together
    inject([line(4), line(5)]); // written while the agent is down
    const h2 = open();
    const b = follower(["kern", "user"], h2);
    const second = faultsOn(await b.once(), dev);
    b.col.close();
    h2.close();
    t.is(first, 3);
    t.deepEqual(
      second.map((f) => f.line.match(/inode #(\d)/)?.[1]),
      ["4", "5"],
      "only the records written while down",
    );
  },
);

test.serial("records overwritten before they were read (EPIPE) are counted as lost", async (t) => {
  if (!isRoot) return t.pass("skipped: needs root to write /dev/kmsg");
  const { once, col, registry } = follower(["kern"]);
  t.teardown(() => col.close());
  await once();
  // Far more than the ring buffer holds (128 KiB here): the oldest unread records are overwritten.
  const size =
    Number(
      spawnSync("sh", ["-c", "dmesg --buffer-size 2>/dev/null; true"]).stdout.toString().trim(),
    ) || 0;
  const n = Math.max(6000, Math.ceil((size || 262144) / 80) * 2);
  inject(Array.from({ length: n }, (_, i) => `flood line ${i} ${"x".repeat(40)}`));
  const o = await once();
  t.true(o.lost > 0, `lost ${o.lost} of ${n}`);
  t.regex(await registry.metrics(), /stemedb_agent_kernel_log_lost_records_total [1-9]\d*/);
});

test.serial(
  "genuine kernel I/O errors from a loop device whose backing filesystem is shut down are classified",
  async (t) => {
    if (!isRoot || !hasCommand("xfs_io") || !hasCommand("losetup"))
      return t.pass("skipped: needs root, losetup and xfs_io");
    const { dir } = tempDir();
    const outer = makeLoopFs(dir, { sizeMiB: 192 });
    t.teardown(() => outer.cleanup());
    const innerDir = join(outer.mnt, "inner");
    mkdirSync(innerDir);
    const inner = makeLoopFs(innerDir, { sizeMiB: 64 });
    t.teardown(() => inner.cleanup());
    const { once, col, registry } = follower(["kern"]);
    t.teardown(() => col.close());
    await once();
    writeFileSync(join(inner.mnt, "before"), "x".repeat(4096));
    spawnSync("sync");
    // the inner loop device's backing file becomes unwritable
    execFileSync("xfs_io", ["-x", "-c", "shutdown", outer.mnt]);
    spawnSync(
      "sh",
      [
        "-c",
        `dd if=/dev/urandom of=${join(inner.mnt, "after")} bs=64k count=32 conv=fsync 2>/dev/null; sync`,
      ],
      { timeout: 20_000 },
    );
    await sleep(500);
    const o = await once();
    const mine = faultsOn(o, inner.device);
    t.log(
      mine
        .map((f) => `${f.class}: ${f.line.slice(0, 100)}`)
        .slice(0, 8)
        .join("\n"),
    );
    t.true(
      mine.some((f) => f.class === "blk_io_error"),
      "block-layer I/O error on the inner loop device",
    );
    t.true(
      mine.some(
        (f) =>
          f.class === "buffer_io_error" ||
          f.class === "ext4_error" ||
          f.class === "fs_journal_abort",
      ),
      "and the filesystem's reaction",
    );
    t.regex(
      await registry.metrics(),
      new RegExp(
        `stemedb_agent_kernel_io_errors_total\\{device="${inner.device}",class="blk_io_error"\\} [1-9]`,
      ),
    );
  },
);

test.serial(
  "a storm of 10,000 fault records: every one counted, history rate-limited with a summary",
  async (t) => {
    if (!isRoot) return t.pass("skipped: needs root to write /dev/kmsg");
    const dev = tag();
    const { dir } = tempDir();
    const history = historyIn(dir);
    t.teardown(() => history.close());
    const { once, col, registry } = follower(["kern", "user"], history);
    t.teardown(() => col.close());
    await once();
    const heapBefore = process.memoryUsage().heapUsed;
    for (let batch = 0; batch < 20; batch++) {
      // 500 records (~55 KB) at a time stay well inside the kernel's 128 KiB ring buffer, even with
      // other tests' kernel messages arriving meanwhile, so none is lost.
      inject(
        Array.from(
          { length: 500 },
          (_, i) =>
            `Buffer I/O error on dev ${dev}, logical block ${batch * 500 + i}, lost sync page write`,
        ),
      );
      const o = await once();
      t.is(o.lost, 0);
    }
    const text = await registry.metrics();
    t.regex(
      text,
      new RegExp(
        `stemedb_agent_kernel_io_errors_total\\{device="${dev}",class="buffer_io_error"\\} 10000`,
      ),
      "counters are exact",
    );
    col.close(); // writes the summary of what was not stored one by one
    history.flush();
    // Per-record rows (class kernel); the storm's incidents are rows of class kernel_incident.
    const one = (sql: string): number =>
      Number(withHistoryFile(history, (db) => db.prepare(sql).pluck().get(dev)));
    const stored = one("SELECT count(*) FROM events WHERE class = 'kernel' AND subject = ?");
    t.true(stored <= 2 * 21, `history holds ${stored} rows for the storm, not 10,000`);
    const summaries = one(
      "SELECT count(*) FROM events WHERE class = 'kernel' AND subject = ? AND data LIKE '%suppressed_in_history%'",
    );
    const summarised = one(
      "SELECT coalesce(sum(json_extract(data, '$.suppressed_in_history')), " +
        "0) FROM events WHERE class = 'kernel' AND subject = ?",
    );
    t.true(
      one("SELECT count(*) FROM events WHERE class = 'kernel_incident' AND subject = ?") >= 1,
      "and the storm is an incident",
    );
    t.true(summaries >= 1);
    t.is(
      stored - summaries + summarised,
      10_000,
      "rows stored one by one plus the summarised counts add up to every record",
    );
    t.true(process.memoryUsage().heapUsed - heapBefore < 64 * 1024 * 1024, "memory stays bounded");
  },
);

test.serial(
  "one failed SCSI read on the real /dev/kmsg: four fault lines, one incident in the counter, status and diagnose",
  async (t) => {
    if (!isRoot) return t.pass("skipped: needs root to write /dev/kmsg");
    const dev = tag();
    const { dir } = tempDir();
    const history = historyIn(dir);
    t.teardown(() => history.close());
    // Only the user facility: kernel records from other tests' loop devices stay out of status.
    // A first follower reads what the ring already holds (earlier tests' lines), its rows are
    // dropped, and the second one resumes after them from the committed resume point.
    const first = follower(["user"], history);
    await first.once();
    first.col.close();
    history.flush();
    withHistoryFile(history, (db) => db.exec("DELETE FROM events"), { write: true });
    const { once, col, registry } = follower(["user"], history);
    t.teardown(() => col.close());
    await once();
    // As scsi_io_completion and blk_update_request print one failed READ (openebs/openebs#1433
    // shape); the FAILED and CDB lines are context, not faults.
    inject([
      `sd 9:0:0:7: [${dev}] tag#3 FAILED Result: hostbyte=DID_OK driverbyte=DRIVER_SENSE`,
      `sd 9:0:0:7: [${dev}] tag#3 Sense Key : Medium Error [current] `,
      `sd 9:0:0:7: [${dev}] tag#3 Add. Sense: Unrecovered read error`,
      `sd 9:0:0:7: [${dev}] tag#3 CDB: Read(10) 28 00 00 00 14 88 00 00 08 00`,
      `blk_update_request: critical medium error, dev ${dev}, sector 5256 op 0x0:(READ) flags 0x0 ` +
        `phys_seg 1 prio class 0`,
      `Buffer I/O error on dev ${dev}1, logical block 657, async page read`,
    ]);
    t.is(faultsOn(await once(), dev).length, 4, "four fault lines read");
    const incidents = async () =>
      (await registry.metrics())
        .split("\n")
        .filter((l) => l.startsWith(`stemedb_agent_kernel_io_incidents_total{device="${dev}"`));
    t.deepEqual(await incidents(), [], "still open: another line of it may come");
    await sleep(5_300); // the grouping window (5 s) passes with nothing read: the incident closes
    await once();
    const text = await registry.metrics();
    const lines = [
      ...text.matchAll(
        new RegExp(
          `^stemedb_agent_kernel_io_errors_total\\{device="${dev}",class="(\\w+)"\\} (\\d+)$`,
          "gm",
        ),
      ),
    ].map((m) => [m[1], Number(m[2])]);
    t.deepEqual(
      lines,
      [
        ["scsi_medium_error", 2],
        ["blk_medium_error", 1],
        ["buffer_io_error", 1],
      ],
      "the per-line counter counts four",
    );
    t.deepEqual(
      await incidents(),
      [`stemedb_agent_kernel_io_incidents_total{device="${dev}",severity="crit"} 1`],
      "the incidents counter one",
    );
    history.flush();
    const now = Date.now();
    const k = buildAreas(
      cfg(),
      { get: () => undefined },
      history,
      { verdict: "healthy", reasons: [] },
      now,
    ).find((a) => a.area === "kernel");
    t.is(
      k?.summary,
      `1 incident in 24 h, worst crit on ${dev} (scsi_medium_error, blk_medium_error, buffer_io_error)`,
    );
    t.is(k?.verdict, "crit");
    t.regex(
      k?.details[0] ?? "",
      new RegExp(
        `^crit on ${dev} at [\\d:]{8} UTC: scsi_medium_error x2, blk_medium_error, ` +
          `buffer_io_error \\(4 lines; sector 5256\\)$`,
      ),
    );
    t.is(k?.details.at(-1), "4 fault lines in the kernel log behind them");
    const step = stepOf(
      diagnose(cfg(), { get: () => undefined }, history, now),
      "storage-errors",
      1,
    );
    t.regex(
      step?.evidence ?? "",
      new RegExp(`^1 incident \\(4 fault lines\\): crit on ${dev} at `),
    );
  },
);

test.serial(
  "through the running agent: a record written to /dev/kmsg is in /metrics within a second",
  async (t) => {
    if (!isRoot) return t.pass("skipped: needs root to write /dev/kmsg");
    const dev = tag();
    const a = await startAgent({
      extraToml:
        `[collectors.kmsg]\nfacilities = ["kern", "user"]\n[collectors.diskstats]\nenabled = false\n` +
        `[collectors.smart]\nenabled = false\n[collectors.procio]\nenabled = false\n`,
    });
    t.teardown(() => a.stop("SIGKILL"));
    await sleep(500);
    inject([`I/O error, dev ${dev}, sector 8 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 2`]);
    const t0 = performance.now();
    let text = "";
    while (performance.now() - t0 < 1000 && !text.includes(`device="${dev}"`)) {
      await sleep(50);
      text = (await fetchText(`${a.url}/metrics`)).text;
    }
    t.regex(
      text,
      new RegExp(
        `stemedb_agent_kernel_io_errors_total\\{device="${dev}",class="blk_io_error"\\} 1`,
      ),
      "within a second",
    );
  },
);

test.serial(
  "a hung task names a device only when it is a kernel thread (any program can call itself jbd2/sdb1-8)",
  async (t) => {
    if (!isRoot) return t.pass("skipped: needs root to write /dev/kmsg");
    const dev = tag();
    const { once, col } = follower(["kern", "user"]);
    t.teardown(() => col.close());
    await once();
    // pid 2 is kthreadd, a kernel thread; this test process is not.
    inject([
      `INFO: task jbd2/${dev}1-8:2 blocked for more than 120 seconds.`,
      `INFO: task jbd2/${dev}2-8:${process.pid} blocked for more than 120 seconds.`,
    ]);
    const hung = (await once()).faults.filter(
      (f) => f.class === "hung_task" && f.line.includes(dev),
    );
    t.deepEqual(
      hung.map((f) => [f.device, f.logical]),
      [
        [dev, `${dev}1`],
        ["unknown", null],
      ],
    );
  },
);

test(
  "the follower hands record metadata to the classifier: DEVICE= decides the device (a FIFO stands in " +
    "for /dev/kmsg)",
  async (t) => {
    // User-space writes to /dev/kmsg carry no metadata; only the kernel's dev_printk does.
    if (!hasCommand("mkfifo")) return t.pass("skipped: no mkfifo");
    const { dir } = tempDir();
    const fifo = join(dir, "kmsg");
    execFileSync("mkfifo", [fifo]);
    const registry = new Registry();
    const { once, close } = routed(
      kmsgSinks(registry),
      null,
      () =>
        new KmsgCollector({
          kmsgPath: fifo,
          procPath: "/proc",
          sysPath: join(dir, "nosys"),
          facilities: ["kern"],
          state: null,
          log: quietLog,
          once: false,
        }),
    );
    t.teardown(close);
    await once(); // opens the read end
    const w = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    writeSync(
      w,
      "3,7,1,-;I/O error, dev vda, sector 8 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 0\n" +
        " SUBSYSTEM=block\n DEVICE=b8:16\n",
    );
    closeSync(w);
    const o = await once();
    t.deepEqual(
      o.faults.map((f) => f.device),
      ["8:16"],
      "the dev_t from metadata (no sysfs here), not the text's vda",
    );
  },
);

test(
  "the device resolver maps ATA ports, SCSI addresses, dev_t numbers and partitions through sysfs " +
    "(prepared tree), and caches",
  (t) => {
    const { dir } = tempDir();
    const sys = join(dir, "sys");
    const mk = (p: string) => mkdirSync(join(sys, p), { recursive: true });
    mk("devices/pci0/ata3/host2/target2:0:0/2:0:0:0/block/sdc/sdc1");
    writeFileSync(
      join(sys, "devices/pci0/ata3/host2/target2:0:0/2:0:0:0/block/sdc/sdc1/partition"),
      "1\n",
    );
    mk("block");
    symlinkSync(
      join(sys, "devices/pci0/ata3/host2/target2:0:0/2:0:0:0/block/sdc"),
      join(sys, "block/sdc"),
    );
    mk("class/block");
    symlinkSync(
      join(sys, "devices/pci0/ata3/host2/target2:0:0/2:0:0:0/block/sdc/sdc1"),
      join(sys, "class/block/sdc1"),
    );
    mk("class/scsi_device/2:0:0:0/device/block/sdc");
    mk("dev/block");
    symlinkSync(
      join(sys, "devices/pci0/ata3/host2/target2:0:0/2:0:0:0/block/sdc"),
      join(sys, "dev/block/8:32"),
    );
    const r = new DeviceResolver(sys);
    const res = (text: string) => {
      const c = classify(text);
      if (!c || "suppressed" in c) throw new Error(`not classified: ${text}`);
      return r.resolve(c);
    };
    t.deepEqual(res("ata3.00: exception Emask 0x0 SAct 0x1 SErr 0x0 action 0x0"), {
      disk: "sdc",
      logical: "ata3.00",
    });
    t.deepEqual(res("sd 2:0:0:0: rejecting I/O to offline device"), {
      disk: "sdc",
      logical: "scsi 2:0:0:0",
    });
    t.deepEqual(res("device-mapper: multipath: 253:2: Failing path 8:32."), {
      disk: "sdc",
      logical: "8:32",
    });
    t.deepEqual(res("Buffer I/O error on dev sdc1, logical block 7, lost sync page write"), {
      disk: "sdc",
      logical: "sdc1",
    });
    t.deepEqual(
      res("XFS (dm-3): log I/O error -5"),
      { disk: "dm-3", logical: null },
      "unknown to sysfs: the name as printed",
    );
    // Record metadata: a partition's dev_t names its disk; an nvme controller's char dev_t its name.
    symlinkSync(
      join(sys, "devices/pci0/ata3/host2/target2:0:0/2:0:0:0/block/sdc/sdc1"),
      join(sys, "dev/block/8:33"),
    );
    mk("devices/pci0/nvme/nvme0");
    mk("dev/char");
    symlinkSync(join(sys, "devices/pci0/nvme/nvme0"), join(sys, "dev/char/259:1"));
    const meta = (text: string, m: Record<string, string>) => {
      const c = classify(text, m);
      if (!c || "suppressed" in c) throw new Error(`not classified: ${text}`);
      return r.resolve(c);
    };
    t.deepEqual(
      meta("I/O error, dev vda, sector 8 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 0", {
        SUBSYSTEM: "block",
        DEVICE: "b8:33",
      }),
      { disk: "sdc", logical: "sdc1" },
      "metadata, not the text's vda",
    );
    t.deepEqual(
      meta("nvme nvme7: controller is down; will reset: CSTS=0x1", {
        SUBSYSTEM: "nvme",
        DEVICE: "c259:1",
      }),
      { disk: "nvme0", logical: null },
    );
    rmSync(join(sys, "class/scsi_device"), { recursive: true });
    t.deepEqual(
      res("sd 2:0:0:0: rejecting I/O to offline device"),
      { disk: "sdc", logical: "scsi 2:0:0:0" },
      "cached: a failing device vanishes from sysfs",
    );
  },
);

test(
  "the device resolver names /dev/mapper/NAME as its dm-N and 'cciss/c0d0p1' as sysfs spells it " +
    "(prepared tree)",
  (t) => {
    const { dir } = tempDir();
    const sys = join(dir, "sys");
    const mk = (p: string) => mkdirSync(join(sys, p), { recursive: true });
    mk("block");
    mk("class/block");
    // dm devices: /sys/block/dm-N -> devices/virtual/block/dm-N, with dm/name.
    for (const [dm, name] of [
      ["dm-1", "vg-wal_meta"],
      ["dm-3", "vg-data"],
      ["dm-10", "vg-wal"],
    ] as const) {
      mk(`devices/virtual/block/${dm}/dm`);
      writeFileSync(join(sys, `devices/virtual/block/${dm}/dm/name`), `${name}\n`);
      symlinkSync(join(sys, `devices/virtual/block/${dm}`), join(sys, `block/${dm}`));
    }
    // cciss and i2o disks: sysfs turns the kernel's '/' into '!'.
    for (const [disk, part] of [
      ["cciss!c0d0", "cciss!c0d0p1"],
      ["i2o!hda", "i2o!hda1"],
    ] as const) {
      const node = `devices/pci0/ctl/block/${disk}`;
      mk(`${node}/${part}`);
      writeFileSync(join(sys, `${node}/${part}/partition`), "1\n");
      symlinkSync(join(sys, node), join(sys, `block/${disk}`));
      symlinkSync(join(sys, node), join(sys, `class/block/${disk}`));
      symlinkSync(join(sys, `${node}/${part}`), join(sys, `class/block/${part}`));
    }
    const r = new DeviceResolver(sys);
    const res = (text: string) => {
      const c = classify(text);
      if (!c || "suppressed" in c) throw new Error(`not classified: ${text}`);
      return r.resolve(c);
    };
    const errs = "errs: wr 1, rd 0, flush 0, corrupt 0, gen 0";
    // A btrfs member named by path: charged to the dm-N diskstats labels, by exact name.
    t.deepEqual(res(`BTRFS error (device dm-3): bdev /dev/mapper/vg-wal ${errs}`), {
      disk: "dm-10",
      logical: "mapper/vg-wal",
    });
    t.deepEqual(res(`BTRFS error (device dm-10): bdev /dev/mapper/vg-data ${errs}`), {
      disk: "dm-3",
      logical: "mapper/vg-data",
    });
    t.deepEqual(
      res(`BTRFS error (device dm-3): bdev /dev/mapper/vg-gone ${errs}`),
      { disk: "mapper/vg-gone", logical: "mapper/vg-gone" },
      "no such dm name: as printed",
    );
    t.deepEqual(res(`BTRFS error (device dm-3): bdev /dev/dm-10 ${errs}`), {
      disk: "dm-10",
      logical: null,
    });
    t.deepEqual(
      res("Buffer I/O error on dev cciss/c0d0p1, logical block 7, lost sync page write"),
      {
        disk: "cciss!c0d0",
        logical: "cciss/c0d0p1",
      },
    );
    t.deepEqual(
      res("I/O error, dev cciss/c0d0, sector 8 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 0"),
      { disk: "cciss!c0d0", logical: null },
    );
    // No name rule knows i2o: only sysfs says hda1 is a partition of hda.
    t.deepEqual(res("Buffer I/O error on dev i2o/hda1, logical block 7, lost sync page write"), {
      disk: "i2o!hda",
      logical: "i2o/hda1",
    });
  },
);

test(
  "when /dev/kmsg cannot be opened the follower switches to journalctl -k -f -o json, " +
    "and reads its records",
  async (t) => {
    if (!hasCommand("journalctl")) return t.pass("skipped: journalctl not installed");
    const registry = new Registry();
    const { once, close } = routed(
      kmsgSinks(registry),
      null,
      () =>
        new KmsgCollector({
          kmsgPath: "/nonexistent/kmsg",
          procPath: "/proc",
          sysPath: "/sys",
          facilities: ["kern"],
          state: null,
          log: quietLog,
          once: false,
        }),
    );
    t.teardown(close);
    const o = await once();
    t.is(o.source, "journal");
    t.regex(await registry.metrics(), /stemedb_agent_kernel_log_source\{source="journal"\} 1/);
    // Journal entries as journald writes them for kernel records (no journald runs on this test machine).
    t.deepEqual(
      parseJournalLine(
        '{"__CURSOR":"s=abc;i=12","MESSAGE":"I/O error, dev sdb, sector 8 op 0x1:(WRITE) flags 0x0 ' +
          "phys_seg 1 prio class " +
          '2","PRIORITY":"3","SYSLOG_FACILITY":"0","_TRANSPORT":"kernel","_BOOT_ID":"5daeb7bc6bc54fdf8aa7' +
          '92aa8e44fe53"}',
      ),
      {
        facility: 0,
        level: 3,
        text: "I/O error, dev sdb, sector 8 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 2",
        cursor: "s=abc;i=12",
        meta: {},
      },
    );
    t.is(
      parseJournalLine('{"MESSAGE":[73,47,79],"SYSLOG_FACILITY":"0","PRIORITY":"3"}')?.text,
      "I/O",
      "binary MESSAGE arrays are decoded",
    );
    t.like(
      parseJournalLine(
        '{"MESSAGE":"testdisk: I/O error, dev sda, sector 0","SYSLOG_FACILITY":"1","PRIORITY":"3"}',
      ),
      { facility: 1 },
      "userspace-injected lines keep their facility, so they are filtered out",
    );
    t.like(
      parseJournalLine(
        '{"MESSAGE":"sd 2:0:0:0: [sda] Sense Key : Medium Error ' +
          '[current]","SYSLOG_FACILITY":"0","PRIORITY":"6","_KERNEL_SUBSYSTEM":"scsi","_KERNEL_DEVICE":"+' +
          'scsi:2:0:0:0"}',
      ),
      { meta: { SUBSYSTEM: "scsi", DEVICE: "+scsi:2:0:0:0" } },
      "journald's copy of the record metadata",
    );
    t.is(parseJournalLine("not json"), null);
  },
);
