// Who holds WAL segments open, from /proc/<pid>/fd (needs CAP_SYS_PTRACE and
// CAP_DAC_READ_SEARCH for other users' processes: the unit keeps both for this).
import { Host, type Process } from "../../core/host/host.js";
import { type Identity, sameFile } from "../../core/safefs.js";

/** A process whose descriptors cannot be read: whether it holds a segment is unknown. */
export class HoldersUnknown extends Error {
  override readonly name = "HoldersUnknown";
  readonly code = "HoldersUnknown";
}

/** The descriptors of a process; [] when it is gone; throws when it exists but may not be read. */
function fds(p: Process): string[] {
  try {
    return p.fds() ?? [];
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // Fail closed: "nobody holds it" must never be concluded from what could not be seen.
    throw new HoldersUnknown(
      `cannot read ${p.path("fd")} (${code}): which processes hold WAL segments open is unknown (the ` +
        `agent needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH)`,
    );
  }
}

const CAP_DAC_OVERRIDE = 1n;
const CAP_DAC_READ_SEARCH = 2n;
const CAP_SYS_PTRACE = 19n;

/**
 * Why this process cannot see every other process's open files, or null when it can. With
 * ProtectProc=ptraceable a process the agent may not ptrace is not even listed, so reading
 * errors alone would not tell: the effective capabilities do.
 */
export function cannotSeeHolders(procPath = "/proc"): string | null {
  let eff: bigint;
  try {
    eff = new Host({ procPath }).process("self").capEff() ?? 0n;
  } catch {
    return `cannot read ${procPath}/self/status`;
  }
  const has = (bit: bigint) => (eff >> bit) & 1n;
  const missing = [
    ...(has(CAP_SYS_PTRACE) ? [] : ["CAP_SYS_PTRACE"]),
    ...(has(CAP_DAC_READ_SEARCH) || has(CAP_DAC_OVERRIDE) ? [] : ["CAP_DAC_READ_SEARCH"]),
  ];
  return missing.length === 0
    ? null
    : `without ${missing.join(" and ")} the agent cannot see which processes hold WAL segments open, ` +
        `so it compresses none`;
}

/** Names directly in `realDir` that some process holds open (by the path the kernel shows). */
export async function openSegments(realDir: string, procPath = "/proc"): Promise<Set<string>> {
  const out = new Set<string>();
  const prefix = realDir.endsWith("/") ? realDir : `${realDir}/`;
  let n = 0;
  for (const p of new Host({ procPath }).processes()) {
    if (++n % 64 === 0) await new Promise<void>((r) => setImmediate(r));
    for (const fd of fds(p)) {
      const target = p.fdTarget(fd); // null: closed meanwhile
      if (target === null) continue;
      const rest = target.slice(prefix.length);
      if (target.startsWith(prefix) && !rest.includes("/"))
        out.add(rest.replace(/ \(deleted\)$/, ""));
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
  for (const p of new Host({ procPath }).processes()) {
    if (p.pid === self) continue;
    for (const fd of fds(p)) {
      // null: closed meanwhile, or a socket/pipe that cannot be stat'ed by path
      const st = p.fdStat(fd);
      if (st && sameFile(st, file)) {
        out.push(p.pid);
        break;
      }
    }
  }
  return out;
}
