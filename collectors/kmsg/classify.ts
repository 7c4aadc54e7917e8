// Which kernel-log lines are storage faults, of what class, on which device. Pure.
// Formats from several kernel eras (the kernels' own format strings); regressions are pinned by
// the table in test/kmsg-classify.test.ts. Prefilters (indexOf) keep the common non-matching
// line cheap: a storm must classify at tens of thousands of lines per second.
//
// Kernel lines can carry user-chosen text: a crash report names the program (comm, 15 bytes)
// and the mapped file (255 bytes). So every pattern is anchored where the subsystem's own
// message begins, variable parts are closed sets or narrow tokens, and crash reports are
// dropped before anything else looks at them. Record metadata (SUBSYSTEM=/DEVICE=), which
// user space cannot write, decides the device over the text.

export type KernelErrorClass =
  | "blk_io_error"
  | "blk_medium_error"
  | "blk_target_error"
  | "blk_timeout"
  | "blk_transport_error"
  | "blk_offline"
  | "buffer_io_error"
  | "writeback_error"
  | "scsi_medium_error"
  | "scsi_device_offline"
  | "ata_error"
  | "ata_link_reset"
  | "nvme_timeout"
  | "nvme_controller_failure"
  | "nvme_io_error"
  | "ext4_error"
  | "fs_journal_abort"
  | "fs_readonly"
  | "xfs_error"
  | "xfs_shutdown"
  | "btrfs_error"
  | "md_disk_failure"
  | "md_array_failed"
  | "md_io_error"
  | "dm_path_failure"
  | "hung_task";

export type KernelSeverity = "warn" | "error" | "crit";

export interface Classified {
  readonly class: KernelErrorClass;
  readonly severity: KernelSeverity;
  /** As printed: a disk, partition, dm/md name, "ata3.00", "2:0:0:0" (SCSI), "8:16" (dev_t), or null. */
  readonly device: string | null;
  /** How the device token is to be resolved. */
  readonly deviceKind: "block" | "ata" | "scsi" | "devt" | "chardev" | "nvme_ctrl" | "raw" | "none";
  /** How many faults this line stands for (btrfs counter deltas are computed by the caller). */
  readonly count: number;
  readonly detail?: string;
  /** btrfs cumulative counters ("errs: wr a, rd b, ..."), for deltas. */
  readonly btrfsCounters?: Readonly<Record<string, number>>;
  /** SCSI address ("2:0:0:0") of a line that names its disk "[sdX]". */
  readonly scsi?: string;
  /** hung_task: the blocked task; a device named by its comm holds only for a kernel thread. */
  readonly pid?: number;
  /** The failed request's sector as printed (block layer, md), for grouping lines into incidents. */
  readonly sector?: string;
  /** The failed request's SCSI tag ("tag#40"): every line of one failed command carries it. */
  readonly request?: string;
  /** A reminder the kernel repeats while a state lasts (xfs_log_force every 30 s after shutdown). */
  readonly repeats?: true;
}

export type Outcome = Classified | { readonly suppressed: number } | null;

const BLK_STATUS: ReadonlyArray<readonly [string, KernelErrorClass, KernelSeverity]> = [
  ["critical medium", "blk_medium_error", "crit"],
  ["critical target", "blk_target_error", "error"],
  ["timeout", "blk_timeout", "error"],
  ["recoverable transport", "blk_transport_error", "error"],
  ["device offline", "blk_offline", "crit"],
];

/**
 * Every status the block layer prints before " error, dev": blk_errors[] in block/blk-core.c
 * (4.13 on: "critical nexus" became "reservation conflict", then "device offline", zone,
 * duration-limit and "invalid" were added) and the switch in end_request/blk_update_request
 * before it (3.x to 4.12). A closed set: anything else before " error, dev" is not the kernel's.
 */
