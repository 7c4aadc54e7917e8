// What the kernel's own error counters say, for `agentctl status` (the kernel area) and
// `agentctl diagnose storage-errors`: filesystems and btrfs members with errors on record, rises
// within the day, and rises the kernel log has no line for, from the latest observation and the
// history of the errcounters collector's events.
import type { ErrcountersObservation } from "../../collectors/errcounters/observation.js";
import { BTRFS_STATS, btrfsMemberName, btrfsTotal } from "../../collectors/errcounters/parse.js";
import { describeRecord, EVENT_CLASS, MISSING_KIND } from "../../collectors/errcounters/sink.js";
import type { Latest } from "../../collectors/observations.js";
import type { HistoryStore } from "../../core/history/store.js";
import {
  fsErrorsVerdict,
  logMissingSeverity,
  severityVerdict,
  type Verdict,
  verdictRank,
  worst,
} from "../../judge/index.js";

export interface CounterFindings {
  readonly verdict: Verdict;
  /** The worst finding in one line; null when there is nothing to say. */
  readonly summary: string | null;
  readonly details: string[];
}

const DAY_MS = 86_400_000;

export function counterFindings(
  latest: Latest,
  h: HistoryStore | null,
  now: number,
): CounterFindings {
  const o: ErrcountersObservation | undefined = latest.get("errcounters")?.observation;
  if (!o) return { verdict: "ok", summary: null, details: [] };
  const events = h ? h.events({ since: now - DAY_MS, class: EVENT_CLASS, limit: 200 }) : [];
  const rose = new Set(events.filter((e) => e.kind !== MISSING_KIND).map((e) => e.subject));
  const found: Array<{ verdict: Verdict; line: string }> = [];
  for (const f of o.ext4)
    if (f.errors > 0)
      found.push({
        verdict: fsErrorsVerdict(f.errors, rose.has(f.device)),
        line:
          `ext4 on ${f.device} (${f.mountpoint}): ${f.errors} errors since its last fsck` +
          `${rose.has(f.device) ? ", rising today" : ""}; last: ${describeRecord(f.last)}`,
      });
  for (const b of o.btrfs) {
    if (!("stats" in b.counters)) continue;
    const s = b.counters.stats;
    const n = btrfsTotal(s);
    const dev = btrfsMemberName(b);
    if (n > 0)
      found.push({
        verdict: fsErrorsVerdict(n, rose.has(dev)),
        line:
          `btrfs member ${dev} of ${b.mountpoint}: ` +
          BTRFS_STATS.filter((k) => s[k] > 0)
            .map((k) => `${s[k]} ${k}`)
            .join(", ") +
          ` errors${rose.has(dev) ? ", rising today" : ""}`,
      });
  }
  for (const e of events.filter((x) => x.kind === MISSING_KIND).slice(0, 5))
    found.push({
      verdict: severityVerdict(logMissingSeverity("ext4_errors")),
      line: `kernel log missing a line: ${e.message}`,
    });
  const notes: string[] = [];
  const unavailable = o.btrfs.filter((b) => "unavailable" in b.counters);
  if (unavailable.length > 0)
    notes.push(
      `btrfs error stats unavailable for ${unavailable.length} member(s): ` +
        unavailable
          .slice(0, 3)
          .map((b) => ("unavailable" in b.counters ? b.counters.unavailable : ""))
          .join("; "),
    );
  if (o.xfs.length > 0)
    notes.push(
      `XFS (${o.xfs.map((x) => x.mountpoint).join(", ")}): no error counters in sysfs, the kernel log only`,
    );
  if (o.crossCheck.state === "off")
    notes.push(`counters not checked against the kernel log: ${o.crossCheck.reason}`);
  found.sort((a, b) => verdictRank(b.verdict) - verdictRank(a.verdict));
  return {
    verdict: worst(found.map((f) => f.verdict)),
    summary: found[0]?.line ?? null,
    details: [...found.map((f) => f.line), ...notes],
  };
}
