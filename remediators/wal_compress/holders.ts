// Who holds WAL segments open, from /proc/<pid>/fd (needs CAP_SYS_PTRACE and
// CAP_DAC_READ_SEARCH for other users' processes: the unit keeps both for this).
import { readdirSync, readlinkSync, statSync } from "node:fs";
import { type Identity, sameFile } from "../../agent/safefs.js";

function pids(procPath: string): string[] {
  try {
    return readdirSync(procPath).filter((p) => /^\d+$/.test(p));
  } catch {
    return [];
  }
}

function fds(procPath: string, pid: string): string[] {
  try {
    return readdirSync(`${procPath}/${pid}/fd`);
  } catch {
    return []; // gone, or not ours to see
  }
}

/** Names directly in `realDir` that some process holds open (by the path the kernel shows). */
export async function openSegments(realDir: string, procPath = "/proc"): Promise<Set<string>> {
  const out = new Set<string>();
  const prefix = realDir.endsWith("/") ? realDir : `${realDir}/`;
  let n = 0;
  for (const pid of pids(procPath)) {
    if (++n % 64 === 0) await new Promise<void>((r) => setImmediate(r));
    for (const fd of fds(procPath, pid)) {
      try {
        const target = readlinkSync(`${procPath}/${pid}/fd/${fd}`);
        const rest = target.slice(prefix.length);
        if (target.startsWith(prefix) && !rest.includes("/")) out.add(rest.replace(/ \(deleted\)$/, ""));
      } catch {
        // closed meanwhile
      }
    }
  }
  return out;
}

/**
 * Processes other than `self` holding this very file open, matched by device and inode (a
 * rename or a second link cannot hide it). Synchronous: called from the compression worker
 * right before the original is unlinked.
 */
export function holdersOf(file: Identity, self: number, procPath = "/proc"): number[] {
  const out: number[] = [];
  for (const pid of pids(procPath)) {
    if (Number(pid) === self) continue;
    for (const fd of fds(procPath, pid)) {
      try {
        if (sameFile(statSync(`${procPath}/${pid}/fd/${fd}`), file)) {
          out.push(Number(pid));
          break;
        }
      } catch {
        // closed meanwhile, or a socket/pipe that cannot be stat'ed by path
      }
    }
  }
  return out;
}