export const BLK_STATUS_NAMES: readonly string[] = [
  "I/O",
  "operation not supported",
  "timeout",
  "critical space allocation",
  "recoverable transport",
  "critical target",
  "critical nexus",
  "reservation conflict",
  "critical medium",
  "protection",
  "kernel resource",
  "device resource",
  "nonblocking retry",
  "device offline",
  "dm internal retry",
  "open zones exceeded",
  "active zones exceeded",
  "duration limit exceeded",
  "invalid",
];
/**
 * KernelSeverity a failed request's operation gives, by the names blk_op_name[] (block/blk-core.c)
 * prints in "op 0x2:(FLUSH)": 5.x-6.x, WRITE_SAME until 5.17, SCSI_IN/OUT until 5.10,
 * "UNKNOWN" for anything else. A failed WRITE or FLUSH (the cache flush behind every fsync),
 * ZONE_APPEND or WRITE_SAME means data the application was, or is about to be, told is durable
 * is not on the medium: crit. DISCARD/SECURE_ERASE lose no data; DRV_IN/OUT and SCSI_IN/OUT are
 * passthrough commands (smartctl, sg_*) a device may refuse: warn. null: the status decides
 * (READ, WRITE_ZEROES, zone management, UNKNOWN, and old kernels that print no op).
 */
export const BLK_OP_SEVERITY: Readonly<Record<string, KernelSeverity | null>> = {
  READ: null,
  WRITE: "crit",
  FLUSH: "crit",
  DISCARD: "warn",
  SECURE_ERASE: "warn",
  ZONE_RESET: null,
  ZONE_RESET_ALL: null,
  ZONE_OPEN: null,
  ZONE_CLOSE: null,
  ZONE_FINISH: null,
  ZONE_APPEND: "crit",
  WRITE_SAME: "crit",
  WRITE_ZEROES: null,
  SCSI_IN: "warn",
  SCSI_OUT: "warn",
  DRV_IN: "warn",
  DRV_OUT: "warn",
  UNKNOWN: null,
};
const reEsc = (s: string) => s.replace(/[/.*+?^${}()|[\]\\]/g, "\\$&");

// The caller prefix is the function name the kernel printed: none since 5.16.
const RE_BLK = new RegExp(
  "^(?:(?:end_request|blk_update_request|print_req_error|blk_print_req_error): )?" +
    `(${BLK_STATUS_NAMES.map(reEsc).join("|")}) error, ` +
    String.raw`dev ([^,\s]+), sector (\d+)(?: op 0x[0-9a-f]+:\((\w+)\))?`,
);

/**
 * A user-space crash report: "comm[pid]: segfault at", "traps: comm[pid] general protection",
 * "comm[pid] trap divide error ip:", arm64/riscv "comm[pid]: unhandled ...". They begin with
 * the program's name (at most 15 bytes, one char each after unescaping), then "[pid]".
 */
