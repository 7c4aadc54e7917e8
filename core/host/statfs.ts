// A filesystem's space from statfs(2), the one way the agent computes it. Pure.

/** The fields of Node's StatsFs (number form) that space is computed from. */
export interface StatfsFields {
  readonly bsize: number;
  readonly blocks: number;
  readonly bfree: number;
  readonly bavail: number;
  readonly files: number;
  readonly ffree: number;
}

export interface Space {
  readonly size_bytes: number;
  /** Free bytes, including those reserved for root. */
  readonly free_bytes: number;
  /** Bytes available to unprivileged writers. */
  readonly avail_bytes: number;
  /** size - free: what the filesystem holds, whoever may still write. */
  readonly used_bytes: number;
  /**
   * (size - avail) / size: how full it looks to the database (the root reserve counts as used); 0
   * for a size-0 filesystem.
   */
  readonly used_ratio: number;
  readonly files: number;
  readonly files_free: number;
}

export function spaceOf(st: StatfsFields): Space {
  const size = st.blocks * st.bsize;
  const free = st.bfree * st.bsize;
  const avail = st.bavail * st.bsize;
  return {
    size_bytes: size,
    free_bytes: free,
    avail_bytes: avail,
    used_bytes: size - free,
    used_ratio: size > 0 ? (size - avail) / size : 0,
    files: st.files,
    files_free: st.ffree,
  };
}
