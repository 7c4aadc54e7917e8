import { readFileSync } from "node:fs";
import test from "ava";
import {
  BLK_OP_SEVERITY,
  BLK_STATUS_NAMES,
  classify,
  isUserCrash,
  normaliseBlockName,
} from "../collectors/kmsg/classify.js";
import { parseRecord } from "../collectors/kmsg/record.js";

// [line, class (or null for no fault, or "suppressed:N"), device as printed, severity]
const TABLE: Array<[string, string | null, string | null, string | null]> = [
  // block layer, four eras
  [
    "I/O error, dev loop3, sector 18434 op 0x1:(WRITE) flags 0x800 phys_seg 16 prio class 2",
    "blk_io_error",
    "loop3",
    "crit",
  ],
  [
    "blk_update_request: I/O error, dev sda, sector 4096208 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 0",
    "blk_io_error",
    "sda",
    "error",
  ],
  ["print_req_error: I/O error, dev sdb, sector 54366448", "blk_io_error", "sdb", "error"],
  ["end_request: I/O error, dev sdb, sector 54366448", "blk_io_error", "sdb", "error"],
  [
    "critical medium error, dev nvme0n1, sector 0 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2",
    "blk_medium_error",
    "nvme0n1",
    "crit",
  ],
  [
    "blk_update_request: critical medium error, dev sdd, sector 123 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0",
    "blk_medium_error",
    "sdd",
    "crit",
  ],
  [
    "blk_update_request: critical target error, dev sdc, sector 2048 op 0x3:(DISCARD) flags 0x800 " +
      "phys_seg 1 prio class 0",
    "blk_target_error",
    "sdc",
    "warn",
  ],
  // Was "error": a write the target rejected is not retried on another path (blk_path_error): lost.
  [
    "critical target error, dev sdc, sector 2048 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 0",
    "blk_target_error",
    "sdc",
    "crit",
  ],
  [
    "timeout error, dev sdaa, sector 8 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0",
    "blk_timeout",
    "sdaa",
    "error",
  ],
  [
    "recoverable transport error, dev sdcg, sector 88 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 0",
    "blk_transport_error",
    "sdcg",
    "error",
  ],
  [
    "device offline error, dev sde, sector 0 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0",
    "blk_offline",
    "sde",
    "crit",
  ],
  [
    "I/O error, dev nvme0c0n1, sector 2048 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 0",
    "blk_io_error",
    "nvme0c0n1",
    "crit",
  ],
  [
    "I/O error, dev dm-0, sector 8 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0",
    "blk_io_error",
    "dm-0",
    "error",
  ],
  // buffer cache and writeback
  [
    "Buffer I/O error on dev loop3, logical block 16385, lost sync page write",
    "buffer_io_error",
    "loop3",
    "crit",
  ],
  ["Buffer I/O error on device loop3, logical block 9217", "buffer_io_error", "loop3", "error"],
  [
    "Buffer I/O error on dev sdb1, logical block 1039, lost async page write",
    "buffer_io_error",
    "sdb1",
    "crit",
  ],
  ["lost page write due to I/O error on md1", "buffer_io_error", "md1", "crit"],
  [
    "loop4: writeback error on inode 183, offset 0, sector 16936",
    "writeback_error",
    "loop4",
    "crit",
  ],
  // SCSI
  [
    "sd 2:0:0:0: [sda]  Sense Key : Medium Error [current] [descriptor]",
    "scsi_medium_error",
    "sda",
    "crit",
  ],
  [
    "sd 10:0:0:11: [sdcg] tag#600 Add. Sense: Unrecovered read error - auto reallocate failed",
    "scsi_medium_error",
    "sdcg",
    "crit",
  ],
  [
    "sd 3:0:0:0: [sdb] tag#12 Sense Key : Hardware Error [current]",
    "scsi_medium_error",
    "sdb",
    "crit",
  ],
  ["sd 14:0:0:0: rejecting I/O to offline device", "scsi_device_offline", "14:0:0:0", "crit"],
  [
    "sd 1:0:0:0: Device offlined - not ready after error recovery",
    "scsi_device_offline",
    "1:0:0:0",
    "crit",
  ],
  [
    "sd 2:0:0:0: [sda] tag#3 FAILED Result: hostbyte=DID_OK driverbyte=DRIVER_OK cmd_age=3s",
    null,
    null,
    null,
  ],
  ["sd 2:0:0:0: [sda] tag#3 CDB: Read(10) 28 00 00 00 08 00 00 00 08 00", null, null, null],
  // libata
  ["ata3.00: exception Emask 0x0 SAct 0x1 SErr 0x0 action 0x0", "ata_error", "ata3.00", "error"],
  ["ata3.00: error: { UNC }", "ata_error", "ata3.00", "crit"],
  ["ata1: hard resetting link", "ata_link_reset", "ata1", "warn"],
  ["ata3: SATA link down (SStatus 0 SControl 300)", "ata_link_reset", "ata3", "warn"],
  ["ata1: limiting SATA link speed to 3.0 Gbps", "ata_link_reset", "ata1", "warn"],
  ["ata1.00: configured for UDMA/133", null, null, null],
  // NVMe
  ["nvme nvme0: I/O 728 QID 6 timeout, aborting", "nvme_timeout", "nvme0", "warn"],
  [
    "nvme nvme0: I/O tag 4 (0004) QID 0 timeout, reset controller",
    "nvme_timeout",
    "nvme0",
    "error",
  ],
  [
    "nvme nvme1: I/O tag 0 (3000) opcode 0x1 (I/O Cmd) QID 1 timeout, aborting req_op:WRITE(1) size:131072",
    "nvme_timeout",
    "nvme1",
    "warn",
  ],
  [
    "nvme nvme0: controller is down; will reset: CSTS=0xffffffff, PCI_STATUS=0xffff",
    "nvme_controller_failure",
    "nvme0",
    "crit",
  ],
  [
    "nvme nvme2: Removing after probe failure status: -19",
    "nvme_controller_failure",
    "nvme2",
    "crit",
  ],
  [
    "nvme0n1: Read(0x2) @ LBA 1234, 8 blocks, Unrecovered Read Error (sct 0x2 / sc 0x81) DNR",
    "nvme_io_error",
    "nvme0n1",
    "crit",
  ],
  [
    "nvme0c0n1: I/O Cmd(0x2) @ LBA 16, 32 blocks, I/O Error (sct 0x3 / sc 0x71)",
    "nvme_io_error",
    "nvme0c0n1",
    "error",
  ],
  ["nvme nvme0: Abort status: 0x0", null, null, null],
  // ext4 / jbd2
  [
    "EXT4-fs error (device loop9): __ext4_find_entry:1613: inode #2: comm cat: reading directory lblock 0",
    "ext4_error",
    "loop9",
    "crit",
  ],
  [
    "EXT4-fs error (device sdb1) in ext4_reserve_inode_write:5747: Journal has aborted",
    "ext4_error",
    "sdb1",
    "crit",
  ],
  [
    "EXT4-fs warning (device loop3): ext4_end_bio:368: I/O error 10 writing to inode 63 starting block 9217)",
    "ext4_error",
    "loop3",
    "error",
  ],
  ["EXT4-fs (dm-2): Remounting filesystem read-only", "fs_readonly", "dm-2", "crit"],
  ["EXT4-fs (loop3): I/O error while writing superblock", "ext4_error", "loop3", "crit"],
  [
    "EXT4-fs (loop3): failed to convert unwritten extents to written extents -- potential data loss!  " +
      "(inode 63, error -5)",
    "ext4_error",
    "loop3",
    "crit",
  ],
  ["Aborting journal on device loop3-8.", "fs_journal_abort", "loop3", "crit"],
  [
    "JBD2: Detected IO errors while flushing file data on dm-2-8",
    "fs_journal_abort",
    "dm-2",
    "crit",
  ],
  [
    "JBD2: I/O error when updating journal superblock for loop3-8.",
    "fs_journal_abort",
    "loop3",
    "crit",
  ],
  // XFS
  [
    'XFS (loop10): metadata I/O error in "xfs_imap_to_bp+0x5c/0xe0" at daddr 0x80 len 32 error 5',
    "xfs_error",
    "loop10",
    "error",
  ],
  [
    'XFS (sdb1): metadata I/O error: block 0x1d1c2b8 ("xfs_trans_read_buf_map") error 5 numblks 8',
    "xfs_error",
    "sdb1",
    "error",
  ],
  ["XFS (dm-0): log I/O error -5", "xfs_error", "dm-0", "error"],
  ["XFS (sda4): Corruption detected. Unmount and run xfs_repair", "xfs_error", "sda4", "crit"],
  [
    "XFS (loop4): Filesystem has been shut down due to log error (0x2).",
    "xfs_shutdown",
    "loop4",
    "crit",
  ],
  [
    "XFS (loop10): Metadata I/O Error (0x1) detected at xfs_trans_read_buf_map+0x2a0/0x3a0 " +
      "(fs/xfs/xfs_trans_buf.c:311).  Shutting down filesystem.",
    "xfs_shutdown",
    "loop10",
    "crit",
  ],
  [
    "XFS (dm-4): xfs_do_force_shutdown(0x1) called from line 1788 of file fs/xfs/xfs_buf.c. " +
      " Return address = 0xffffffffc0362f4e",
    "xfs_shutdown",
    "dm-4",
    "crit",
  ],
  // btrfs
  [
    "BTRFS error (device loop5): bdev /dev/loop5 errs: wr 0, rd 1, flush 0, corrupt 4, gen 0",
    "btrfs_error",
    "loop5",
    "error",
  ],
  [
    "BTRFS warning (device loop0): csum failed root 5 ino 257 off 12288 csum 0x8941f998 expected csum " +
      "0x0d9cef8f mirror 1",
    "btrfs_error",
    "loop0",
    "error",
  ],
  [
    "BTRFS: error (device loop5 state A) in __btrfs_update_delayed_inode:1044: errno=-5 IO failure",
    "btrfs_error",
    "loop5",
    "crit",
  ],
  ["BTRFS info (device loop5 state EA): forced readonly", "fs_readonly", "loop5", "crit"],
  // md, dm, hung tasks
  [
    "md/raid:md0: Disk failure on sdb1, disabling device.\nmd/raid:md0: Operation continuing on 2 devices.",
    "md_disk_failure",
    "sdb1",
    "crit",
  ],
  [
    "md/raid1:md127: Disk failure on nvme1n1p3, disabling device.",
    "md_disk_failure",
    "nvme1n1p3",
    "crit",
  ],
  ["device-mapper: multipath: 253:2: Failing path 8:16.", "dm_path_failure", "8:16", "error"],
  ["INFO: task jbd2/sdb1-8:611 blocked for more than 120 seconds.", "hung_task", "sdb1", "warn"],
  ["INFO: task postgres:23817 blocked for more than 245 seconds.", "hung_task", null, "warn"],
  // the notes' negative and edge controls
  ["EXT4-fs (sda1): error count since last fsck: 7", null, null, null],
  [
    "BTRFS info (device sdb): bdev /dev/sdc errs: wr 0, rd 14, flush 0, corrupt 3, gen 0",
    null,
    null,
    null,
  ],
  ["blk_print_req_error: 98 callbacks suppressed", "suppressed:98", null, null],
  ["buffer_io_error: 4 callbacks suppressed", "suppressed:4", null, null],
  ["XFS (dm-2): Please unmount the filesystem and rectify the problem(s)", null, null, null],
  [
    "EXT4-fs (loop3): mounted filesystem f4865a74 r/w with ordered data mode. Quota mode: none.",
    null,
    null,
    null,
  ],
  ["loop3: detected capacity change from 0 to 131072", null, null, null],
  ["BTRFS info (device loop5): first mount of filesystem 1993aada", null, null, null],
  ["usb 1-1: new high-speed USB device number 2 using xhci_hcd", null, null, null],
];