const RE_CRASH = /^(?:traps: |umip: )?[^]{0,16}?\[\d+\][: ]/;
const RE_BUFFER = new RegExp(
  String.raw`^Buffer I\/O error on (?:dev|device) ([^,\s]+), logical block \d+(?:, (lost (?:a?sync ` +
    String.raw`)?page write|async page read))?`,
);
const RE_LOST_PAGE = /^lost page write due to I\/O error on (\S+?)(?:,|$)/;
const RE_WRITEBACK = /^([\w.-]+): writeback error on inode \d+/;
const RE_SCSI = /^sd (\d+:\d+:\d+:\d+): (?:\[(\w+)\] )?(?:tag#(\d+) )?(.*)$/;
// scsi_logging.c: "Sense Key : %s " (scsi_sense_key_string) or "0x%x " without
// CONFIG_SCSI_CONSTANTS, then "[current] "/"[deferred] ". 0x3 MEDIUM ERROR, 0x4 HARDWARE ERROR.
const RE_SENSE_KEY =
  /^ ?Sense Key : (?:Medium Error|Hardware Error|0x[34] \[(?:current|deferred)\])/;
// "Add. Sense: %s" (constants.c additional[]) or "ASC=0x%x ASCQ=0x%x " without the table:
// 0x03 write fault, 0x0C write error (but 0x0C/0x01 "recovered with auto reallocation"),
// 0x10 ID CRC/ECC and protection-information checks, 0x11 unrecovered read, 0x44 internal
// target failure. Other keys (Illegal Request, Unit Attention, Aborted Command) are context.
const RE_ADD_SENSE = new RegExp(
  String.raw`^ ?(?:Add\. Sense: (?:Unrecovered read error|Read retries exhausted|` +
    String.raw`Error too long to correct|Multiple read errors|L-EC uncorrectable error|` +
    String.raw`Id CRC or ECC error|Logical block (?:guard|application tag|reference tag) check failed|` +
    String.raw`Write error(?! - recovered)|Peripheral device write fault|Internal target failure)|` +
    String.raw`(?:<<vendor>>)?ASC=0x(?:3|c|10|11|44) (?:<<vendor>>)?ASCQ=0x[0-9a-f]+(?<!ASC=0xc ASCQ=` +
    String.raw`0x1)(?:\s|$))`,
);
const RE_ATA = /^(ata\d+(?:\.\d+)?): (.*)$/;
const RE_NVME_CTRL = /^nvme (nvme\d+): (.*)$/;
const RE_NVME_CMD = new RegExp(
  String.raw`^(nvme\d+(?:c\d+)?n\d+): [\w /]+\(0x[0-9a-f]+\) @ LBA \d+, \d+ blocks, ([^()]+?) \(sct` +
    String.raw` (0x[0-9a-f]+) \/ sc (0x[0-9a-f]+)\)`,
);
const RE_EXT4_ERR = /^EXT4-fs (error|warning) \(device ([^)\s]+)\)(?::| in) (.*)$/;
const RE_EXT4_FS = /^EXT4-fs \(([^)\s]+)\): (.*)$/;
const RE_JOURNAL = new RegExp(
  String.raw`^(?:Aborting journal on device (\S+?)-\d+\.?$|` +
    String.raw`JBD2: (?:Detected IO errors while flushing file data on|` +
    String.raw`I\/O error when updating journal superblock for|` +
    String.raw`Error -?\d+ detected when updating journal superblock for) (\S+?)-\d+\.?$)`,
);
const RE_XFS = /^XFS \(([^)\s]+)\): (.*)$/;
// xfs_error_report: "Internal error %s at line %d of file %s.  Caller %pS"; %s is the failed
// check as written in the source (XFS_WANT_CORRUPTED_RETURN, !xfs_verify_ino(...)).
const RE_XFS_INTERNAL =
  /^Internal error .{1,200} at line \d+ of file fs\/xfs\/[\w/.-]+\.\s+Caller /;
// 6.x prints "(device sda: state EA)", 5.x "(device sda state EA)".
const RE_BTRFS =
  /^BTRFS(?: (error|warning|critical|info|crit))? \(device ([^)\s:]+)(?::? state \w+)?\): (.*)$/;
const RE_BTRFS_ERR2 = /^BTRFS: error \(device ([^)\s:]+)(?::? state \w+)?\) in (.*)$/;
// Lines naming the member device the error was on, after the filesystem's device (scrub,
// repair, super block writes): charged to that member, which may be /dev/mapper/NAME.
const RE_BTRFS_MEMBER: ReadonlyArray<readonly [RegExp, KernelSeverity]> = [
  [/^unable to fixup \(regular\) error at logical \d+ on dev \/dev\/([^\s,]+)/, "crit"],
  [/^lost page write due to IO error on \/dev\/([^\s,]+)/, "crit"],
  [/^(?:checksum|i\/o) error at logical \d+ on dev \/dev\/([^\s,]+),/, "error"],
  [/^fixed up error at logical \d+ on dev \/dev\/([^\s,]+)/, "warn"],
  [/^read error corrected: ino \d+ off \d+ \(dev \/dev\/([^\s,]+) sector \d+\)/, "warn"],
];
// btrfs_end_dio_bio / btrfs_dio_end_io: "rw %d,%u" (4.x-5.8), "op 0x%x" (5.9 on); 1 is WRITE.
const RE_BTRFS_DIO = /^direct IO failed ino \d+ (?:rw (\d+),\d+|op (0x[0-9a-f]+)) /;
const RE_BTRFS_ERRS =
  /^bdev \/dev\/(\S+) errs: wr (\d+), rd (\d+), flush (\d+), corrupt (\d+), gen (\d+)/;
const RE_MD = /^md\/raid\d*:(md\w+): Disk failure on ([^,\s]+), disabling device\./;
// md/raid1.c, raid10.c, raid5.c format strings, 4.x to 6.x ("%s" became "%pg": same text).
const RE_MD_ARRAY = /^md\/raid\d*:(md\w+): Cannot continue operation \((\d+)\/(\d+) failed\)/;
const RE_MD_SECTOR =
  /^md\/raid\d*:(md\w+): (read error not correctable|read error NOT corrected!!) \(sector (\d+) on ([^)\s]+)\)/;
