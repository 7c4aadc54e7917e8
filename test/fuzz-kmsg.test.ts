// Property-based fuzzing of the /dev/kmsg record parser and the kernel-line classifier
// (fast-check). On failure fast-check prints the seed and the shrunk counterexample.
import test from "ava";
import fc from "fast-check";
import {
  classify,
  isUserCrash,
  normaliseBlockName,
  type Outcome,
} from "../collectors/kmsg/classify.js";
import { parseRecord, unescapeKmsg } from "../collectors/kmsg/record.js";

const RUNS = 4000;

/** The kernel's escaping in /dev/kmsg text and dictionary values (printk: c < ' ' || c >= 127 || c == '\\'). */
const escapeKmsg = (s: string) =>
  s.replace(
    // eslint-disable-next-line no-control-regex -- the kernel escapes exactly these bytes
    /[\x00-\x1f\x7f-\xff\\]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );

const junk = fc.oneof(
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString("latin1")),
  fc
    .array(
      fc.constantFrom(
        "6",
        ",",
        ";",
        "\n",
        " ",
        "=",
        "\\x",
        "0a",
        "-",
        "99999999999999999999",
        "SUBSYSTEM",
        "a",
      ),
      { maxLength: 40 },
    )
    .map((a) => a.join("")),
);

/** One byte per char: what a record's text is after unescaping. */
const byteText = fc.string({
  unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)),
  maxLength: 120,
});
const digits = fc.oneof(
  fc.nat(1000).map(String),
  fc.maxSafeNat().map(String),
  fc.integer({ min: 16, max: 400 }).map((n) => "9".repeat(n)),
  fc.bigInt({ min: 2n ** 31n, max: 2n ** 70n }).map(String),
);

const safeNat = (n: number) => Number.isSafeInteger(n) && n >= 0;
const readable = (s: string) => s.length > 0 && s.length < 300 && !s.includes("\n");

test("fuzz: unescapeKmsg inverts the kernel's \\xHH escaping for any byte string", (t) => {
  fc.assert(
    fc.property(byteText, (s) => unescapeKmsg(escapeKmsg(s)) === s),
    { numRuns: RUNS },
  );
  t.pass();
});

