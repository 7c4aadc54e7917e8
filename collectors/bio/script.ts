// The bpftrace program of the bio collector, generated from the collector's options only (a
// boolean, a whole number of milliseconds, one of two probe names): no text from anyone else
// reaches it. Pure.
//
// Requests are matched from issue (or insert, with queue_time) to completion by (dev, sector,
// operation), like bcc's biolatency.bt; flushes all sit at sector 0, so two flushes in flight on
// one device at once share a key and the first completion takes the later start (the flush
// machinery keeps one flush in flight per queue, so this is rare). The kernel's rwbs string is a
// map key; the agent derives operation and sync from it (parse.ts).
//
// - A flush request completes with sector -1: matched as sector 0.
// - A request that went through the flush machinery completes once more at its end with no
//   sectors (its data and flushes were already counted): skipped, counted in @seq.
// - Nothing is recorded until the first tick (@go): by then every probe is attached, so no
//   request is left "in flight" because its completion fired before the completion probe was.
// - Latencies are counted in buckets of four per power of two (parse.ts bucketIndex).
// - Requests in flight are counted per device, operation and 100 ms slot of their start (a ring
//   of SLOTS), +1 at start and -1 at completion in per-CPU sums; @slot holds each slot's latest
//   start time. The agent finds the oldest slot still holding requests (parse.ts). The map of
//   starts itself is never printed: bpftrace 0.17 aborts ("failed to look up elem: -2") when a
//   key it is printing is deleted under it, which a busy device does thousands of times a second.
//   A start overwritten (a key collision, a requeue) gives its slot back first, and a start the
//   full map refused is not counted, so every count has exactly one completion to end it.
// - @done is printed before the histograms: completions between the two prints then show as
//   more in the histograms than done, never as histogram entries lost to a full map.

export interface ScriptOptions {
  /** Measure from insertion into the queue when there is one (biolatency -Q). */
  readonly queueTime: boolean;
  /** How often the maps are printed, in milliseconds (a whole number >= 100). */
  readonly intervalMs: number;
  /**
   * Where the submitting cgroup is read: block_io_start (6.5+, in the submitter's context) or,
   * on older kernels, block_rq_issue (often a kworker's).
   */
  readonly cgroupProbe: "block_io_start" | "block_rq_issue";
}

/** Maps that only grow with devices and operations; printed cumulative. */
const CUMULATIVE = ["h", "sum"] as const;
/** Maps per cgroup, cleared after each print (cgroups come and go). */
const PER_TICK = ["ub", "un", "ul", "uh"] as const;

/**
 * The two kernel types the block tracepoints' fields use. bpftrace 0.17 reads kernel BTF only
 * with CAP_SYS_ADMIN (it fails "unknown type name 'dev_t'" with CAP_BPF and CAP_PERFMON alone):
 * defined here, the script needs neither BTF nor CAP_SYS_ADMIN. Macros, not typedefs (0.17's
 * parser takes no typedef), and harmless where BTF is read: the tracepoint structs are built
 * from tracefs's format files with these names.
 */
const TYPES = `#define dev_t unsigned int
#define sector_t unsigned long long`;

const OPCODE = `  $op = 5;
  if (strncmp(args->rwbs, "R", 1) == 0 || strncmp(args->rwbs, "FR", 2) == 0) { $op = 1; }
  else if (strncmp(args->rwbs, "W", 1) == 0 || strncmp(args->rwbs, "FW", 2) == 0) { $op = 2; }
  else if (strncmp(args->rwbs, "D", 1) == 0 || strncmp(args->rwbs, "FD", 2) == 0) { $op = 4; }
  else if (strncmp(args->rwbs, "FN", 2) != 0 && strncmp(args->rwbs, "F", 1) == 0) { $op = 3; }`;