test(`the classifier table: ${TABLE.length} lines of old and new kernel formats, and the negative controls`, (t) => {
  const rows: string[] = [];
  for (const [line, cls, dev, sev] of TABLE) {
    const got = classify(line);
    const gotCls =
      got === null ? null : "suppressed" in got ? `suppressed:${got.suppressed}` : got.class;
    const gotDev = got && !("suppressed" in got) ? got.device : null;
    const gotSev = got && !("suppressed" in got) ? got.severity : null;
    rows.push(
      `${(gotCls ?? "-").padEnd(24)} ${(gotDev ?? "-").padEnd(10)} ${(gotSev ?? "-").padEnd(5)} ${line.slice(0, 90)}`,
    );
    t.is(gotCls, cls, line);
    t.is(gotDev, dev, line);
    t.is<string | null, string | null>(gotSev, sev, line);
  }
  t.true(TABLE.length >= 40);
  t.log(`\n${rows.join("\n")}`);
});

test("device names normalise: partitions to disks, NVMe paths to namespaces", (t) => {
  const cases: Array<[string, string, string | null]> = [
    ["sdb1", "sdb", "sdb1"],
    ["sdaa3", "sdaa", "sdaa3"],
    ["nvme0n1p2", "nvme0n1", "nvme0n1p2"],
    ["nvme0c0n1", "nvme0n1", null],
    ["mmcblk0p1", "mmcblk0", "mmcblk0p1"],
    ["vda1", "vda", "vda1"],
    ["xvdf1", "xvdf", "xvdf1"],
    ["dm-0", "dm-0", null],
    ["md127", "md127", null],
    ["loop3", "loop3", null],
    ["sda", "sda", null],
  ];
  for (const [name, disk, part] of cases)
    t.deepEqual(normaliseBlockName(name), { disk, partition: part }, name);
});