const RE_MD_CORRECTED = new RegExp(
  String.raw`^md\/raid\d*:(md\w+): (read error corrected|` +
    String.raw`unable to read back corrected sectors) \((\d+) sectors at (\d+) on ([^)\s]+)\)`,
);
const RE_MD_MEMBER = new RegExp(
  String.raw`^md\/raid\d*:(md\w+): ([^:\s]+): (unrecoverable I\/O read error for block|` +
    String.raw`rescheduling sector|Raid device exceeded read_error threshold|` +
    String.raw`Failing raid device)(?: (\d+))?`,
);
const RE_MD_TOO_MANY = /^md\/raid\d*:(md\w+): Too many read errors, failing device ([^\s]+?)\.?$/;
const RE_MD_SUPER = /^md: super_written gets error=(-?\d+)/;
const RE_DM_PATH = /^device-mapper: multipath: (?:\d+:\d+: )?Failing path (\d+:\d+)\./;
const RE_HUNG = /^INFO: task (.+):(\d+) blocked for more than (\d+) seconds\./;
const RE_SUPPRESSED = /^([\w.]+): (\d+) callbacks suppressed$/;

const c = (
  cls: KernelErrorClass,
  severity: KernelSeverity,
  device: string | null,
  deviceKind: Classified["deviceKind"],
  detail?: string,
): Classified => ({
  class: cls,
  severity,
  device,
  deviceKind,
  count: 1,
  ...(detail !== undefined ? { detail } : {}),
});

/**
 * Classifies one kernel record. `meta` is the record's dictionary (SUBSYSTEM=, DEVICE=; the
 * journal's _KERNEL_SUBSYSTEM/_KERNEL_DEVICE): when present it decides the device.
 */
export function classify(text: string, meta?: Readonly<Record<string, string>>): Outcome {
  if (isUserCrash(text)) return null;
  const o = classifyText(text);
  if (o === null || "suppressed" in o || meta?.["DEVICE"] === undefined) return o;
  return withMeta(o, meta["DEVICE"], meta["SUBSYSTEM"] ?? "");
}

/** A user-space crash report, whatever else the line contains: never a storage fault. */
export function isUserCrash(text: string): boolean {
  return RE_CRASH.test(text) || text.startsWith("potentially unexpected fatal signal");
}

const STORAGE_SUBSYSTEMS = new Set([
  "block",
  "scsi",
  "nvme",
  "nvme-subsystem",
  "ata_port",
  "ata_link",
  "ata_device",
]);

/**
 * The device from record metadata, which only the kernel writes (dev_printk). Block dev_t
 * ("b8:0") and SCSI addresses ("+scsi:2:0:0:0") replace what the text says; a char dev_t of
 * the nvme class names the controller. Metadata naming a device outside the storage
 * subsystems (a netdev "n3", "+usb:1-1", ...) means the text is not the storage subsystem's
 * message at all: not counted.
 */
export function withMeta(o: Classified, device: string, subsystem: string): Classified | null {
  const dt = /^([bc])(\d+):(\d+)$/.exec(device);
  if (dt) {
    if (dt[1] === "b") return { ...o, device: `${dt[2]}:${dt[3]}`, deviceKind: "devt" };
    return subsystem === "nvme"
      ? { ...o, device: `${dt[2]}:${dt[3]}`, deviceKind: "chardev" }
      : null;
  }
  const named = /^\+([\w-]+):(.+)$/.exec(device);
  if (!named || !STORAGE_SUBSYSTEMS.has(named[1] as string)) return null;
  const [, sub, name] = named as unknown as [string, string, string];
  if (sub === "scsi") {
    // "sd H:C:T:L: [sdX]" names the same device more precisely (and sysfs may lose it): keep it.
    if (o.deviceKind === "block" && o.scsi === name) return o;
    return /^\d+:\d+:\d+:\d+$/.test(name) ? { ...o, device: name, deviceKind: "scsi" } : null;
  }
  if (sub === "block") return { ...o, device: name, deviceKind: "block" };
  return { ...o, device: `${sub}:${name}`, deviceKind: "raw" }; // libata, nvme-subsystem: as named
}