test("fuzz: arbitrary records never throw; a record has safe-integer fields, facility >= 0 and level 0-7", (t) => {
  fc.assert(
    fc.property(junk, (raw) => {
      const r = parseRecord(raw);
      if (typeof r === "string") return readable(r);
      return (
        safeNat(r.facility) &&
        r.level >= 0 &&
        r.level <= 7 &&
        safeNat(r.seq) &&
        safeNat(r.tsUsec) &&
        typeof r.text === "string" &&
        Object.values(r.meta).every((v) => typeof v === "string")
      );
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

test(
  "fuzz: a record built from fields (any PRI, SEQ, TS digits; escaped text and dictionary) parses back " +
    "to them, or is a reason when a number is out of range",
  (t) => {
    const rec = fc.record({
      pri: digits,
      seq: digits,
      ts: digits,
      flags: fc.constantFrom("-", "c", "+", "-,caller=T1", "-,extra,more"),
      text: byteText,
      meta: fc.dictionary(fc.stringMatching(/^[A-Z_]{1,10}$/), byteText, { maxKeys: 3 }),
    });
    fc.assert(
      fc.property(rec, (f) => {
        const raw = `${f.pri},${f.seq},${f.ts},${f.flags};${escapeKmsg(f.text)}\n${Object.entries(
          f.meta,
        )
          .map(([k, v]) => ` ${k}=${escapeKmsg(v)}\n`)
          .join("")}`;
        const r = parseRecord(raw);
        const [p, s, ts] = [Number(f.pri), Number(f.seq), Number(f.ts)];
        if (![p, s, ts].every(Number.isSafeInteger)) return typeof r === "string" && readable(r);
        if (typeof r === "string") return false;
        return (
          r.facility === Math.floor(p / 8) &&
          r.level === p % 8 &&
          r.seq === s &&
          r.tsUsec === ts &&
          r.text === f.text &&
          JSON.stringify(r.meta) === JSON.stringify(f.meta)
        );
      }),
      { numRuns: RUNS },
    );
    t.pass();
  },
);

const CLASSES = new Set([
  "blk_io_error",
  "blk_medium_error",
  "blk_target_error",
  "blk_timeout",
  "blk_transport_error",
  "blk_offline",
  "buffer_io_error",
  "writeback_error",
  "scsi_medium_error",
  "scsi_device_offline",
  "ata_error",
  "ata_link_reset",
  "nvme_timeout",
  "nvme_controller_failure",
  "nvme_io_error",
  "ext4_error",
  "fs_journal_abort",
  "fs_readonly",
  "xfs_error",
  "xfs_shutdown",
  "btrfs_error",
  "md_disk_failure",
  "md_array_failed",
  "md_io_error",
  "dm_path_failure",
  "hung_task",
]);
const KINDS = new Set(["block", "ata", "scsi", "devt", "chardev", "nvme_ctrl", "raw", "none"]);

function wellTyped(o: Outcome): boolean {
  if (o === null) return true;
  if ("suppressed" in o) return safeNat(o.suppressed);
  if (
    !CLASSES.has(o.class) ||
    !["warn", "error", "crit"].includes(o.severity) ||
    !KINDS.has(o.deviceKind)
  )
    return false;
  if (o.device !== null && (typeof o.device !== "string" || o.device === "")) return false;
  if (o.count !== 0 && o.count !== 1) return false;
  if (o.detail !== undefined && typeof o.detail !== "string") return false;
  // Grouping keys are printed text: strings, never a number or an object from a lookup.
  if (o.sector !== undefined && typeof o.sector !== "string") return false;
  if (o.request !== undefined && typeof o.request !== "string") return false;
  return o.btrfsCounters === undefined || Object.values(o.btrfsCounters).every(safeNat);
}

/** Real line shapes from several kernel eras, with their variable parts ({D} device, {N} number, {W} word) fuzzed. */
const TEMPLATES = [
  "I/O error, dev {D}, sector {N} op 0x1:({W}) flags 0x800 phys_seg 16 prio class 2",
  "print_req_error: {W} error, dev {D}, sector {N}",
  "critical medium error, dev {D}, sector {N} op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2",
  "blk_update_request: critical target error, dev {D}, sector {N} op 0x3:(DISCARD) flags 0x800",
  "Buffer I/O error on device {D}, logical block {N}",
  "Buffer I/O error on dev {D}, logical block {N}, lost async page write",
  "lost page write due to I/O error on {D}",
  "{D}: writeback error on inode {N}, offset 0, sector {N}",
  "sd {N}:{N}:{N}:{N}: [{D}]  Sense Key : Medium Error [current] [descriptor]",
  "sd {N}:0:0:0: rejecting I/O to offline device",
  "ata{N}.00: error: { UNC }",
  "ata{N}: SATA link down (SStatus 0 SControl 300)",
  "ata{N}.00: exception Emask 0x0 SAct 0x0 SErr 0x0 action 0x0",
  "nvme nvme{N}: I/O tag {N} (0004) QID 0 timeout, reset controller",
  "nvme nvme{N}: controller is down; will reset: CSTS=0xffffffff",
  "nvme{N}n{N}: Read(0x2) @ LBA {N}, {N} blocks, {W} (sct 0x{N} / sc 0x81) DNR",
  "EXT4-fs error (device {D}) in ext4_reserve_inode_write:{N}: Journal has aborted",
  "EXT4-fs ({D}): Remounting filesystem read-only",
  "Aborting journal on device {D}-{N}.",
  "JBD2: Detected IO errors while flushing file data on {D}-{N}",
  "XFS ({D}): log I/O error -{N}",
  "XFS ({D}): Corruption detected. Unmount and run xfs_repair",
  "BTRFS error (device {D}): bdev /dev/{D} errs: wr {N}, rd {N}, flush {N}, corrupt {N}, gen {N}",
  "BTRFS warning (device {D}): csum failed root {N} ino {N} off {N}",
  "BTRFS: error (device {D} state EA) in btrfs_commit_transaction:{N}: errno=-5 IO failure",
  "md/raid1:md{N}: Disk failure on {D}, disabling device.",
  // md array and member errors (drivers/md/raid1.c, raid10.c, raid5.c; md.c).
  "md/raid:md{N}: Cannot continue operation ({N}/{N} failed).",
  "md/raid:md{N}: read error not correctable (sector {N} on {D}).",
  "md/raid:md{N}: read error corrected ({N} sectors at {N} on {D})",
  "md/raid:md{N}: Too many read errors, failing device {D}.",
  "md/raid1:md{N}: {D}: unrecoverable I/O read error for block {N}",
  "md/raid10:md{N}: {D}: Raid device exceeded read_error threshold [cur {N}:max {N}]",
  "md: super_written gets error={N}",
  // Numeric sense (kernels without CONFIG_SCSI_CONSTANTS), with the request's tag.
  "sd {N}:0:{N}:0: [{D}] tag#{N} Sense Key : 0x{N} [current] ",
  "sd {N}:0:{N}:0: [{D}] tag#{N} ASC=0x{N} ASCQ=0x{N} ",
  "sd {N}:0:0:0: [{D}] tag#{N} <<vendor>>ASC=0x{N} <<vendor>>ASCQ=0x{N} ",
  // btrfs lines naming a member device after the filesystem's.
  "BTRFS error (device {D}): bdev /dev/mapper/{D} errs: wr {N}, rd {N}, flush {N}, corrupt {N}, gen {N}",
  "BTRFS error (device {D}): fixed up error at logical {N} on dev /dev/{D} physical {N}",
  "BTRFS error (device {D}): unable to fixup (regular) error at logical {N} on dev /dev/mapper/{D}",
  "BTRFS warning (device {D}): i/o error at logical {N} on dev /dev/{D}, physical {N}, root 5, inode 257",
  "BTRFS warning (device {D}): direct IO failed ino {N} op 0x{N} offset 0x0 len 4096 err no 10",
  "BTRFS warning (device {D}: state EA): direct IO failed ino {N} rw {N},0 sector 0x{N} len 4096 err no 10",
  "device-mapper: multipath: {N}:{N}: Failing path {N}:{N}.",
  "INFO: task jbd2/{D}-{N}:{N} blocked for more than {N} seconds.",
  "INFO: task {W}:{N} blocked for more than {N} seconds.",
  "{W}: {N} callbacks suppressed",
  "blk_print_req_error: {N} callbacks suppressed",
];
test(
  "every template is a line the classifier knows, filled plainly (a shape that never matches fuzzes " +
    "nothing)",
  (t) => {
    // {W} is a block status in some shapes, an op or a task name in others.
    const plain = (tpl: string, w: string) =>
      tpl.replace(/\{D\}/g, "sdb1").replace(/\{N\}/g, "3").replace(/\{W\}/g, w);
    const seen = new Set<string>();
    for (const tpl of TEMPLATES) {
      const o = classify(plain(tpl, "I/O")) ?? classify(plain(tpl, "WRITE"));
      t.not(o, null, tpl);
      if (o && "class" in o) seen.add(o.class);
    }
    for (const cls of [
      "md_disk_failure",
      "md_array_failed",
      "md_io_error",
      "scsi_medium_error",
      "btrfs_error",
    ])
      t.true(seen.has(cls), cls);
  },
);

const fill = fc.record({
  D: fc.oneof(
    fc.constantFrom(
      "sda",
      "sdb1",
      "nvme0n1p2",
      "dm-0",
      "md127",
      "loop3",
      "",
      " ",
      "a,b",
      "(x)",
      "sd\u00e9",
    ),
    fc.string({ unit: "grapheme", maxLength: 20 }),
  ),
  N: fc.oneof(
    fc.nat(100).map(String),
    fc.maxSafeNat().map(String),
    fc.integer({ min: 16, max: 400 }).map((n) => "9".repeat(n)),
    fc.constantFrom("-1", "", "1.5", "0x1f"),
  ),
  W: fc.oneof(
    fc.constantFrom("WRITE", "READ", "FLUSH", "I/O", "critical medium", "timeout"),
    fc.string({ maxLength: 12 }),
  ),
});
const kernelish = fc
  .tuple(fc.constantFrom(...TEMPLATES), fill, fill, fill)
  .map(([tpl, ...fills]) => {
    let i = 0;
    return tpl.replace(
      /\{([DNW])\}/g,
      (_, k: "D" | "N" | "W") => (fills[i++ % fills.length] as Record<string, string>)[k] as string,
    );
  });

test("fuzz: classify never throws on any text; outcomes are well-typed (known class/severity, counts finite)", (t) => {
  fc.assert(
    fc.property(
      fc.oneof(
        junk,
        kernelish,
        fc.string({ unit: "grapheme-ascii", minLength: 900, maxLength: 1100 }),
      ),
      (s) => wellTyped(classify(s)),
    ),
    { numRuns: RUNS },
  );
  t.pass();
});

test(
  "fuzz: kernel line shapes with fuzzed devices and numbers classify to well-typed outcomes, counters " +
    "are safe integers",
  (t) => {
    fc.assert(
      fc.property(kernelish, (s) => wellTyped(classify(s))),
      { numRuns: RUNS },
    );
    t.pass();
  },
);

test(
  "fuzz: normaliseBlockName never throws; the disk is a prefix of the name, the partition is " +
    "the name or null",
  (t) => {
    const name = fc.oneof(
      fc.string({ maxLength: 30 }),
      fc.stringMatching(
        new RegExp(
          String.raw`^(nvme\d{1,3}(c\d)?n\d{1,3}(p\d{1,3})?|mmcblk\d(p\d)?|[shv]d[a-z]{1,3}\d{0,3}|` +
            String.raw`xvd[a-z]\d?|loop\d{1,3}(p\d)?|nbd\d(p\d)?)$`,
        ),
      ),
    );
    fc.assert(
      fc.property(name, (n) => {
        const r = normaliseBlockName(n);
        if (r.partition !== null)
          return r.partition === n && n.startsWith(r.disk) && r.disk.length < n.length;
        return r.disk === n || /^nvme\d+c\d+n\d+$/.test(n);
      }),
      { numRuns: RUNS },
    );
    t.pass();
  },
);

// Issue 16: a crash report's comm (<= 15 bytes) and file name (<= 255 bytes) are user-chosen.
// Whatever they hold, including any kernel line shape above, the report is never a fault.
// comm is at most 15 bytes: one char per byte from /dev/kmsg (\xHH unescaped), UTF-8 decoded
// from the journal (never more UTF-16 units than bytes).
const commBytes = fc.uint8Array({ minLength: 1, maxLength: 15 }).map((b) => Buffer.from(b));
const comm = fc.oneof(
  commBytes.map((b) => b.toString("latin1")),
  commBytes.map((b) => b.toString("utf8")),
  kernelish.map((k) => k.slice(0, 15)),
  fc.constantFrom(
    "XFS (vda): ",
    "sd 2:0:0:0: ",
    "nvme nvme0: ",
    "ata1: error: {",
    "INFO: task jbd2",
  ),
);
const fileName = fc.oneof(
  kernelish,
  fc.string({ unit: "binary", maxLength: 255 }),
  fc.tuple(kernelish, kernelish).map(([a, b]) => `${a} ${b}`.slice(0, 255)),
);
const CRASH = [
  (c: string, f: string, pid: number) =>
    `${c}[${pid}]: segfault at 0 ip 0000556cdf019270 sp 00007ffcc65d0380 error 6 in ` +
    `${f}[1270,556cdf019000+1000] likely on CPU 1 (core 1, socket 0)`,
  (c: string, f: string, pid: number) =>
    `traps: ${c}[${pid}] general protection fault ip:55e4ed60120f sp:7ffd54578780 error:0 in ` +
    `${f}[120f,55e4ed601000+1000]`,
  (c: string, f: string, pid: number) =>
    `traps: ${c}[${pid}] trap divide error ip:55c417372232 sp:7ffc4ecdfcf0 error:0 in ${f}[55c417372000+1000]`,
  (c: string, f: string, pid: number) =>
    `${c}[${pid}] trap invalid opcode ip:56511f851269 sp:7fff4539ffe0 error:0 in ${f}[56511f851000+1000]`,
  (c: string, f: string, pid: number) =>
    `${c}[${pid}]: unhandled signal 11 code 0x1 at 0x0 in ${f}[2aaab000+1000]`,
];

test("fuzz: a crash report holding any user-chosen comm and file name never classifies", (t) => {
  fc.assert(
    fc.property(
      fc.constantFrom(...CRASH),
      comm,
      fileName,
      fc.integer({ min: 1, max: 4194304 }),
      (shape, c, f, pid) => {
        const text = shape(c, f, pid);
        return isUserCrash(text) && classify(text) === null;
      },
    ),
    { numRuns: RUNS },
  );
  t.pass();
});

// Regressions found by the properties above (shrunk counterexamples).
test(
  "regression: a header number past 2^53 is a reason, and PRI past 2^31 no longer wraps into a negative " +
    "facility",
  (t) => {
    t.is(parseRecord("0,9007199254740992,2147483648,-;"), "header field out of range");
    t.is(parseRecord(`${"9".repeat(400)},1,1,-;x`), "header field out of range");
    t.like(parseRecord("17179869190,1,1,-;x"), { facility: 2147483648, level: 6 }); // was facility -2147483648 via >> 3
  },
);

test("regression: 'N callbacks suppressed' with N past 2^53 is not a suppressed count of 1e16 or Infinity", (t) => {
  t.is(classify("blk_print_req_error: 9999999999999999 callbacks suppressed"), null);
  t.is(classify(`blk_print_req_error: ${"9".repeat(400)} callbacks suppressed`), null);
  t.deepEqual(classify("blk_print_req_error: 98 callbacks suppressed"), { suppressed: 98 });
});

test("regression: btrfs error counters past 2^53 are dropped (one fault), never Infinity", (t) => {
  const o = classify(
    "BTRFS error (device !): bdev /dev/! errs: wr 0, rd 9999999999999999, flush 0, corrupt 0, gen 9999999999999999",
  );
  t.like(o, { class: "btrfs_error", count: 1, device: "!" });
  t.false(o !== null && "btrfsCounters" in o);
});

test(
  "regression: an op printed as __proto__ (or another Object.prototype name) keeps the status's " +
    "severity, a string",
  (t) => {
    // BLK_OP_SEVERITY is a plain object: BLK_OP_SEVERITY["__proto__"] is Object.prototype.
    for (const op of ["__proto__", "constructor", "toString", "hasOwnProperty"]) {
      const o = classify(
        `I/O error, dev sdb, sector 8 op 0x1:(${op}) flags 0x0 phys_seg 1 prio class 0`,
      );
      t.like(o, { class: "blk_io_error", device: "sdb" }, op);
      t.is(o !== null && "severity" in o ? typeof o.severity : "none", "string", op);
      t.true(o !== null && "severity" in o && ["warn", "error", "crit"].includes(o.severity), op);
    }
    t.like(
      classify("I/O error, dev sdb, sector 8 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 0"),
      { severity: "crit" },
      "a real op still decides",
    );
  },
);