test("records parse with facility, level, sequence, escapes and continuation lines", (t) => {
  t.like(parseRecord("3,4387,517531817,-;Aborting journal on device loop2-8."), {
    facility: 0,
    level: 3,
    seq: 4387,
    tsUsec: 517531817,
    text: "Aborting journal on device loop2-8.",
  });
  t.like(parseRecord("11,812,5123456789,-;I/O error, dev sda, sector 0"), {
    facility: 1,
    level: 3,
  });
  t.like(parseRecord("14,4560,1,-,caller=T123;testdisk: one\\x0atwo \\x5c end"), {
    facility: 1,
    level: 6,
    text: "testdisk: one\ntwo \\ end",
  });
  t.deepEqual(
    (
      parseRecord(
        "6,187,284523,-;acpi PNP0A08:00: _OSC\n SUBSYSTEM=acpi\n DEVICE=+acpi:PNP0A08:00\n",
      ) as { meta: unknown }
    ).meta,
    { SUBSYSTEM: "acpi", DEVICE: "+acpi:PNP0A08:00" },
  );
  for (const bad of ["", "garbage", "a,b,c,d;x", "1,2;x", "x".repeat(10000)])
    t.is(typeof parseRecord(bad), "string");
});

test("every storage fault in the real captures is classified, and the mount-time btrfs replay is not", (t) => {
  const lines = readFileSync(
    new URL("../../test/fixtures/kmsg/experiment_kmsg_raw.txt", import.meta.url),
    "utf8",
  )
    .split("\n")
    .filter((l) => /^\d+,/.test(l));
  const counts = new Map<string, number>();
  for (const l of lines) {
    const r = parseRecord(l);
    if (typeof r === "string") continue;
    const c = classify(r.text);
    if (c && !("suppressed" in c)) counts.set(c.class, (counts.get(c.class) ?? 0) + 1);
  }
  t.log(Object.fromEntries(counts));
  for (const cls of [
    "blk_io_error",
    "buffer_io_error",
    "ext4_error",
    "fs_journal_abort",
    "fs_readonly",
    "xfs_error",
    "xfs_shutdown",
    "btrfs_error",
  ])
    t.true((counts.get(cls) ?? 0) > 0, cls);
  const remount = readFileSync(
    new URL("../../test/fixtures/kmsg/btrfs_remount_kmsg.txt", import.meta.url),
    "utf8",
  )
    .split("\n")
    .filter((l) => l.includes("BTRFS info") && l.includes("errs:"));
  for (const l of remount) t.is(classify((parseRecord(l) as { text: string }).text), null, l);
});

