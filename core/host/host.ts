// The host as the agent reads it, bound to the configured [host] paths (like prometheus/procfs's
// FS): the mount table, the pid walk and statfs. Thin readers only; the parsing is pure
// (mountinfo.ts, proc.ts, statfs.ts). Processes come and go between any two reads, so a process
// that has exited reads as null (or no descriptors), never as an error.
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  type Stats,
  statfsSync,
  statSync,
} from "node:fs";
import { readFile, readlink, statfs } from "node:fs/promises";
import { type MountinfoResult, parseMountinfo } from "./mountinfo.js";
import {
  parseCapEff,
  parseProcStat,
  parseProcStatus,
  type ProcStat,
  type ProcStatus,
} from "./proc.js";
import type { StatfsFields } from "./statfs.js";

export interface HostPaths {
  /** Where procfs is mounted ([host] proc_path). */
  readonly procPath?: string;
  /** Where sysfs is mounted ([host] sys_path). */
  readonly sysPath?: string;
}

/** A pid, or "self" for the agent as seen through the configured procfs. */
export type Pid = number | "self";

/** errno codes of a process that exited between listing and reading. */
const GONE = new Set(["ENOENT", "ESRCH"]);

export class Host {
  readonly procPath: string;
  readonly sysPath: string;

  constructor(paths: HostPaths = {}) {
    this.procPath = paths.procPath ?? "/proc";
    this.sysPath = paths.sysPath ?? "/sys";
  }

  /** The mount table of a process (its mount namespace); throws when it cannot be read. */
  async mountinfo(pid: Pid = "self", signal?: AbortSignal): Promise<MountinfoResult> {
    const file = `${this.procPath}/${pid}/mountinfo`;
    return parseMountinfo(
      await readFile(file, signal ? { encoding: "utf8", signal } : { encoding: "utf8" }),
    );
  }

  mountinfoSync(pid: Pid = "self"): MountinfoResult {
    return parseMountinfo(readFileSync(`${this.procPath}/${pid}/mountinfo`, "utf8"));
  }

  /** The mount namespace a process is in ("mnt:[4026531841]"), or null when it may not be read. */
  async mountNamespace(pid: Pid): Promise<string | null> {
    return readlink(`${this.procPath}/${pid}/ns/mnt`).catch(() => null);
  }

  /** Every pid procfs lists, in its order; throws when procfs cannot be listed. */
  pids(): number[] {
    return readdirSync(this.procPath)
      .filter((n) => /^\d+$/.test(n))
      .map(Number);
  }

  /** The pid walk: a handle per listed process (none when procfs cannot be listed), read lazily. */
  *processes(): Generator<Process<number>> {
    let pids: number[];
    try {
      pids = this.pids();
    } catch {
      return; // no procfs
    }
    for (const pid of pids) yield new Process(this.procPath, pid);
  }

  process<P extends Pid>(pid: P): Process<P> {
    return new Process(this.procPath, pid);
  }

  /**
   * A file of procfs itself ("stat", "meminfo", "net/snmp"); throws the errno error. net/ is the
   * agent's own network namespace, as /proc/net is.
   */
  read(name: string): string {
    return readProcFile(`${this.procPath}/${name}`);
  }

  /** A binary procfs file ("self/auxv"), whole; throws the errno error. */
  readBytes(name: string): Buffer {
    return readFileSync(`${this.procPath}/${name}`);
  }

  /** Whether a sysfs path ("block/loop3") exists. */
  sysExists(sysName: string): boolean {
    return existsSync(`${this.sysPath}/${sysName}`);
  }

  /** The kernel's id of this boot, or null when procfs does not tell. */
  bootId(): string | null {
    try {
      return readFileSync(`${this.procPath}/sys/kernel/random/boot_id`, "utf8").trim();
    } catch {
      return null;
    }
  }