export function bioScript(o: ScriptOptions): string {
  if (!Number.isInteger(o.intervalMs) || o.intervalMs < 100)
    throw new Error(`bio: interval ${o.intervalMs} ms is not a whole number of at least 100 ms`);
  const cgroupAtIssue = o.cgroupProbe === "block_rq_issue";
  const slots = inflightSlots(o.intervalMs);
  const record = `  $now = nsecs / 1000;
  $old = @start[args->dev, args->sector, $op];
  if ($old != 0) { @infl[args->dev, $op, ($old / ${SLOT_US}) % ${slots}] = sum(-1); }
  @start[args->dev, args->sector, $op] = $now;
  if (@start[args->dev, args->sector, $op] == $now) {
    @infl[args->dev, $op, ($now / ${SLOT_US}) % ${slots}] = sum(1);
    @slot[args->dev, $op, ($now / ${SLOT_US}) % ${slots}] = $now / ${SLOT_US};
  }`;
  const start = o.queueTime
    ? `  if (@start[args->dev, args->sector, $op] == 0) {\n${record}\n  }`
    : record;
  return `// stemedb-agent bio collector (generated)
${TYPES}
tracepoint:block:block_rq_complete
/@go/
{
${OPCODE}
  $s = args->sector;
  if ((int64)$s < 0) { $s = 0; }
  if (args->nr_sector == 0 && $op != 3) { @seq = count(); return; }
  $t = @start[args->dev, $s, $op];
  if ($t == 0) { @unmatched = count(); return; }
  delete(@start[args->dev, $s, $op]);
  @infl[args->dev, $op, ($t / ${SLOT_US}) % ${slots}] = sum(-1);
  $us = nsecs / 1000 - $t;
  $i = 0;
  if ($us >= 8) {
    $v = $us; $m = 0;
    if ($v >= 65536) { $m += 16; $v = $v >> 16; }
    if ($v >= 256) { $m += 8; $v = $v >> 8; }
    if ($v >= 16) { $m += 4; $v = $v >> 4; }
    if ($v >= 4) { $m += 2; $v = $v >> 2; }
    if ($v >= 2) { $m += 1; }
    $i = $m >= 25 ? 89 : ($m - 3) * 4 + (int64)(($us >> ($m - 2)) & 3) + 1;
  }
  @h[args->dev, args->rwbs, $i] = count();
  @sum[args->dev, args->rwbs] = sum($us);
  @done = count();
  $cg = @cg[args->dev, $s];
  delete(@cg[args->dev, $s]);
  @ub[$cg, args->rwbs] = sum(args->nr_sector * 512);
  @un[$cg, args->rwbs] = count();
  @ul[$cg, args->rwbs] = sum($us);
  @uh[$cg, $i >> 2] = count();
}
${
  o.queueTime
    ? `tracepoint:block:block_rq_insert
/@go/
{
${OPCODE}
${record}
}
`
    : ""
}tracepoint:block:block_rq_issue
/@go/
{
${OPCODE}
${start}${cgroupAtIssue ? `\n  @cg[args->dev, args->sector] = cgroup;` : ""}
}
${
  cgroupAtIssue
    ? ""
    : `tracepoint:block:block_io_start
/@go/
{
  @cg[args->dev, args->sector] = cgroup;
}
tracepoint:block:block_io_done
{
  delete(@cg[args->dev, args->sector]);
}
`
}interval:ms:${o.intervalMs}
{
  @go = 1;
  print(@done);
${[...CUMULATIVE, ...PER_TICK].map((m) => `  print(@${m});`).join("\n")}
${PER_TICK.map((m) => `  clear(@${m});`).join("\n")}
  print(@infl);
  print(@slot);
  print(@unmatched);
  print(@seq);
  @now = nsecs / 1000;
  print(@now);
}
END
{
  clear(@go); clear(@start); clear(@infl); clear(@slot); clear(@cg);
  clear(@now); clear(@done); clear(@unmatched); clear(@seq);
${[...CUMULATIVE, ...PER_TICK].map((m) => `  clear(@${m});`).join("\n")}
}
`;
}

/** The width of an in-flight slot, in microseconds: the resolution of the oldest request's age. */
export const SLOT_US = 100_000;

/**
 * Slots in the ring: at least four intervals' worth (a slot still holding requests at two rounds
 * in a row is then never just a new round of the same slot), at least 64.
 */
export function inflightSlots(intervalMs: number): number {
  return Math.max(64, Math.ceil((4 * intervalMs * 1000) / SLOT_US));
}

/** The map whose print ends a round: the collector commits what it gathered when it sees it. */
export const END_OF_TICK = "now";
