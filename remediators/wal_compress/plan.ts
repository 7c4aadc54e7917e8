// Which segments WAL compression may touch, and why each other one is left alone. Pure.
// The rules (DESIGN safety rule 2): never the newest `keep` segments, never the active one,
// never one that any process holds open, never one younger than min_age, and only regular
// files matching the pattern inside the directory (the inventory already excludes symlinks
// and anything else).
import type { Segment } from "../../collectors/wal/inventory.js";

export interface PlanInput {
  readonly segments: readonly Segment[];
  readonly keep: number;
  readonly minAgeMs: number;
  readonly now: number;
  /** Names of segments some process has open (from /proc/<pid>/fd). */
  readonly open: ReadonlySet<string>;
  /** Segments an operator decompressed (undo): never compressed again by the agent. */
  readonly held?: ReadonlySet<string>;
  /** Segments found not to compress below max_ratio, by name, with the fingerprint they had. */
  readonly incompressible?: ReadonlyMap<string, string>;
}

/** What a segment was when judged: a change (rewrite, append, new inode) earns a new attempt. */
export const fingerprint = (s: Pick<Segment, "ino" | "size" | "mtimeMs">): string =>
  `${s.ino}:${s.size}:${s.mtimeMs}`;

export interface Plan {
  /** Oldest first: what would be compressed. */
  readonly compress: Segment[];
  readonly skipped: ReadonlyArray<{ readonly name: string; readonly reason: string }>;
}

export function planCompression(p: PlanInput): Plan {
  // Newest first by sequence number, as `ls -t` would order a healthy WAL.
  const plain = p.segments
    .filter((s) => s.state === "active" || s.state === "sealed")
    .sort((a, b) => b.seq - a.seq);
  const compressedSeqs = new Set(
    p.segments.filter((s) => s.state === "compressed").map((s) => s.seq),
  );
  const compress: Segment[] = [];
  const skipped: Array<{ name: string; reason: string }> = [];
  plain.forEach((s, i) => {
    if (s.state === "active") skipped.push({ name: s.name, reason: "active segment" });
    else if (i < p.keep) skipped.push({ name: s.name, reason: `among the newest ${p.keep}` });
    else if (compressedSeqs.has(s.seq))
      skipped.push({ name: s.name, reason: "a compressed copy exists (recovery resolves it)" });
    else if (p.open.has(s.name)) skipped.push({ name: s.name, reason: "open by a process" });
    else if (s.nlink !== 1)
      skipped.push({ name: s.name, reason: `${s.nlink} hard links: never compressed` });
    else if (p.incompressible?.get(s.name) === fingerprint(s))
      skipped.push({ name: s.name, reason: "incompressible (tried; left until it changes)" });
    else if (p.held?.has(s.name))
      skipped.push({ name: s.name, reason: "decompressed by an operator (undo): left plain" });
    else if (p.now - s.mtimeMs < p.minAgeMs)
      skipped.push({ name: s.name, reason: `younger than min_age` });
    else compress.push(s);
  });
  return { compress: compress.sort((a, b) => a.seq - b.seq), skipped };
}