// ATA link resets (checked once the ata prefix matched; compiled once, not per line).
const RE_ATA_LINK_RESET = new RegExp(
  "^(hard resetting link|SATA link down|limiting SATA link speed|COMRESET failed|" +
    "link is slow to respond|softreset failed)",
);
// An NVMe command timed out.
const RE_NVME_TIMEOUT = new RegExp(
  String.raw`^I\/O (?:tag )?\d+ (?:\(\w+\) )?(?:opcode 0x[0-9a-f]+ \([\w /]+\) )?QID \d+ timeout, (` +
    String.raw`?:aborting|reset controller|disable controller|completion polled)`,
);
// The NVMe controller gives up.
const RE_NVME_CTRL_DOWN = new RegExp(
  "^(controller is down; will reset|Device not ready; aborting reset|" +
    "Removing after probe failure|frozen state error detected|" +
    "Disabling device after reset failure)",
);
// ext4 cannot write metadata.
const RE_EXT4_CRIT =
  /^(I\/O error while writing superblock|failed to convert unwritten extents|Delayed block allocation failed)/;
// xfs_log_mount / xlog_recover failures.
const RE_XFS_LOG_MOUNT = new RegExp(
  String.raw`^(?:log mount\/recovery failed: error -?\d+|log mount failed|empty log check failed|` +
    String.raw`Log inconsistent|Failed to recover intents|log record CRC mismatch|` +
    String.raw`failed to locate log tail)`,
);
// XFS metadata corruption and assertions.
const RE_XFS_CORRUPTION =
  /^(?:Corruption warning: Metadata has LSN|Failing async write on buffer block 0x[0-9a-f]+\.|Assertion failed: )/;
// XFS shut the filesystem down.
const RE_XFS_SHUTDOWN = new RegExp(
  String.raw`^(?:Filesystem has been shut down|xfs_do_force_shutdown\(|` +
    String.raw`[\w/ -]+ (?:\(0x[0-9a-f]+\) )?[Dd]etected(?: at \S+ \(\S+\))?\.\s+Shutting down filesy` +
    String.raw`stem)`,
);

