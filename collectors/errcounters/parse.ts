// Pure parsers of the kernel's own error counters in sysfs: SCSI's per-device command counters,
// ext4's error record, btrfs's per-device error stats. Each file is text the kernel formats, but
// the values can come from a crafted on-disk superblock (ext4's function name and times), so
// every parser bounds its input and answers null for anything the kernel would not print.

/** Read at most this much of one attribute: the kernel prints at most a page, these far less. */
export const MAX_ATTR_BYTES = 4096;

/**
 * A counter: SCSI's "0x1f" (show_sdev_iostat() in drivers/scsi/scsi_sysfs.c prints an atomic_t
 * as "0x%llx", so it wraps at 2^32: a reset to the sinks), or ext4's and btrfs's decimal. A
 * non-negative integer Number holds exactly, or null.
 */
export function parseCounter(text: string): number | null {
  const s = text.trim();
  // 2^53 needs 14 hex or 16 decimal digits: anything longer is not a value we can hold.
  let v: number;
  if (/^0x[0-9a-f]{1,14}$/i.test(s)) v = Number.parseInt(s.slice(2), 16);
  else if (/^[0-9]{1,16}$/.test(s)) v = Number(s);
  else return null;
  return Number.isSafeInteger(v) ? v : null;
}

/** Seconds since the epoch where no error was ever recorded is 0: null. Past 2^40 s is not a time. */
export function parseEpochSeconds(text: string): number | null {
  const v = parseCounter(text);
  return v === null || v === 0 || v >= 2 ** 40 ? null : v;
}

/** ext4 stores the function name in 32 bytes (s_first_error_func); a C identifier, or null. */
const FUNC = /^[A-Za-z_][A-Za-z0-9_]{0,31}$/;
export function parseFunctionName(text: string): string | null {
  const s = text.trim();
  return FUNC.test(s) ? s : null;
}

/** One of ext4's first_error_* / last_error_* records as sysfs shows it (fs/ext4/sysfs.c). */
export interface Ext4ErrorRecord {
  /** Seconds since the epoch. */
  readonly time_s: number;
  /** The kernel function that reported it; null when empty or not an identifier. */
  readonly func: string | null;
  /** Source line, inode, block and errno where recorded (0 on disk means none: null). */
  readonly line: number | null;
  readonly ino: number | null;
  readonly block: number | null;
  readonly errcode: number | null;
}

/** The record's files, read by the caller (undefined: the file is missing on this kernel). */
export interface Ext4RecordFiles {
  readonly time: string | undefined;
  readonly func: string | undefined;
  readonly line?: string | undefined;
  readonly ino?: string | undefined;
  readonly block?: string | undefined;
  readonly errcode?: string | undefined;
}

const nonZero = (t: string | undefined): number | null => {
  const v = t === undefined ? null : parseCounter(t);
  return v === 0 ? null : v;
};

/** A first or last error record, or null when none was recorded (time 0) or the time is garbage. */
export function parseExt4Record(f: Ext4RecordFiles): Ext4ErrorRecord | null {
  const time_s = f.time === undefined ? null : parseEpochSeconds(f.time);
  if (time_s === null) return null;
  return {
    time_s,
    func: f.func === undefined ? null : parseFunctionName(f.func),
    line: nonZero(f.line),
    ino: nonZero(f.ino),
    block: nonZero(f.block),
    errcode: nonZero(f.errcode),
  };
}

/** btrfs's per-device error counters (enum btrfs_dev_stat_values), in the order it prints them. */
export const BTRFS_STATS = ["write", "read", "flush", "corruption", "generation"] as const;
export type BtrfsStat = (typeof BTRFS_STATS)[number];
export type BtrfsStats = Readonly<Record<BtrfsStat, number>>;

/** A btrfs member as labels, events and status name it: its device, else its devid. */
export const btrfsMemberName = (b: {
  readonly device: string | null;
  readonly devid: number | null;
}): string => b.device ?? `devid ${b.devid}`;

/** A member's errors of every kind. */
export const btrfsTotal = (s: BtrfsStats): number => BTRFS_STATS.reduce((a, k) => a + s[k], 0);

/**
 * /sys/fs/btrfs/<fsid>/devinfo/<devid>/error_stats (5.14 on, btrfs_devinfo_error_stats_show):
 * "write_errs 0\nread_errs 0\nflush_errs 0\ncorruption_errs 0\ngeneration_errs 0\n".
 * Every counter exactly once, nothing else: otherwise an error saying what is wrong.
 */
export function parseBtrfsErrorStats(text: string): BtrfsStats | { error: string } {
  const out: Partial<Record<BtrfsStat, number>> = {};
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  if (lines.length > BTRFS_STATS.length) return { error: `${lines.length} lines, expected 5` };
  for (const l of lines) {
    const m = /^([a-z]+)_errs ([^ ]+)$/.exec(l.trim());
    const name = m?.[1] as BtrfsStat | undefined;
    if (!m || !name || !BTRFS_STATS.includes(name)) return { error: `unexpected line ${show(l)}` };
    if (out[name] !== undefined) return { error: `${name}_errs twice` };
    const v = parseCounter(m[2] ?? "");
    if (v === null) return { error: `${name}_errs is not a counter: ${show(m[2] ?? "")}` };
    out[name] = v;
  }
  const missing = BTRFS_STATS.filter((s) => out[s] === undefined);
  if (missing.length > 0) return { error: `missing ${missing.map((s) => `${s}_errs`).join(", ")}` };
  return out as BtrfsStats;
}

/** Untrusted text in a message: printable ASCII, at most 40 characters. */
export function show(s: string): string {
  const clean = s.replace(/[^\x20-\x7e]/g, "?");
  return JSON.stringify(clean.length > 40 ? `${clean.slice(0, 40)}...` : clean);
}
