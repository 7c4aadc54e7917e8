// The WAL directory, judged from one listing. Pure: entries in, inventory and findings out.
// Segment names come from the configured pattern ("segment.*.wal": the * is the sequence number,
// of varying width); the compressed form is the same name plus ".gz". The highest number is the
// segment being written (active); the others are sealed or compressed.

export interface DirEntry {
  readonly name: string;
  readonly type: "file" | "symlink" | "dir" | "other";
  readonly size: number;
  readonly mtimeMs: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Device and inode: what compression checks it reads, whatever the name says by then. */
  readonly dev: number;
  readonly ino: number;
  /** More than one link: a hard link may reach a file outside the directory. */
  readonly nlink: number;
}

export type SegmentState = "active" | "sealed" | "compressed";

export interface Segment {
  readonly name: string;
  readonly seq: number;
  readonly state: SegmentState;
  readonly size: number;
  readonly mtimeMs: number;
  readonly dev: number;
  readonly ino: number;
  readonly nlink: number;
}

/** Every kind of finding, in the order metrics and docs list them. */
export const FINDING_KINDS = [
  "gap",
  "plain_and_compressed",
  "zero_length",
  "truncated",
  "wrong_owner_or_mode",
  "unreadable",
  "corrupt_gz",
  "symlink",
  "not_regular",
  "stalled",
  "dir_missing",
  "verify_failed",
  "filesystem_filling",
  "db_metrics_unreachable",
] as const;
export type FindingKind = (typeof FINDING_KINDS)[number];

export interface WalFinding {
  readonly kind: FindingKind;
  readonly files: readonly string[];
  readonly message: string;
}

export interface StateTotals {
  readonly count: number;
  readonly bytes: number;
}

export interface Inventory {
  readonly segments: Segment[];
  readonly totals: Record<SegmentState, StateTotals>;
  readonly active: Segment | null;
  readonly oldestMtimeMs: number | null;
  readonly newestMtimeMs: number | null;
  readonly highestSeq: number | null;
  /** The size sealed segments are expected to have: configured, else the median of the sealed ones. */
  readonly expectedSize: number | null;
  readonly findings: WalFinding[];
}

export function patternRegex(pattern: string): { plain: RegExp; gz: RegExp } {
  const star = pattern.indexOf("*");
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); // a star after the first is literal
  const body =
    star < 0
      ? esc(pattern)
      : `${esc(pattern.slice(0, star))}(\\d{1,18})${esc(pattern.slice(star + 1))}`;
  return { plain: new RegExp(`^${body}$`), gz: new RegExp(`^${body}\\.gz$`) };
}

const MAX_LISTED = 20; // file names kept per finding (history, never labels)

function majority<T>(values: readonly T[]): T | undefined {
  const counts = new Map<T, number>();
  let best: T | undefined;
  let n = 0;
  for (const v of values) {
    const c = (counts.get(v) ?? 0) + 1;
    counts.set(v, c);
    if (c > n) {
      n = c;
      best = v;
    }
  }
  return best;
}