function classifyText(text: string): Outcome {
  // Cheapest checks first; most lines leave here.
  if (text.includes("callbacks suppressed")) {
    const m = RE_SUPPRESSED.exec(text);
    const n = Number(m?.[2]);
    return Number.isSafeInteger(n) ? { suppressed: n } : null; // past 2^53 the count is garbage
  }
  if (text.includes("error, dev ")) {
    const m = RE_BLK.exec(text);
    if (m) {
      const status = m[1] ?? "";
      const op = m[4];
      const known = BLK_STATUS.find(([s]) => status === s);
      const cls = known?.[1] ?? "blk_io_error";
      const detail = `${status} error${op ? ` on ${op}` : ""}, sector ${m[3]}`;
      return {
        ...c(cls, blkSeverity(cls, known?.[2] ?? "error", op), m[2] ?? null, "block", detail),
        sector: m[3] ?? "",
      };
    }
  }
  if (text.startsWith("Buffer I/O error on ")) {
    const m = RE_BUFFER.exec(text);
    if (m)
      return c(
        "buffer_io_error",
        m[2]?.startsWith("lost") ? "crit" : "error",
        m[1] ?? null,
        "block",
        m[2] ?? "read",
      );
  }
  if (text.startsWith("lost page write")) {
    const m = RE_LOST_PAGE.exec(text);
    if (m) return c("buffer_io_error", "crit", m[1] ?? null, "block", "lost page write");
  }
  if (text.includes(": writeback error on inode ")) {
    const m = RE_WRITEBACK.exec(text);
    if (m)
      return c(
        "writeback_error",
        "crit",
        m[1] ?? null,
        "block",
        "writeback error: acknowledged data lost",
      );
  }
  if (text.startsWith("sd ")) {
    const m = RE_SCSI.exec(text);
    if (m) {
      const rest = m[4] ?? "";
      if (
        /^(?:rejecting I\/O to (?:offline|dead) device|Device offlined - not ready after error recovery)/.test(
          rest,
        )
      )
        return c("scsi_device_offline", "crit", m[1] ?? null, "scsi", rest);
      // 3.x printed two spaces after "[sdX]".
      if (RE_SENSE_KEY.test(rest) || RE_ADD_SENSE.test(rest)) {
        const o = m[2]
          ? { ...c("scsi_medium_error", "crit", m[2], "block", rest), scsi: m[1] ?? "" }
          : c("scsi_medium_error", "crit", m[1] ?? null, "scsi", rest);
        return m[3] === undefined ? o : { ...o, request: `tag#${m[3]}` };
      }
    }
    return null;
  }
  if (text.startsWith("ata")) {
    const m = RE_ATA.exec(text);
    if (m) {
      const rest = m[2] ?? "";
      if (RE_ATA_LINK_RESET.test(rest))
        return c("ata_link_reset", "warn", m[1] ?? null, "ata", rest);
      // One ATA incident prints several lines; count the exception header, keep the rest as context.
      if (/^exception Emask 0x[0-9a-f]+ /.test(rest))
        return c("ata_error", "error", m[1] ?? null, "ata", rest);
      // The flag words between braces are the kernel's (ata_eh); nothing else may sit there.
      if (/^error: \{ (?:[A-Z]+ )*UNC (?:[A-Z]+ )*\}/.test(rest))
        return c("ata_error", "crit", m[1] ?? null, "ata", rest);
      if (/^failed command: [A-Z]|^(?:status|error): \{ (?:[A-Z]+ )+\}/.test(rest)) {
        return { ...c("ata_error", "error", m[1] ?? null, "ata", rest), count: 0 };
      }
    }
    return null;
  }
  if (text.startsWith("nvme")) {
    const ctrl = RE_NVME_CTRL.exec(text);
    if (ctrl) {
      const rest = ctrl[2] ?? "";
      // "I/O 728 QID 6", "I/O tag 4 (0004) QID 0", "I/O tag 0 (3000) opcode 0x1 (I/O Cmd) QID 1"
      if (RE_NVME_TIMEOUT.test(rest)) {
        return c(
          "nvme_timeout",
          /reset controller|disable controller/.test(rest) ? "error" : "warn",
          ctrl[1] ?? null,
          "nvme_ctrl",
          rest,
        );
      }
      if (RE_NVME_CTRL_DOWN.test(rest)) {
        return c("nvme_controller_failure", "crit", ctrl[1] ?? null, "nvme_ctrl", rest);
      }
      return null;
    }
    const cmd = RE_NVME_CMD.exec(text);
    if (cmd)
      return c(
        "nvme_io_error",
        cmd[3] === "0x2" ? "crit" : "error",
        cmd[1] ?? null,
        "block",
        `${cmd[2]} (sct ${cmd[3]} / sc ${cmd[4]})`,
      );
    return null;
  }
  if (text.startsWith("EXT4-fs ")) {
    const e = RE_EXT4_ERR.exec(text);
    if (e) {
      const rest = e[3] ?? "";
      // Periodic history reminders; anchored, so a comm in a real error cannot hide it.
      if (/^(?:error count since last fsck|initial error at|last error at)/.test(rest)) return null;
      return c("ext4_error", e[1] === "error" ? "crit" : "error", e[2] ?? null, "block", rest);
    }
    const f = RE_EXT4_FS.exec(text);
    if (f) {
      const rest = f[2] ?? "";
      if (/^Remounting filesystem read-only/.test(rest))
        return c("fs_readonly", "crit", f[1] ?? null, "block", rest);
      if (RE_EXT4_CRIT.test(rest)) return c("ext4_error", "crit", f[1] ?? null, "block", rest);
    }
    return null;
  }
  if (text.startsWith("Aborting journal") || text.startsWith("JBD2: ")) {
    const m = RE_JOURNAL.exec(text);
    if (m) return c("fs_journal_abort", "crit", m[1] ?? m[2] ?? null, "block", text);
    return null;
  }
  if (text.startsWith("XFS: ")) {
    // No filesystem to name (xfs_alert(NULL, ...)): 2.6.32-era and early-mount reports.
    const rest = text.slice(5);
    if (RE_XFS_INTERNAL.test(rest)) return c("xfs_error", "crit", null, "none", rest);
    if (rest.startsWith("Assertion failed: ")) return c("xfs_error", "error", null, "none", rest);
    return null;
  }
  if (text.startsWith("XFS (")) {
    const m = RE_XFS.exec(text);
    if (!m) return null;
    const rest = m[2] ?? "";
    // Repeated every 30 s (xfs_log_force, 3.x-4.x) while the filesystem stays shut down.
    if (/^xfs_log_force: error -?\d+ returned/.test(rest))
      return { ...c("xfs_shutdown", "crit", m[1] ?? null, "block", rest), repeats: true };
    if (RE_XFS_INTERNAL.test(rest)) return c("xfs_error", "crit", m[1] ?? null, "block", rest);
    // xfs_log_mount / xlog_recover: the log cannot be replayed, the filesystem does not mount.
    if (RE_XFS_LOG_MOUNT.test(rest)) {
      return c("xfs_error", "crit", m[1] ?? null, "block", rest);
    }
    if (RE_XFS_CORRUPTION.test(rest)) return c("xfs_error", "error", m[1] ?? null, "block", rest);
    // "Metadata I/O Error (0x1) detected at f+0x2a0/0x3a0 (fs/xfs/x.c:311).  Shutting down
    // filesystem." (5.x/6.x), "Log I/O Error Detected.  Shutting down filesystem" (4.x).
    if (RE_XFS_SHUTDOWN.test(rest)) {
      return c("xfs_shutdown", "crit", m[1] ?? null, "block", rest);
    }
    if (
      /^(?:Corruption detected|Metadata corruption detected|Metadata CRC error detected)/.test(rest)
    )
      return c("xfs_error", "crit", m[1] ?? null, "block", rest);
    if (/^(?:(?:metadata |log )?I\/O error|writeback error)/.test(rest))
      return c("xfs_error", "error", m[1] ?? null, "block", rest);
    return null; // "Please unmount ..." and mount chatter are context
  }
  if (text.startsWith("BTRFS")) {
    const e2 = RE_BTRFS_ERR2.exec(text);
    if (e2) return c("btrfs_error", "crit", e2[1] ?? null, "block", e2[2]);
    const m = RE_BTRFS.exec(text);
    if (!m) return null;
    const level = m[1] ?? "";
    const rest = m[3] ?? "";
    for (const [re, sev] of RE_BTRFS_MEMBER) {
      const mm = re.exec(rest);
      // The kernel prints these at error/warning level; an "info" copy is not its message.
      if (mm) return level === "info" ? null : c("btrfs_error", sev, mm[1] ?? null, "block", rest);
    }
    const dio = RE_BTRFS_DIO.exec(rest);
    if (dio)
      return c(
        "btrfs_error",
        dio[1] === "1" || dio[2] === "0x1" ? "crit" : "error",
        m[2] ?? null,
        "block",
        rest,
      );
    const errs = RE_BTRFS_ERRS.exec(rest);
    if (errs) {
      if (level === "info") return null; // the mount-time replay of cumulative counters
      const counters = {
        wr: Number(errs[2]),
        rd: Number(errs[3]),
        flush: Number(errs[4]),
        corrupt: Number(errs[5]),
        gen: Number(errs[6]),
      };
      const fault = c("btrfs_error", "error", errs[1] ?? null, "block", rest);
      // Counters past 2^53 cannot be differenced: the line still counts as one fault.
      return Object.values(counters).every(Number.isSafeInteger)
        ? { ...fault, btrfsCounters: counters }
        : fault;
    }
    if (rest.startsWith("forced readonly"))
      return c("fs_readonly", "crit", m[2] ?? null, "block", rest);
    if (level === "error" || level === "critical" || level === "crit")
      return c("btrfs_error", "error", m[2] ?? null, "block", rest);
    if (level === "warning" && rest.startsWith("csum failed "))
      return c("btrfs_error", "error", m[2] ?? null, "block", rest);
    return null;
  }
  if (text.startsWith("md/raid")) return classifyMd(text);
  if (text.startsWith("md: ")) {
    // md.c super_written: the array's superblock write failed on some member (the line does
    // not say which; the member's "Disk failure" line follows).
    const m = RE_MD_SUPER.exec(text);
    return m ? c("md_io_error", "crit", null, "none", text) : null;
  }
  if (text.startsWith("device-mapper: multipath")) {
    const m = RE_DM_PATH.exec(text);
    if (m) return c("dm_path_failure", "error", m[1] ?? null, "devt", text);
    return null;
  }
  if (text.startsWith("INFO: task ")) {
    const m = RE_HUNG.exec(text);
    if (m) {
      const comm = m[1] ?? "";
      const dev =
        /^jbd2\/(\S+?)-\d+$/.exec(comm)?.[1] ?? /^xfsaild\/(\S+)$/.exec(comm)?.[1] ?? null;
      const hung = c(
        "hung_task",
        "warn",
        dev,
        dev ? "block" : "none",
        `${comm}:${m[2]} blocked for more than ${m[3]} s`,
      );
      const pid = Number(m[2]);
      return Number.isSafeInteger(pid) ? { ...hung, pid } : hung;
    }
  }
  return null;
}

