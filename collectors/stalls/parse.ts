// stalls' pure parts: /proc/<pid>/task/<tid>/syscall, the write and sync syscalls by number for
// each architecture, and the age of a device's oldest request from diskstats alone.

/**
 * /proc/<pid>/task/<tid>/syscall (proc(5)): "running" (on a CPU), "-1 SP PC" (blocked, not in a
 * system call), or "NR ARG1..ARG6 SP PC" (blocked in system call NR, arguments in hex).
 */
export type SyscallState =
  | { readonly state: "running" }
  | { readonly state: "blocked" }
  | { readonly state: "syscall"; readonly nr: number; readonly args: readonly bigint[] }
  | { readonly state: "garbage"; readonly reason: string };

const HEX = /^0x[0-9a-f]{1,16}$/;

export function parseSyscall(text: string): SyscallState {
  const t = text.trim();
  if (t === "running") return { state: "running" };
  if (t.length > 512) return { state: "garbage", reason: "longer than any syscall line" };
  const f = t.split(" ");
  if (f[0] === "-1" && f.length === 3 && f.slice(1).every((x) => HEX.test(x)))
    return { state: "blocked" };
  if (!/^\d{1,4}$/.test(f[0] ?? "")) return { state: "garbage", reason: "no syscall number" };
  // Six arguments, the stack pointer and the program counter.
  if (f.length !== 9 || !f.slice(1).every((x) => HEX.test(x)))
    return { state: "garbage", reason: `expected 9 fields, got ${f.length}` };
  return { state: "syscall", nr: Number(f[0]), args: f.slice(1, 7).map((x) => BigInt(x)) };
}

/** The calls a thread makes durable or writes a WAL file with; the first argument is its fd. */
export type WriteCall =
  | "fsync"
  | "fdatasync"
  | "sync_file_range"
  | "write"
  | "pwrite64"
  | "writev"
  | "pwritev"
  | "pwritev2";

/**
 * Numbers by architecture (the kernel's syscall tables: arch/x86/entry/syscalls/syscall_64.tbl,
 * include/uapi/asm-generic/unistd.h for arm64). A frozen filesystem blocks write(), not fsync,
 * hence the write family. A 32-bit process on a 64-bit kernel uses other numbers: not matched.
 */
export const WRITE_CALLS: Readonly<Record<string, ReadonlyMap<number, WriteCall>>> = {
  x64: new Map<number, WriteCall>([
    [1, "write"],
    [18, "pwrite64"],
    [20, "writev"],
    [74, "fsync"],
    [75, "fdatasync"],
    [277, "sync_file_range"],
    [296, "pwritev"],
    [328, "pwritev2"],
  ]),
  arm64: new Map<number, WriteCall>([
    [64, "write"],
    [66, "writev"],
    [68, "pwrite64"],
    [70, "pwritev"],
    [82, "fsync"],
    [83, "fdatasync"],
    [84, "sync_file_range"],
    [287, "pwritev2"],
  ]),
};

/** The write call and its descriptor, when the thread is blocked in one. */
export function writeCallOf(
  s: SyscallState,
  table: ReadonlyMap<number, WriteCall>,
): { call: WriteCall; fd: number } | null {
  if (s.state !== "syscall") return null;
  const call = table.get(s.nr);
  const fd = s.args[0];
  if (call === undefined || fd === undefined || fd > 0x7fffffffn) return null;
  return { call, fd: Number(fd) };
}

/** The file a descriptor points at, when it lies in `dir` (a real path): its name there. */
export function fileIn(target: string, dir: string): string | null {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  if (!target.startsWith(prefix)) return null;
  const name = target.slice(prefix.length).replace(/ \(deleted\)$/, "");
  return name.length > 0 ? name : null;
}

// ------------------------------------------------------------------ devices without eBPF

/** One device in one diskstats sample: requests in flight, requests completed so far. */
export interface DeviceSample {
  readonly device: string;
  readonly in_flight: number;
  /** Reads + writes + discards + flushes completed (a counter). */
  readonly completed: number;
}

/**
 * Per device: the completions counted at the last sample and the first sample since which the
 * device had requests in flight and completed none.
 */
export type DeviceMemory = ReadonlyMap<
  string,
  { readonly completed: number; readonly in_flight: number; readonly since: number }
>;

/**
 * The age of each device's oldest request: requests were in flight at sample T and none has
 * completed since, so those are still in flight: the oldest has waited at least now - T (a lower
 * bound, short by up to one interval; withExact adds the eBPF collector's exact ages). A device
 * idle or completing has age 0. `now` in seconds; returns the ages
 * and the memory for the next sample.
 */
export function deviceAges(
  samples: readonly DeviceSample[],
  memory: DeviceMemory,
  now: number,
): { ages: Array<{ device: string; age_seconds: number }>; memory: DeviceMemory } {
  const next = new Map<string, { completed: number; in_flight: number; since: number }>();
  const ages: Array<{ device: string; age_seconds: number }> = [];
  for (const s of samples) {
    const was = memory.get(s.device);
    const waiting =
      was !== undefined &&
      was.in_flight > 0 &&
      s.in_flight > 0 &&
      s.completed === was.completed &&
      now >= was.since;
    const since = waiting ? was.since : now;
    next.set(s.device, { completed: s.completed, in_flight: s.in_flight, since });
    ages.push({ device: s.device, age_seconds: s.in_flight > 0 ? now - since : 0 });
  }
  return { ages, memory: next };
}

/** A device's oldest request in flight, and which tier measured it. */
export interface DeviceAge {
  readonly device: string;
  readonly age_seconds: number;
  /** "ebpf": the request's own age (collectors/bio); "diskstats": the lower bound above. */
  readonly via: "ebpf" | "diskstats";
  /** The request's operation, when eBPF saw it. */
  readonly op?: string;
}

/**
 * Both tiers' ages, per device the larger (each is a lower bound of the truth). eBPF sees what
 * diskstats cannot: one request stuck on a device that keeps completing others.
 */
export function withExact(
  lower: ReadonlyArray<{ readonly device: string; readonly age_seconds: number }>,
  exact: ReadonlyArray<{
    readonly device: string;
    readonly age_seconds: number;
    readonly op: string;
  }>,
): DeviceAge[] {
  const out = new Map<string, DeviceAge>();
  for (const l of lower) out.set(l.device, { ...l, via: "diskstats" });
  for (const e of exact) {
    if (!Number.isFinite(e.age_seconds) || e.age_seconds < 0) continue;
    const was = out.get(e.device);
    if (!was || e.age_seconds >= was.age_seconds)
      out.set(e.device, { device: e.device, age_seconds: e.age_seconds, via: "ebpf", op: e.op });
  }
  return [...out.values()];
}
