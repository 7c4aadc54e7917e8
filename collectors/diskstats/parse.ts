// /proc/diskstats, parsed. Pure: text in, records and per-line problems out.
// Field layout: Documentation/admin-guide/iostats.rst; 14 tokens (< 4.18), 18 (4.18-5.4),
// 20 (>= 5.5). The old 7-token partition form (2.6.0-2.6.24) carries no latency and is skipped,
// as sysstat does in -x mode.

export interface DiskCounters {
  readonly major: number;
  readonly minor: number;
  readonly device: string;
  /** Number of counter fields the kernel printed: 11, 15 or 17. */
  readonly fields: 11 | 15 | 17;
  readonly reads: number;
  readonly readsMerged: number;
  readonly sectorsRead: number;
  readonly readMs: number;
  readonly writes: number;
  readonly writesMerged: number;
  readonly sectorsWritten: number;
  readonly writeMs: number;
  readonly inFlight: number;
  readonly ioMs: number;
  readonly weightedMs: number;
  /** Discard and flush fields are absent on older kernels. */
  readonly discard?: {
    readonly completed: number;
    readonly merged: number;
    readonly sectors: number;
    readonly ms: number;
  };
  readonly flush?: { readonly completed: number; readonly ms: number };
}

export interface ParseResult {
  readonly disks: DiskCounters[];
  /** One line per rejected input line: "line N: reason". Never fatal. */
  readonly problems: string[];
}

// The kernel prints a gendisk's own name, which may hold "/" (cciss/c0d0, ida/c0d0p1, rd/c0d0);
// sysfs, and so every other collector's label, spells it with "!" (cciss!c0d0). Kept, as sysfs.
const DEVICE_RE = /^[\w.:!@+-]+(?:\/[\w.:!@+-]+)*$/;
const MAX_LINE = 1024;

export function parseDiskstats(text: string): ParseResult {
  const disks: DiskCounters[] = [];
  const problems: string[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === "") continue;
    const r = parseLine(line);
    if (typeof r === "string") problems.push(`line ${i + 1}: ${r}`);
    else if (r !== null) disks.push(r);
  }
  return { disks, problems };
}

/** A record, null for a line that is valid but carries no latency (old partition form), or a reason. */
export function parseLine(line: string): DiskCounters | null | string {
  if (line.length > MAX_LINE) return `longer than ${MAX_LINE} characters`;
  const tok = line.trim().split(/\s+/);
  if (tok.length === 7) return null;
  if (tok.length !== 14 && tok.length !== 18 && tok.length !== 20)
    return `expected 14, 18 or 20 fields, got ${tok.length}`;
  const printed = tok[2] as string;
  if (printed.length > 128 || !DEVICE_RE.test(printed))
    return `implausible device name ${JSON.stringify(printed.slice(0, 40))}`;
  const device = printed.replace(/\//g, "!");
  const nums: number[] = [];
  for (let k = 0; k < tok.length; k++) {
    if (k === 2) continue;
    const t = tok[k] as string;
    if (!/^\d{1,20}$/.test(t))
      return `field ${k + 1} of ${device} is not an unsigned integer: ${JSON.stringify(t.slice(0, 24))}`;
    const n = Number(t);
    // Beyond 2^53 a JS number loses units; no real counter gets there, so this is garbage.
    if (!Number.isSafeInteger(n)) return `field ${k + 1} of ${device} is out of range: ${t}`;
    nums.push(n);
  }
  // Fields by position (iostats.rst): 13 always, then 4 discard fields (4.18+), then 2 flush (5.5+).
  const at = (i: number) => nums[i] as number;
  const fields = (tok.length - 3) as 11 | 15 | 17;
  return {
    major: at(0),
    minor: at(1),
    device,
    fields,
    reads: at(2),
    readsMerged: at(3),
    sectorsRead: at(4),
    readMs: at(5),
    writes: at(6),
    writesMerged: at(7),
    sectorsWritten: at(8),
    writeMs: at(9),
    inFlight: at(10),
    ioMs: at(11),
    weightedMs: at(12),
    ...(nums.length >= 17
      ? { discard: { completed: at(13), merged: at(14), sectors: at(15), ms: at(16) } }
      : {}),
    ...(nums.length >= 19 ? { flush: { completed: at(17), ms: at(18) } } : {}),
  };
}
