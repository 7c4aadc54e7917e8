// process observation: the database's own processes (the judge's StemeDB predicate), grouped as
// process-exporter groups them: CPU, memory, threads, descriptors and states, with host context.
// Pure types: what the core, status, diagnose and remediators read; no implementation.

export interface DbProcess {
  readonly pid: number;
  readonly comm: string;
  /** The systemd unit its cgroup belongs to, when it has one. */
  readonly unit: string | null;
  /** One-letter state from /proc/<pid>/stat (R, S, D, Z, ...). */
  readonly state: string;
  /** CPU used over the last interval in cores (1 = one core busy); null on its first sample. */
  readonly cpu_cores: number | null;
  readonly rss_bytes: number;
  readonly threads: number;
  /** Open descriptors; null when /proc/<pid>/fd cannot be read. */
  readonly open_fds: number | null;
}

export interface ProcessObservation {
  readonly interval_seconds: number | null;
  /** Every database process found (agent excluded), busiest first. */
  readonly processes: readonly DbProcess[];
  /** The group's totals; cpu_cores is null until two samples exist. */
  readonly group: {
    readonly count: number;
    readonly cpu_cores: number | null;
    /** Cumulative CPU seconds of the processes alive now, by mode (counters, may go down on exit). */
    readonly cpu_seconds: { readonly user: number; readonly system: number };
    /**
     * CPU seconds by mode used in the interval (what the Prometheus counter adds, so it never
     * goes back when a process exits); null on the first sample.
     */
    readonly cpu_seconds_interval: { readonly user: number; readonly system: number } | null;
    readonly rss_bytes: number;
    readonly threads: number;
    /** Threads in uninterruptible sleep (D): usually waiting on storage. */
    readonly threads_in_d: number;
  };
  /** The host, for saturation: CPUs, how busy, how much is iowait; memory available. */
  readonly host: {
    readonly cpus: number;
    /** Share of all CPUs busy over the interval, 0..1; null on the first sample. */
    readonly busy_ratio: number | null;
    readonly iowait_ratio: number | null;
    readonly mem_total_bytes: number;
    readonly mem_available_bytes: number;
  };
}
