// cgroup v2 ids (bpftrace's `cgroup`, the kernel's cgroup id: the inode number of the cgroup's
// directory) to systemd unit names, by walking the cgroup2 mount. The walk is bounded (depth,
// directories), never follows a symlink (lstat), and is redone at most once per `minRewalkMs`
// when an unknown id shows up (a unit started since).
import { lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";

const UNIT = /\.(service|scope|socket|mount|swap|slice)$/;

/**
 * The unit a cgroup path belongs to: its deepest unit component other than a slice
 * ("/system.slice/backup.service" -> "backup.service"), else its deepest slice, "-.slice" for
 * the root; a path outside systemd's tree is itself ("/process_api/x" -> "/process_api/x").
 */
export function unitOfCgroupPath(rel: string): string {
  const parts = rel.split("/").filter((p) => p !== "");
  if (parts.length === 0) return "-.slice";
  const units = parts.filter((p) => UNIT.test(p));
  const leaf = units.filter((p) => !p.endsWith(".slice")).at(-1) ?? units.at(-1);
  return (leaf ?? `/${parts.join("/")}`).slice(0, 128);
}

export interface CgroupNamesOptions {
  /** Where cgroup2 is mounted; null: none (every id is unknown). */
  readonly root: string | null;
  readonly maxDirs?: number;
  readonly maxDepth?: number;
  readonly minRewalkMs?: number;
  readonly now?: () => number;
}

export class CgroupNames {
  private byId = new Map<number, string>();
  private lastWalk = -Infinity;
  /** Directories left out by the last walk's bounds. */
  truncated = false;
  private readonly maxDirs: number;
  private readonly maxDepth: number;
  private readonly minRewalkMs: number;
  private readonly now: () => number;

  constructor(private readonly o: CgroupNamesOptions) {
    this.maxDirs = o.maxDirs ?? 20_000;
    this.maxDepth = o.maxDepth ?? 8;
    this.minRewalkMs = o.minRewalkMs ?? 10_000;
    this.now = o.now ?? Date.now;
  }

  /** The unit of each id; unknown ids (and 0: no submitter recorded) are "unknown". */
  resolve(ids: Iterable<number>): Map<number, string> {
    const list = [...ids];
    if (
      list.some((id) => id !== 0 && !this.byId.has(id)) &&
      this.now() - this.lastWalk >= this.minRewalkMs
    )
      this.walk();
    return new Map(list.map((id) => [id, this.byId.get(id) ?? "unknown"]));
  }

  private walk(): void {
    this.lastWalk = this.now();
    const root = this.o.root;
    if (root === null) return;
    const found = new Map<number, string>();
    let dirs = 0;
    this.truncated = false;
    const queue: Array<[string, number]> = [["", 0]];
    for (let qi = 0; qi < queue.length; qi++) {
      const [rel, depth] = queue[qi] as [string, number];
      let st;
      try {
        st = lstatSync(join(root, rel));
      } catch {
        continue; // removed during the walk
      }
      if (!st.isDirectory()) continue;
      found.set(st.ino, unitOfCgroupPath(rel));
      if (++dirs >= this.maxDirs) {
        this.truncated = true;
        break;
      }
      if (depth >= this.maxDepth) continue;
      let names: string[];
      try {
        names = readdirSync(join(root, rel), { withFileTypes: true })
          .filter((d) => d.isDirectory())
          .map((d) => d.name);
      } catch {
        continue;
      }
      for (const n of names) queue.push([`${rel}/${n}`, depth + 1]);
    }
    this.byId = found;
  }
}
