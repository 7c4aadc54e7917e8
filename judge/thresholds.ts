// Every figure the agent judges storage with, in one table: status, diagnose, events and the
// remediators read them through judge/index.ts, and test/judge.test.ts checks the README's
// threshold table against this object, so a figure changed here and not there fails a test.

const MiB = 1024 * 1024;

export const THRESHOLDS = {
  /**
   * One block device: iostat -x write-await / flush-await p99 and %util. Defaults of
   * `[thresholds]` disk_await_warn/crit and disk_util_warn: what is slow depends on the medium.
   */
  disk: {
    /** A device that takes 20 ms per write is behind the WAL's pace (fio's sync-write rule of thumb). */
    await_warn_seconds: 0.02,
    /** 100 ms per write or flush: the database's commits wait on it; the fleet alert's figure. */
    await_crit_seconds: 0.1,
    /** Busy 90% of the time: saturated, queueing starts (only a warning: SSDs serve in parallel). */
    util_warn_pct: 90,
    await_warn_config_key: "thresholds.disk_await_warn",
    await_crit_config_key: "thresholds.disk_await_crit",
    util_warn_config_key: "thresholds.disk_util_warn",
  },
  /**
   * WAL fsync p99 (the agent's probe and the database's own): the judge's definition of slow,
   * the fleet alerts' figures (StemeDBWalFsyncDegrading > 50 ms, StemeDBWalFsyncSlow > 100 ms),
   * so the page, status and diagnose agree. Operators tune them in `[thresholds]`, whose
   * defaults are these (a test checks both, and the alert rules). backup_pause's own
   * fsync_p99_threshold/resume_below only decide when it acts.
   */
  fsync: {
    p99_warn_seconds: 0.05,
    p99_crit_seconds: 0.1,
    warn_config_key: "thresholds.fsync_p99_warn",
    crit_config_key: "thresholds.fsync_p99_crit",
  },
  /**
   * An operation in flight (the probe, a history write, a database WAL write, a device's oldest
   * request): slow at 5 s, 50 times the fsync p99 that pages; a stall at 20 s, CockroachDB's
   * storage.max_sync_duration, a sixth of the kernel's 120 s hung-task timeout. Defaults of
   * `[stalls]`; the StemeDBStorageSlow and StemeDBStorageStalled alerts' figures.
   */
  stall: {
    slow_seconds: 5,
    stall_seconds: 20,
    slow_config_key: "stalls.slow_after",
    stall_config_key: "stalls.stall_after",
  },
  /** A filesystem: share used, and time to full at the recent rate. */
  filesystem: {
    used_warn_ratio: 0.85,
    used_crit_ratio: 0.95,
    /** Full within a day: someone must act this shift. */
    full_warn_seconds: 86_400,
    /** Full within an hour: the database stops writing before a human can plan. */
    full_crit_seconds: 3_600,
  },
  /**
   * The WAL's own filesystem_filling finding (warn): later than the filesystems area's warning,
   * it names the WAL as what fills up, when compressing segments can still win the time back.
   */
  wal_filling: {
    used_ratio: 0.9,
    full_seconds: 6 * 3_600,
  },
  /** A process (not StemeDB, not a kernel thread) moving this much is a competitor for the disk. */
  competing_io: {
    heavy_bytes_per_second: 10 * MiB,
  },
  /**
   * CPU: the database's processes using this share of all the host's CPUs, or the host itself
   * this busy, is saturation (replication and requests queue for CPU). Default of `[thresholds]`
   * db_cpu_warn; the StemeDBProcessCPUSaturated alert's figure (0.9).
   */
  cpu: {
    warn_ratio: 0.9,
    warn_config_key: "thresholds.db_cpu_warn",
  },
  /**
   * Network: retransmitted share of the TCP segments sent. 1% already costs a TCP flow much of
   * its throughput (the Mathis formula: rate ~ 1/sqrt(loss)); the TCPRetransmitsHigh alert's
   * figure (0.01). Interface errors or drops rising at all are a warning: a healthy link has none.
   */
  network: {
    retrans_warn_ratio: 0.01,
    retrans_warn_config_key: "thresholds.tcp_retrans_warn",
  },
  /**
   * The database's stemedb_replication_lag_seconds. 10 s: beyond the batching jitter of a healthy
   * replica, reads there are visibly stale. 60 s: a failover now loses a minute of writes and
   * catching up takes minutes even once the cause is gone: the page.
   */
  replication_lag: {
    warn_seconds: 10,
    crit_seconds: 60,
    warn_config_key: "thresholds.replication_lag_warn",
    crit_config_key: "thresholds.replication_lag_crit",
  },
  /**
   * The active WAL write test (agentctl diagnose --active), 1 MiB O_DIRECT writes: the runbook
   * expects over 100 MB/s on SSD. A rotational disk streams 100-200 MB/s on its outer tracks and
   * about half that on its inner ones: under 50 MB/s it is busy with something else or failing.
   */
  write_test: {
    ssd_bytes_per_second: 100e6,
    rotational_bytes_per_second: 50e6,
  },
} as const;
