// Which kernel-log lines are storage faults, of what class, on which device. Pure.
// Formats from several kernel eras (shared/notes/kmsg.md section 5); regressions are pinned by
// the table in test/kmsg-classify.test.ts. Prefilters (indexOf) keep the common non-matching
// line cheap: a storm must classify at tens of thousands of lines per second.

export type KernelErrorClass =
  | "blk_io_error" | "blk_medium_error" | "blk_target_error" | "blk_timeout" | "blk_transport_error" | "blk_offline"
  | "buffer_io_error" | "writeback_error"
  | "scsi_medium_error" | "scsi_device_offline"
  | "ata_error" | "ata_link_reset"
  | "nvme_timeout" | "nvme_controller_failure" | "nvme_io_error"
  | "ext4_error" | "fs_journal_abort" | "fs_readonly"
  | "xfs_error" | "xfs_shutdown"
  | "btrfs_error"
  | "md_disk_failure" | "dm_path_failure"
  | "hung_task";

export type Severity = "warn" | "error" | "crit";

export interface Classified {
  readonly class: KernelErrorClass;
  readonly severity: Severity;
  /** As printed: a disk, partition, dm/md name, "ata3.00", "2:0:0:0" (SCSI), "8:16" (dev_t), or null. */
  readonly device: string | null;
  /** How the device token is to be resolved. */
  readonly deviceKind: "block" | "ata" | "scsi" | "devt" | "nvme_ctrl" | "none";
  /** How many faults this line stands for (btrfs counter deltas are computed by the caller). */
  readonly count: number;
  readonly detail?: string;
  /** btrfs cumulative counters ("errs: wr a, rd b, ..."), for deltas. */
  readonly btrfsCounters?: Readonly<Record<string, number>>;
}

export type Outcome = Classified | { readonly suppressed: number } | null;

const BLK_STATUS: ReadonlyArray<readonly [string, KernelErrorClass, Severity]> = [
  ["critical medium", "blk_medium_error", "crit"],
  ["critical target", "blk_target_error", "error"],
  ["timeout", "blk_timeout", "error"],
  ["recoverable transport", "blk_transport_error", "error"],
  ["device offline", "blk_offline", "crit"],
];

const RE_BLK = /^(?:(?:end_request|blk_update_request|print_req_error|blk_print_req_error): )?(.+?) error, dev ([^,\s]+), sector (\d+)(?: op 0x[0-9a-f]+:\((\w+)\))?/;
const RE_BUFFER = /^Buffer I\/O error on (?:dev|device) ([^,\s]+), logical block \d+(?:, (lost (?:a?sync )?page write|async page read))?/;
const RE_LOST_PAGE = /^lost page write due to I\/O error on (\S+?)(?:,|$)/;
const RE_WRITEBACK = /^([\w.-]+): writeback error on inode \d+/;
const RE_SCSI = /^sd (\d+:\d+:\d+:\d+): (?:\[(\w+)\] )?(?:tag#\d+ )?(.*)$/;
const RE_ATA = /^(ata\d+(?:\.\d+)?): (.*)$/;
const RE_NVME_CTRL = /^nvme (nvme\d+): (.*)$/;
const RE_NVME_CMD = /^(nvme\d+(?:c\d+)?n\d+): .*@ LBA \d+, \d+ blocks, (.+?) \(sct (0x[0-9a-f]+) \/ sc (0x[0-9a-f]+)\)/;
const RE_EXT4_ERR = /^EXT4-fs (error|warning) \(device ([^)\s]+)\)(?::| in) (.*)$/;
const RE_EXT4_FS = /^EXT4-fs \(([^)\s]+)\): (.*)$/;
const RE_JOURNAL = /^(?:Aborting journal on device (\S+?)-\d+\.?$|JBD2: (?:Detected IO errors while flushing file data on|I\/O error when updating journal superblock for|Error -?\d+ detected when updating journal superblock for) (\S+?)-\d+\.?$)/;
const RE_XFS = /^XFS \(([^)\s]+)\): (.*)$/;
const RE_BTRFS = /^BTRFS(?: (error|warning|critical|info|crit))? \(device ([^)\s]+)(?: state \w+)?\): (.*)$/;
const RE_BTRFS_ERR2 = /^BTRFS: error \(device ([^)\s]+)(?: state \w+)?\) in (.*)$/;
const RE_BTRFS_ERRS = /^bdev \/dev\/(\S+) errs: wr (\d+), rd (\d+), flush (\d+), corrupt (\d+), gen (\d+)/;
const RE_MD = /^md\/raid\d*:(md\w+): Disk failure on ([^,\s]+), disabling device\./;
const RE_DM_PATH = /^device-mapper: multipath: (?:\d+:\d+: )?Failing path (\d+:\d+)\./;
const RE_HUNG = /^INFO: task (.+):(\d+) blocked for more than (\d+) seconds\./;
const RE_SUPPRESSED = /^([\w.]+): (\d+) callbacks suppressed$/;