// Issue 16: user space chooses a crash report's comm (15 bytes) and file name (255 bytes).
const FAULTS = TABLE.filter(([, cls]) => cls !== null && !cls.startsWith("suppressed")).map(
  ([line]) => line,
);
/** The kernel's crash report shapes (x86 segfault, traps, old kernels without "traps: ", arm64, riscv). */
const CRASH_SHAPES: Array<(comm: string, file: string) => string> = [
  (c, f) =>
    `${c}[4242]: segfault at 0 ip 0000556cdf019270 sp 00007ffcc65d0380 error 6 in ` +
    `${f}[1270,556cdf019000+1000] likely on CPU 1 (core 1, socket 0)`,
  (c, f) =>
    `${c}[4242]: segfault at 0 ip 0000556cdf019270 sp 00007ffcc65d0380 error 6 in ${f}[556cdf019000+1000]`,
  (c, f) =>
    `traps: ${c}[4242] general protection fault ip:55e4ed60120f sp:7ffd54578780 error:0 in ` +
    `${f}[120f,55e4ed601000+1000]`,
  (c, f) =>
    `traps: ${c}[4242] trap divide error ip:55c417372232 sp:7ffc4ecdfcf0 error:0 in ${f}[55c417372000+1000]`,
  (c, f) =>
    `traps: ${c}[4242] trap invalid opcode ip:56511f851269 sp:7fff4539ffe0 error:0 in ${f}[56511f851000+1000]`,
  (c, f) =>
    `${c}[4242] general protection ip:55e4ed60120f sp:7ffd54578780 error:0 in ${f}[55e4ed601000+1000]`,
  (c, f) =>
    `${c}[4242] trap int3 ip:55e4ed60120f sp:7ffd54578780 error:0 in ${f}[55e4ed601000+1000]`,
  (c, f) =>
    `${c}[4242]: unhandled exception: DABT (lower EL), ESR 0x92000046, ` +
    `level 0 translation fault in ${f}[aaaab2c10000+1000]`,
  (c, f) => `${c}[4242]: unhandled signal 11 code 0x1 at 0x0000000000000000 in ${f}[2aaab000+1000]`,
  (c, f) =>
    `umip: ${c}[4242] ip:55e4ed60120f sp:7ffd54578780: SGDT instruction cannot be used by applications. ${f}`,
];
/** comm is at most 15 bytes: either a harmless name, or the first 15 chars of a fault line. */
const comms = (line: string) => ["a.out", line.slice(0, 15), line.slice(0, 12)];

