// Mount options that matter for a database's WAL and data, from the StemeDB runbooks. Pure.

export type FindingSeverity = "crit" | "warn" | "info";

export interface MountFinding {
  /** The option as it appears in the mount, e.g. "ro", "data=journal", "nobarrier". */
  readonly option: string;
  readonly severity: FindingSeverity;
  readonly reason: string;
}

export type Ext4ErrorsDefault = "continue" | "remount-ro" | "panic";

/**
 * `options` are the per-mount and per-superblock options together. ext2/3/4 print `errors=` only
 * when it differs from the superblock's default, so that default (read from the superblock by the
 * caller) decides when no option is shown.
 */
export function mountFindings(
  fsType: string,
  options: readonly string[],
  superblockErrors: Ext4ErrorsDefault | null = null,
): MountFinding[] {
  const has = (o: string) => options.includes(o);
  const out: MountFinding[] = [];
  if (has("ro"))
    out.push({
      option: "ro",
      severity: "crit",
      reason: "read-only: every WAL write and fsync fails",
    });
  if (has("nobarrier") || has("barrier=0")) {
    out.push({
      option: has("nobarrier") ? "nobarrier" : "barrier=0",
      severity: "crit",
      reason:
        "write barriers off: fsync does not flush the device cache, " +
        "so acknowledged commits can be lost on power failure",
    });
  }
  const implicit = !options.some((o) => o.startsWith("errors=")) && superblockErrors === "continue";
  if (has("errors=continue") || implicit) {
    const source = implicit ? " (the superblock's default, not shown in the mount options)" : "";
    out.push({
      option: "errors=continue",
      severity: "warn",
      reason:
        `the filesystem keeps writing after it detects corruption${source} ` +
        `(unsafe; errors=remount-ro stops the damage)`,
    });
  }
  if (has("data=journal"))
    out.push({
      option: "data=journal",
      severity: "warn",
      reason: "all data goes through the journal: every write is done twice (slow)",
    });
  if (has("sync"))
    out.push({
      option: "sync",
      severity: "warn",
      reason: "every write is synchronous (slow; the database already fsyncs what must be durable)",
    });
  if (has("dirsync"))
    out.push({
      option: "dirsync",
      severity: "info",
      reason: "directory updates are synchronous (slower segment creation)",
    });
  if (!has("noatime") && /^(ext[234]|xfs|btrfs|f2fs)$/.test(fsType))
    out.push({
      option: "atime",
      severity: "info",
      reason: "no noatime: reads update access times (extra metadata writes)",
    });
  return out;
}