export function analyse(
  entries: readonly DirEntry[],
  pattern: string,
  expectedSegmentSize: number,
): Inventory {
  const re = patternRegex(pattern);
  const findings: WalFinding[] = [];
  const add = (kind: FindingKind, files: string[], message: string) => {
    if (files.length > 0)
      findings.push({
        kind,
        files: files.slice(0, MAX_LISTED),
        message: `${message}${files.length > MAX_LISTED ? ` (+${files.length - MAX_LISTED} more)` : ""}`,
      });
  };
  const plain = new Map<number, DirEntry>();
  const gz = new Map<number, DirEntry>();
  const symlinks: string[] = [];
  const irregular: string[] = [];
  for (const e of entries) {
    const mp = re.plain.exec(e.name);
    const mg = mp ? null : re.gz.exec(e.name);
    const m = mp ?? mg;
    if (!m) continue;
    if (e.type === "symlink") {
      symlinks.push(e.name);
      continue;
    }
    if (e.type !== "file") {
      irregular.push(e.name);
      continue;
    }
    (mp ? plain : gz).set(Number(m[1] ?? 0), e);
  }
  add("symlink", symlinks, "symbolic links named like segments (never followed, never touched)");
  add("not_regular", irregular, "entries named like segments that are not regular files");

  const seqs = [...new Set([...plain.keys(), ...gz.keys()])].sort((a, b) => a - b);
  const highest = seqs.at(-1) ?? null;
  const segments: Segment[] = [];
  for (const seq of seqs) {
    const p = plain.get(seq);
    const g = gz.get(seq);
    const id = (e: DirEntry) => ({
      size: e.size,
      mtimeMs: e.mtimeMs,
      dev: e.dev,
      ino: e.ino,
      nlink: e.nlink,
    });
    if (p)
      segments.push({ name: p.name, seq, state: seq === highest ? "active" : "sealed", ...id(p) });
    if (g) segments.push({ name: g.name, seq, state: "compressed", ...id(g) });
  }

  // A gap: numbers missing between the lowest and highest present.
  const missing: string[] = [];
  for (let i = 1; i < seqs.length && missing.length <= MAX_LISTED; i++) {
    const a = seqs[i - 1] as number;
    const b = seqs[i] as number;
    if (b - a > 1) missing.push(b - a === 2 ? `#${a + 1}` : `#${a + 1}..#${b - 1}`);
  }
  add("gap", missing, "segments missing from the sequence");
  add(
    "plain_and_compressed",
    seqs.filter((s) => plain.has(s) && gz.has(s)).map((s) => (plain.get(s) as DirEntry).name),
    "segments present both plain and compressed (an interrupted compression)",
  );

  const sealed = segments.filter((s) => s.state === "sealed");
  const sizes = sealed
    .map((s) => s.size)
    .filter((s) => s > 0)
    .sort((a, b) => a - b);
  const expected =
    expectedSegmentSize > 0
      ? expectedSegmentSize
      : sizes.length >= 3
        ? (sizes[Math.floor(sizes.length / 2)] as number)
        : null;
  add(
    "zero_length",
    sealed.filter((s) => s.size === 0).map((s) => s.name),
    "sealed segments of zero length",
  );
  if (expected !== null)
    add(
      "truncated",
      sealed.filter((s) => s.size > 0 && s.size < expected / 2).map((s) => s.name),
      `sealed segments under half the expected size (${expected} bytes)`,
    );

  const files = [...plain.values(), ...gz.values()];
  const owner = majority(files.map((f) => `${f.uid}:${f.gid}`));
  const mode = majority(files.map((f) => f.mode & 0o777));
  add(
    "wrong_owner_or_mode",
    files
      .filter((f) => `${f.uid}:${f.gid}` !== owner || (f.mode & 0o777) !== mode)
      .map((f) => f.name),
    `segments whose owner or mode differs from the others (${owner}, ${mode?.toString(8)})`,
  );

  const totals: Record<SegmentState, StateTotals> = {
    active: { count: 0, bytes: 0 },
    sealed: { count: 0, bytes: 0 },
    compressed: { count: 0, bytes: 0 },
  };
  let oldest: number | null = null;
  let newest: number | null = null;
  for (const s of segments) {
    const t = totals[s.state];
    totals[s.state] = { count: t.count + 1, bytes: t.bytes + s.size };
    oldest = oldest === null ? s.mtimeMs : Math.min(oldest, s.mtimeMs);
    newest = newest === null ? s.mtimeMs : Math.max(newest, s.mtimeMs);
  }
  return {
    segments,
    totals,
    active: segments.find((s) => s.state === "active") ?? null,
    oldestMtimeMs: oldest,
    newestMtimeMs: newest,
    highestSeq: highest,
    expectedSize: expected,
    findings,
  };
}