test(
  `crash reports with every fault pattern in their names classify as null (${FAULTS.length} lines x ` +
    `${CRASH_SHAPES.length} shapes x 3 comms)`,
  (t) => {
    let n = 0;
    for (const line of FAULTS) {
      for (const shape of CRASH_SHAPES) {
        for (const comm of comms(line)) {
          const text = shape(comm, line);
          t.true(isUserCrash(text), text);
          t.is(classify(text), null, text);
          n++;
        }
      }
    }
    // Without the program's name in front: the bare file-name tail of a split record.
    for (const line of FAULTS) t.is(classify(` in ${line}[1270,556cdf019000+1000]`), null, line);
    t.log(`${n} crafted crash lines, none counted`);
  },
);

test("the closing register dump and the fatal-signal line are never faults", (t) => {
  for (const l of [
    "potentially unexpected fatal signal 11.",
    "CPU: 0 UID: 65534 PID: 4242 Comm: I/O error, dev Not tainted 6.18.44 #1",
    "Code: Unable to access opcode bytes at 0x556cdf019246.",
    "RIP: 0033:0x556cdf019270",
  ])
    t.is(classify(l), null, l);
});

test("the block status is one of the kernel's blk_errors[] names, never free text", (t) => {
  for (const st of BLK_STATUS_NAMES)
    t.like(
      classify(`${st} error, dev sdb, sector 8 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0`),
      { device: "sdb" },
      st,
    );
  for (const st of [
    "x",
    "I/O foo",
    "crafted I/O",
    "",
    "Buffer I/O error on dev vda critical medium",
  ]) {
    t.is(
      classify(`${st} error, dev vda, sector 8 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 0`),
      null,
      st,
    );
    t.is(classify(`blk_update_request: ${st} error, dev vda, sector 8`), null, st);
  }
  t.is(
    classify(
      'audit: type=1701 audit(1.2:3): auid=4294967295 uid=65534 pid=42 comm="x" exe="/tmp/I/O error, ' +
        'dev vda, sector 8" sig=11 res=1',
    ),
    null,
  );
});