const c = (cls: KernelErrorClass, severity: Severity, device: string | null, deviceKind: Classified["deviceKind"], detail?: string): Classified => ({
  class: cls, severity, device, deviceKind, count: 1, ...(detail !== undefined ? { detail } : {}),
});

export function classify(text: string): Outcome {
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
      if (known) {
        // Thin/SAN LUNs rejecting DISCARD/WRITE_ZEROES is common and mostly benign.
        const sev = known[1] === "blk_target_error" && (op === "DISCARD" || op === "WRITE_ZEROES") ? "warn" : known[2];
        return c(known[1], sev, m[2] ?? null, "block", `${status} error${op ? ` on ${op}` : ""}, sector ${m[3]}`);
      }
      return c("blk_io_error", op === "WRITE" || op === "FLUSH" ? "crit" : "error", m[2] ?? null, "block", `${status} error${op ? ` on ${op}` : ""}, sector ${m[3]}`);
    }
  }
  if (text.startsWith("Buffer I/O error on ")) {
    const m = RE_BUFFER.exec(text);
    if (m) return c("buffer_io_error", m[2]?.startsWith("lost") ? "crit" : "error", m[1] ?? null, "block", m[2] ?? "read");
  }
  if (text.startsWith("lost page write")) {
    const m = RE_LOST_PAGE.exec(text);
    if (m) return c("buffer_io_error", "crit", m[1] ?? null, "block", "lost page write");
  }
  if (text.includes(": writeback error on inode ")) {
    const m = RE_WRITEBACK.exec(text);
    if (m) return c("writeback_error", "crit", m[1] ?? null, "block", "writeback error: acknowledged data lost");
  }
  if (text.startsWith("sd ")) {
    const m = RE_SCSI.exec(text);
    if (m) {
      const rest = m[3] ?? "";
      if (/rejecting I\/O to (offline|dead) device|Device offlined - not ready after error recovery/.test(rest)) return c("scsi_device_offline", "crit", m[1] ?? null, "scsi", rest);
      if (/Sense Key : (Medium Error|Hardware Error)|Add\. Sense: (Unrecovered read error|Write error)/.test(rest)) {
        return m[2] ? c("scsi_medium_error", "crit", m[2], "block", rest) : c("scsi_medium_error", "crit", m[1] ?? null, "scsi", rest);
      }
    }
    return null;
  }
  if (text.startsWith("ata")) {
    const m = RE_ATA.exec(text);
    if (m) {
      const rest = m[2] ?? "";
      if (/^(hard resetting link|SATA link down|limiting SATA link speed|COMRESET failed|link is slow to respond|softreset failed)/.test(rest)) return c("ata_link_reset", "warn", m[1] ?? null, "ata", rest);
      if (/^exception Emask|^failed command: |^error: \{.*UNC|^status: \{.*ERR/.test(rest)) {
        // One ATA incident prints several lines; count the exception header, keep the rest as context.
        if (rest.startsWith("exception Emask")) return c("ata_error", "error", m[1] ?? null, "ata", rest);
        if (/UNC|media error/.test(rest)) return c("ata_error", "crit", m[1] ?? null, "ata", rest);
        return { ...c("ata_error", "error", m[1] ?? null, "ata", rest), count: 0 };
      }
    }
    return null;
  }
  if (text.startsWith("nvme")) {
    const ctrl = RE_NVME_CTRL.exec(text);
    if (ctrl) {
      const rest = ctrl[2] ?? "";
      if (/ timeout, (aborting|reset controller|disable controller|completion polled)/.test(rest)) {
        return c("nvme_timeout", /reset controller|disable controller/.test(rest) ? "error" : "warn", ctrl[1] ?? null, "nvme_ctrl", rest);
      }
      if (/^(controller is down; will reset|Device not ready; aborting reset|Removing after probe failure|frozen state error detected|Disabling device after reset failure)/.test(rest)) {
        return c("nvme_controller_failure", "crit", ctrl[1] ?? null, "nvme_ctrl", rest);
      }
      return null;
    }
    const cmd = RE_NVME_CMD.exec(text);
    if (cmd) return c("nvme_io_error", cmd[3] === "0x2" ? "crit" : "error", cmd[1] ?? null, "block", `${cmd[2]} (sct ${cmd[3]} / sc ${cmd[4]})`);
    return null;
  }
  if (text.startsWith("EXT4-fs ")) {
    const e = RE_EXT4_ERR.exec(text);
    if (e) {
      const rest = e[3] ?? "";
      if (/error count since last fsck|initial error at|last error at/.test(rest)) return null; // periodic history reminders
      return c("ext4_error", e[1] === "error" ? "crit" : "error", e[2] ?? null, "block", rest);
    }
    const f = RE_EXT4_FS.exec(text);
    if (f) {
      const rest = f[2] ?? "";
      if (/^Remounting filesystem read-only/.test(rest)) return c("fs_readonly", "crit", f[1] ?? null, "block", rest);
      if (/^(I\/O error while writing superblock|failed to convert unwritten extents|Delayed block allocation failed)/.test(rest)) return c("ext4_error", "crit", f[1] ?? null, "block", rest);
    }
    return null;
  }
  if (text.startsWith("Aborting journal") || text.startsWith("JBD2: ")) {
    const m = RE_JOURNAL.exec(text);
    if (m) return c("fs_journal_abort", "crit", m[1] ?? m[2] ?? null, "block", text);
    return null;
  }
  if (text.startsWith("XFS (")) {
    const m = RE_XFS.exec(text);
    if (!m) return null;
    const rest = m[2] ?? "";
    if (/Shutting down filesystem|Filesystem has been shut down|xfs_do_force_shutdown/.test(rest)) return c("xfs_shutdown", "crit", m[1] ?? null, "block", rest);
    if (/[Cc]orruption detected|Metadata CRC error/.test(rest)) return c("xfs_error", "crit", m[1] ?? null, "block", rest);
    if (/metadata I\/O error|log I\/O error|writeback error|I\/O error/.test(rest)) return c("xfs_error", "error", m[1] ?? null, "block", rest);
    return null; // "Please unmount ..." and mount chatter are context
  }
  if (text.startsWith("BTRFS")) {
    const e2 = RE_BTRFS_ERR2.exec(text);
    if (e2) return c("btrfs_error", "crit", e2[1] ?? null, "block", e2[2]);
    const m = RE_BTRFS.exec(text);
    if (!m) return null;
    const level = m[1] ?? "";
    const rest = m[3] ?? "";
    const errs = RE_BTRFS_ERRS.exec(rest);
    if (errs) {
      if (level === "info") return null; // the mount-time replay of cumulative counters
      const counters = { wr: Number(errs[2]), rd: Number(errs[3]), flush: Number(errs[4]), corrupt: Number(errs[5]), gen: Number(errs[6]) };
      const fault = c("btrfs_error", "error", errs[1] ?? null, "block", rest);
      // Counters past 2^53 cannot be differenced: the line still counts as one fault.
      return Object.values(counters).every(Number.isSafeInteger) ? { ...fault, btrfsCounters: counters } : fault;
    }
    if (/forced readonly/.test(rest)) return c("fs_readonly", "crit", m[2] ?? null, "block", rest);
    if (level === "error" || level === "critical" || level === "crit") return c("btrfs_error", "error", m[2] ?? null, "block", rest);
    if (level === "warning" && /csum failed/.test(rest)) return c("btrfs_error", "error", m[2] ?? null, "block", rest);
    return null;
  }
  if (text.startsWith("md/raid")) {
    const m = RE_MD.exec(text);
    if (m) return c("md_disk_failure", "crit", m[2] ?? null, "block", `array ${m[1]}`);
    return null;
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
      const dev = /^jbd2\/(\S+?)-\d+$/.exec(comm)?.[1] ?? /^xfsaild\/(\S+)$/.exec(comm)?.[1] ?? null;
      return c("hung_task", "warn", dev, dev ? "block" : "none", `${comm}:${m[2]} blocked for more than ${m[3]} s`);
    }
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
    /^(loop\d+)p\d+$/.exec(name);
  return p ? { disk: p[1] as string, partition: name } : { disk: name, partition: null };
}