  /** statfs(2) of a path in the agent's own mount namespace; spaceOf() turns it into bytes. */
  statfs(path: string): Promise<StatfsFields> {
    return statfs(path, { bigint: false });
  }

  statfsSync(path: string): StatfsFields {
    return statfsSync(path, { bigint: false });
  }
}

/**
 * One process under procfs. Readers return null when the process is gone (or, for the plain
 * fields, when the file may not be read); read() and fds() say why when the caller must know.
 */
export class Process<P extends Pid = Pid> {
  constructor(
    private readonly procPath: string,
    readonly pid: P,
  ) {}

  /** The path of a file of this process. */
  path(name: string): string {
    return `${this.procPath}/${this.pid}/${name}`;
  }

  /** A file's text; throws the errno error (ENOENT/ESRCH: exited, EACCES/EPERM: not permitted). */
  read(name: string): string {
    return readProcFile(this.path(name));
  }

  private text(name: string): string | null {
    try {
      return this.read(name);
    } catch {
      return null;
    }
  }

  stat(): ProcStat | null {
    const t = this.text("stat");
    return t === null ? null : parseProcStat(t);
  }

  /** Resident memory and threads from /proc/<pid>/status. */
  status(): ProcStatus | null {
    const t = this.text("status");
    return t === null ? null : parseProcStatus(t);
  }

  /** Thread ids (/proc/<pid>/task); null when it exited or may not be listed. */
  tasks(): string[] | null {
    try {
      return readdirSync(this.path("task"));
    } catch {
      return null;
    }
  }

  /** One thread's stat; null when the thread (or the process) is gone. */
  taskStat(tid: string): ProcStat | null {
    const t = this.text(`task/${tid}/stat`);
    return t === null ? null : parseProcStat(t);
  }

  comm(): string | null {
    return this.text("comm")?.trim() ?? null;
  }

  /** /proc/<pid>/cgroup as is (parseCgroupUnit in collectors/procio tells its unit). */
  cgroup(): string | null {
    return this.text("cgroup");
  }

  /** Effective capabilities (null: status has no CapEff line); throws when it cannot be read. */
  capEff(): bigint | null {
    return parseCapEff(this.read("status"));
  }

  /**
   * The process's descriptor numbers; null when it has exited. Throws the errno error when it
   * exists but may not be read: "holds nothing" must never be concluded from what was not seen.
   */
  fds(): string[] | null {
    try {
      return readdirSync(this.path("fd"));
    } catch (e) {
      if (GONE.has((e as NodeJS.ErrnoException).code ?? "")) return null;
      throw e;
    }
  }

  /** Where a descriptor points (" (deleted)" kept), or null when it was closed meanwhile. */
  fdTarget(fd: string): string | null {
    try {
      return readlinkSync(this.path(`fd/${fd}`));
    } catch {
      return null;
    }
  }

  /** The file a descriptor is open on, or null (closed meanwhile, or a socket/pipe). */
  fdStat(fd: string): Stats | null {
    try {
      return statSync(this.path(`fd/${fd}`));
    } catch {
      return null;
    }
  }
}

/** One buffer for every small /proc read: the pid walk reads hundreds of files a few bytes long. */
const SCRATCH = Buffer.allocUnsafe(16 * 1024);

/**
 * A /proc file's text: open, read into the shared buffer, close (readFileSync also fstats and
 * allocates per file, a third of the pid walk's cost). Larger files are read on through the fd.
 */
function readProcFile(path: string): string {
  const fd = openSync(path, "r");
  try {
    let n = 0;
    for (;;) {
      const r = readSync(fd, SCRATCH, n, SCRATCH.length - n, null);
      if (r === 0) return SCRATCH.toString("utf8", 0, n);
      n += r;
      // Decoded once, whole: a multi-byte character may straddle the buffer's end.
      if (n === SCRATCH.length) return Buffer.concat([SCRATCH, readFileSync(fd)]).toString("utf8");
    }
  } finally {
    closeSync(fd);
  }
}