test("patterns hold only where the subsystem's message begins (tails of other lines, after a comm)", (t) => {
  const cases = [
    "sd 2:0:0:0: [sda] x Sense Key : Medium Error [current]",
    "sd 2:0:0:0: x rejecting I/O to offline device",
    "nvme nvme0: x I/O 1 QID 1 timeout, reset controller",
    "nvme nvme0: x controller is down; will reset: CSTS=0x1",
    "nvme0n1: x @ LBA 1, 8 blocks, I/O Error (sct 0x2 / sc 0x81)",
    "ata9: error: { x UNC }",
    "ata9: error: {[4242] drop_caches UNC }",
    "XFS (vda): x Shutting down filesystem",
    "XFS (vda): x Filesystem has been shut down",
    "XFS (vda): x Corruption detected. Unmount and run xfs_repair",
    "XFS (vda): x metadata I/O error in y",
    "BTRFS warning (device vda): checksum error at logical 1 (path: csum failed)",
    "BTRFS info (device vda): x forced readonly",
    "x I/O error, dev vda, sector 8 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 0",
    "x Buffer I/O error on dev vda, logical block 1, lost sync page write",
    "x EXT4-fs error (device vda): f:1: y",
    "x Aborting journal on device vda-8.",
    "x md/raid1:md0: Disk failure on vda1, disabling device.",
  ];
  for (const l of cases) t.is(classify(l), null, l);
  // A comm inside a real ext4 error cannot hide it.
  t.like(
    classify(
      "EXT4-fs error (device sdb1): ext4_lookup:1700: inode #2: comm last error at: deleted inode referenced: 12",
    ),
    { class: "ext4_error", device: "sdb1" },
  );
});