function blkSeverity(
  cls: KernelErrorClass,
  status: KernelSeverity,
  op: string | undefined,
): KernelSeverity {
  if (cls === "blk_medium_error" || cls === "blk_offline") return "crit";
  // Thin/SAN LUNs rejecting DISCARD/WRITE_ZEROES is common and mostly benign.
  if (cls === "blk_target_error" && (op === "DISCARD" || op === "WRITE_ZEROES")) return "warn";
  // Timeouts and transport errors are retried on another path by dm-multipath
  // (blk_path_error): on a path device they lose nothing yet, whatever the operation.
  if (cls === "blk_timeout" || cls === "blk_transport_error") return status;
  // Own keys only: the op is printed text ("__proto__" is a \w+ too).
  return op !== undefined && Object.hasOwn(BLK_OP_SEVERITY, op)
    ? (BLK_OP_SEVERITY[op] ?? status)
    : status;
}

function classifyMd(text: string): Classified | null {
  let m = RE_MD.exec(text);
  if (m) return c("md_disk_failure", "crit", m[2] ?? null, "block", `array ${m[1]}`);
  if ((m = RE_MD_ARRAY.exec(text)))
    return c(
      "md_array_failed",
      "crit",
      m[1] ?? null,
      "block",
      `${m[2]} of ${m[3]} devices failed: the array stopped`,
    );
  if ((m = RE_MD_TOO_MANY.exec(text)))
    return c(
      "md_disk_failure",
      "crit",
      m[2] ?? null,
      "block",
      `array ${m[1]}: too many read errors`,
    );
  if ((m = RE_MD_SECTOR.exec(text)))
    return {
      ...c("md_io_error", "crit", m[4] ?? null, "block", `array ${m[1]}: ${m[2]}`),
      sector: m[3] ?? "",
    };
  // Corrected from redundancy: nothing lost, but the member has a bad spot.
  if ((m = RE_MD_CORRECTED.exec(text)))
    return {
      ...c(
        "md_io_error",
        m[2] === "read error corrected" ? "warn" : "error",
        m[5] ?? null,
        "block",
        `array ${m[1]}: ${m[2]}`,
      ),
      sector: m[4] ?? "",
    };
  if ((m = RE_MD_MEMBER.exec(text))) {
    const what = m[3] ?? "";
    const sev: KernelSeverity = what === "rescheduling sector" ? "warn" : "crit";
    return c(
      what.startsWith("Raid device") || what.startsWith("Failing")
        ? "md_disk_failure"
        : "md_io_error",
      sev,
      m[2] ?? null,
      "block",
      `array ${m[1]}: ${what}`,
    );
  }
  return null;
}

/**
 * Name rules that need no sysfs: nvme path devices to their namespace, partitions to their disk.
 * Returns the whole disk (for the metric label) and the partition, if the name was one.
 */
export function normaliseBlockName(name: string): { disk: string; partition: string | null } {
  const path = /^(nvme\d+)c\d+(n\d+)$/.exec(name);
  if (path) return { disk: `${path[1]}${path[2]}`, partition: null };
  const p =
    /^(nvme\d+n\d+)p\d+$/.exec(name) ??
    /^(mmcblk\d+)p\d+$/.exec(name) ??
    /^((?:s|h|v|xv)d[a-z]+)\d+$/.exec(name) ??
    /^(nbd\d+)p\d+$/.exec(name) ??
    /^(loop\d+)p\d+$/.exec(name) ??
    /^((?:cciss|ida|rd)!c\d+d\d+)p\d+$/.exec(name); // sysfs spelling of cciss/c0d0p1
  return p ? { disk: p[1] as string, partition: name } : { disk: name, partition: null };
}
