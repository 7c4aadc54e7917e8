// errcounters observation: the kernel's own error counters per disk and filesystem (SCSI's
// command counters, ext4's error record, btrfs's per-device error stats), the rises since the
// previous sample, and which rises the kernel log accounts for.
// Pure types: what the core, status, diagnose and remediators read; no implementation.
import type { BtrfsStat, BtrfsStats, Ext4ErrorRecord } from "./parse.js";

export type { BtrfsStat, BtrfsStats, Ext4ErrorRecord } from "./parse.js";

/** A SCSI disk's counters (/sys/block/sdX/device/io*_cnt), since the device was attached. */
export interface ScsiDisk {
  readonly device: string;
  /** iodone_cnt: commands completed, whatever the result. */
  readonly done: number;
  /** ioerr_cnt: commands completed with a nonzero result (check conditions included). */
  readonly errors: number;
  /** iotmo_cnt: commands that timed out. */
  readonly timeouts: number;
}

/** An ext4 filesystem's error record (/sys/fs/ext4/<dev>/), kept in its superblock until fsck. */
export interface Ext4Fs {
  /** The kernel's name of the filesystem's device (sda1, loop0, dm-0). */
  readonly device: string;
  /** The whole disk, as the kernel-log collector names it (sda for sda1). */
  readonly disk: string;
  readonly mountpoint: string;
  /** errors_count: errors since the last fsck. */
  readonly errors: number;
  readonly first: Ext4ErrorRecord | null;
  readonly last: Ext4ErrorRecord | null;
}

/** btrfs error stats of one member device, or why there are none (kernels before 5.14). */
export type BtrfsCounters = { readonly stats: BtrfsStats } | { readonly unavailable: string };

export interface BtrfsDevice {
  readonly fsid: string;
  /** null when the kernel has no devinfo/ (before 5.9): the filesystem as a whole. */
  readonly devid: number | null;
  /** The member's block device (loop2, sdb1); null when sysfs does not say which devid it is. */
  readonly device: string | null;
  readonly disk: string | null;
  readonly mountpoint: string;
  readonly counters: BtrfsCounters;
}

/** An XFS filesystem: XFS exposes no error counter in sysfs (only retry policy, stats, log). */
export interface XfsFs {
  readonly device: string;
  readonly mountpoint: string;
}

export type CounterKind = "scsi_ioerr" | "scsi_iotmo" | "ext4_errors" | `btrfs_${BtrfsStat}`;

/** A counter that went up between two samples. */
export interface Rise {
  readonly counter: CounterKind;
  /** The device label: sdb, loop0, or "devid 2" for a btrfs member sysfs does not name. */
  readonly device: string;
  /** Whole disk the kernel log would name; null when not known (no cross-check then). */
  readonly disk: string | null;
  readonly mountpoint: string | null;
  readonly from: number;
  readonly to: number;
  /** Wall clock (ms) of the previous sample and of this one: the rise happened in between. */
  readonly sinceMs: number;
  readonly atMs: number;
  /**
   * Whether the kernel prints a line for every such rise (ext4 errors, btrfs device errors,
   * each behind a rate limit). SCSI's counters move for results no one logs: not checked.
   */
  readonly logged: boolean;
}

/** What the kernel log held on the rise's disk in the window around it. */
export interface LogCheck {
  readonly rise: Rise;
  /** Storage fault lines the kernel-log collector recorded on the disk within the window. */
  readonly lines: number;
  /** Records the kernel-log collector lost (overwritten before read) within the window. */
  readonly lost: number;
  /** Messages the kernel said it suppressed ("callbacks suppressed") within the window. */
  readonly suppressed: number;
  /** The window searched, wall clock ms. */
  readonly fromMs: number;
  readonly toMs: number;
}

export type CrossCheck =
  | { readonly state: "on"; readonly windowMs: number }
  | { readonly state: "off"; readonly reason: string };

export interface ErrcountersObservation {
  /** Sorted by name, at most MAX_DISKS. */
  readonly scsi: readonly ScsiDisk[];
  readonly ext4: readonly Ext4Fs[];
  readonly btrfs: readonly BtrfsDevice[];
  readonly xfs: readonly XfsFs[];
  /** Left out by the caps (MAX_DISKS, MAX_FILESYSTEMS). */
  readonly omitted: { readonly scsi: number; readonly filesystems: number };
  /** What could not be read this time, for people. */
  readonly notes: readonly string[];
  /** Rises since the previous sample (none on the first: it is the baseline). */
  readonly rises: readonly Rise[];
  /** Rises whose window closed this sample, with what the kernel log held. */
  readonly checks: readonly LogCheck[];
  /** Rises still waiting for their window to close. */
  readonly pending: number;
  readonly crossCheck: CrossCheck;
}