test(
  "record metadata decides the device: dev_t, SCSI address, nvme controller; " +
    "non-storage metadata is not a fault",
  (t) => {
    const blk = "I/O error, dev vda, sector 8 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 0";
    t.like(classify(blk, { SUBSYSTEM: "block", DEVICE: "b8:16" }), {
      class: "blk_io_error",
      device: "8:16",
      deviceKind: "devt",
    });
    t.like(classify(blk, {}), { device: "vda", deviceKind: "block" }, "no metadata: the text");
    t.like(classify(blk, { SUBSYSTEM: "block", DEVICE: "+block:sdc" }), {
      device: "sdc",
      deviceKind: "block",
    });
    t.is(classify(blk, { SUBSYSTEM: "net", DEVICE: "n3" }), null);
    t.is(classify(blk, { SUBSYSTEM: "usb", DEVICE: "+usb:1-1" }), null);
    t.is(classify(blk, { SUBSYSTEM: "tty", DEVICE: "c4:1" }), null, "a char device outside nvme");
    const sense = "sd 2:0:0:0: [sda] tag#3 Sense Key : Medium Error [current]";
    t.like(
      classify(sense, { SUBSYSTEM: "scsi", DEVICE: "+scsi:2:0:0:0" }),
      { device: "sda", deviceKind: "block" },
      "metadata agrees: the disk name stays",
    );
    t.like(
      classify(sense, { SUBSYSTEM: "scsi", DEVICE: "+scsi:3:0:0:1" }),
      { device: "3:0:0:1", deviceKind: "scsi" },
      "they disagree: metadata wins",
    );
    t.like(
      classify("sd 2:0:0:0: rejecting I/O to offline device", {
        SUBSYSTEM: "scsi",
        DEVICE: "+scsi:5:0:0:0",
      }),
      { device: "5:0:0:0", deviceKind: "scsi" },
    );
    t.like(
      classify("nvme nvme0: controller is down; will reset: CSTS=0xffffffff, PCI_STATUS=0xffff", {
        SUBSYSTEM: "nvme",
        DEVICE: "c259:1",
      }),
      { device: "259:1", deviceKind: "chardev" },
    );
    // Through the record parser, as read from /dev/kmsg.
    const rec = parseRecord(`3,99,1,-;${blk}\n SUBSYSTEM=block\n DEVICE=b259:0\n`) as {
      text: string;
      meta: Record<string, string>;
    };
    t.like(classify(rec.text, rec.meta), { device: "259:0", deviceKind: "devt" });
  },
);

test("the classifier stays fast with the crash check in front: >= 50 000 lines/s on a mixed storm", (t) => {
  const lines = [
    ...TABLE.map(([l]) => l),
    ...FAULTS.map((l) => CRASH_SHAPES[0]?.("a.out", l) ?? ""),
    "usb 1-1: new high-speed USB device number 2 using xhci_hcd",
  ];
  const n = 200_000;
  const t0 = performance.now();
  let hits = 0;
  for (let i = 0; i < n; i++) if (classify(lines[i % lines.length] as string) !== null) hits++;
  const perSec = n / ((performance.now() - t0) / 1000);
  t.log(`${Math.round(perSec)} lines/s (${hits} faults)`);
  t.true(perSec >= 50_000);
});

// Issue 17: real lines from public bug reports (source next to each), and look-alikes.
const PUBLIC = readFileSync(
  new URL("../../test/fixtures/kmsg/public_lines.tsv", import.meta.url),
  "utf8",
)
  .split("\n")
  .filter((l) => l !== "" && !l.startsWith("#"))
  .map((l) => l.split("\t") as [string, string, string, string, string]);

test(
  `public kernel lines: ${PUBLIC.length} lines from bug reports and look-alikes get an SRE's class, ` +
    `device and severity`,
  (t) => {
    const real = PUBLIC.filter(([, , , src]) => src.startsWith("https://"));
    t.true(real.length >= 60, `${real.length} quoted lines`);
    t.true(new Set(real.map(([, , , src]) => src)).size >= 20, "from many threads");
    const dash = (v: string) => (v === "-" ? null : v);
    for (const [cls, dev, sev, src, line] of PUBLIC) {
      const got = classify(line);
      const gotCls =
        got === null ? null : "suppressed" in got ? `suppressed:${got.suppressed}` : got.class;
      t.is(gotCls, dash(cls), `${line} (${src})`);
      if (got && !("suppressed" in got)) {
        t.is(got.device, dash(dev), `${line} (${src})`);
        t.is<string | null, string | null>(got.severity, dash(sev), `${line} (${src})`);
      }
    }
  },
);

test(
  "every op the block layer prints has a severity: a failed FLUSH or WRITE is crit (the WAL's " +
    "fsync failed)",
  (t) => {
    // blk_op_name[] across 4.x-6.x, and "UNKNOWN" (blk_op_str for anything else).
    const ops = [
      "READ",
      "WRITE",
      "FLUSH",
      "DISCARD",
      "SECURE_ERASE",
      "ZONE_RESET",
      "ZONE_RESET_ALL",
      "ZONE_OPEN",
      "ZONE_CLOSE",
      "ZONE_FINISH",
      "ZONE_APPEND",
      "WRITE_SAME",
      "WRITE_ZEROES",
      "SCSI_IN",
      "SCSI_OUT",
      "DRV_IN",
      "DRV_OUT",
      "UNKNOWN",
    ];
    t.deepEqual(Object.keys(BLK_OP_SEVERITY).sort(), [...ops].sort());
    const expect: Record<string, string> = {
      READ: "error",
      WRITE: "crit",
      FLUSH: "crit",
      DISCARD: "warn",
      SECURE_ERASE: "warn",
      ZONE_RESET: "error",
      ZONE_RESET_ALL: "error",
      ZONE_OPEN: "error",
      ZONE_CLOSE: "error",
      ZONE_FINISH: "error",
      ZONE_APPEND: "crit",
      WRITE_SAME: "crit",
      WRITE_ZEROES: "error",
      SCSI_IN: "warn",
      SCSI_OUT: "warn",
      DRV_IN: "warn",
      DRV_OUT: "warn",
      UNKNOWN: "error",
    };
    for (const [i, op] of ops.entries()) {
      for (const caller of ["", "blk_update_request: ", "blk_print_req_error: "]) {
        const line =
          `${caller}I/O error, dev sdb, sector 8 op 0x${i.toString(16)}:(${op}) flags 0x800 phys_seg 0 ` +
          `prio class 0`;
        t.like(
          classify(line),
          { class: "blk_io_error", device: "sdb", severity: expect[op], sector: "8" },
          line,
        );
      }
    }
    // The WAL's fsync on 5.x/6.x: a cache flush the disk failed, whatever the status word.
    for (const st of ["I/O", "critical target", "protection", "critical space allocation"]) {
      t.like(
        classify(
          `${st} error, dev nvme0n1, sector 0 op 0x2:(FLUSH) flags 0x800 phys_seg 0 prio class 2`,
        ),
        { severity: "crit" },
        st,
      );
    }
    // Timeouts and transport errors are retried on another path by dm-multipath: error, any op.
    t.like(
      classify("timeout error, dev sdc, sector 0 op 0x2:(FLUSH) flags 0x0 phys_seg 0 prio class 0"),
      { class: "blk_timeout", severity: "error" },
    );
    t.like(
      classify(
        "critical medium error, dev sdc, sector 0 op 0x3:(DISCARD) flags 0x0 phys_seg 0 prio class 0",
      ),
      { severity: "crit" },
      "a medium error is one, whatever the op",
    );
    t.like(
      classify("I/O error, dev sdc, sector 0 op 0x1:(__proto__) flags 0x0 phys_seg 0 prio class 0"),
      { severity: "error" },
      "printed text is never an object key",
    );
  },
);

test("btrfs lines that name a member device after the filesystem's are charged to the member", (t) => {
  t.like(
    classify(
      "BTRFS error (device dm-15): fixed up error at logical 1 on dev /dev/dm-10 physical 2",
    ),
    { device: "dm-10", severity: "warn" },
  );
  t.like(
    classify(
      "BTRFS error (device dm-0): bdev /dev/mapper/root_1 errs: wr 0, rd 3535, flush 0, corrupt 0, gen 0",
    ),
    { device: "mapper/root_1", deviceKind: "block" },
  );
  // The path at the end of a scrub line is a file name anyone can choose: anchored, it names nothing.
  t.is(
    classify("BTRFS warning (device sda): checksum error at logical 1 (path: on dev /dev/sdz, x)"),
    null,
  );
  t.like(
    classify(
      "BTRFS warning (device sda): checksum error at logical 1 on dev /dev/sdb, physical 2, root 5, " +
        "inode 257, offset 0, length 4096, links 1 (path: on dev /dev/sdz, x)",
    ),
    { device: "sdb" },
  );
});
