// One failure, one incident. A single failed SCSI read prints its sense key, additional sense,
// the block layer's error and the buffer cache's: four fault lines, one failure. Lines on the
// same whole disk within a few seconds are grouped, in the order the kernel prints one failed
// request (scsi_io_completion: sense lines with the command's tag, then blk_update_request's
// line with the sector, then what the filesystem or buffer cache makes of it):
//   - a line with a request tag joins the incident that has that tag; a line with a sector the
//     incident that has that sector;
//   - otherwise a tag line starts a new incident, unless the latest one has no tag and no
//     sector yet (libata's exception lines come first); a sector line joins the latest
//     incident that has no sector yet (its sense lines came first);
//   - a line with neither (Buffer I/O, ext4, ata) joins the latest incident on the disk.
// A reminder the kernel repeats while a state lasts (xfs_log_force) joins the open incident of
// its class for longer. Grouping is by order, so it is approximate when two requests on one
// disk fail at the same moment; the per-line counter stays exact. Pure: time is passed in.
import type { KernelErrorClass, KernelSeverity } from "./classify.js";

export interface IncidentLine {
  readonly device: string;
  readonly class: KernelErrorClass;
  readonly severity: KernelSeverity;
  readonly sector?: string;
  readonly request?: string;
  readonly repeats?: true;
  /** Record time (kmsg monotonic clock, or the journal's), ms. */
  readonly atMs: number;
  /** Wall clock when read, ms: closes incidents when no record arrives at all. */
  readonly wallMs: number;
  readonly line: string;
}

export interface Incident {
  readonly device: string;
  severity: KernelSeverity;
  readonly classes: Partial<Record<KernelErrorClass, number>>;
  lines: number;
  readonly firstMs: number;
  lastMs: number;
  lastWallMs: number;
  readonly sectors: string[];
  readonly requests: string[];
  readonly firstLine: string;
  readonly repeats: boolean;
}

const RANK: Record<KernelSeverity, number> = { warn: 0, error: 1, crit: 2 };
export const worse = (a: KernelSeverity, b: KernelSeverity): KernelSeverity =>
  RANK[b] > RANK[a] ? b : a;

export interface GrouperOptions {
  /** Lines further apart than this (record time) never join: a few seconds. */
  readonly windowMs: number;
  /** How long a repeating reminder keeps its incident open (xfs_log_force: every 30 s). */
  readonly repeatWindowMs: number;
  /** No incident spans longer: a storm is several incidents, not one. */
  readonly maxSpanMs: number;
}

export const DEFAULT_GROUPING: GrouperOptions = {
  windowMs: 5_000,
  repeatWindowMs: 120_000,
  maxSpanMs: 60_000,
};
const MAX_OPEN = 1_000;

export class IncidentGrouper {
  private readonly open = new Map<string, Incident[]>();
  private openCount = 0;
  private latestMs = -Infinity;
  private readonly closed: Incident[] = [];

  constructor(private readonly o: GrouperOptions = DEFAULT_GROUPING) {}

  add(l: IncidentLine): void {
    this.latestMs = Math.max(this.latestMs, l.atMs);
    const list = this.open.get(l.device) ?? [];
    // A repeating reminder lasts as long as its state: no span limit.
    const live = list.filter(
      (i) =>
        l.atMs - i.lastMs <= (i.repeats ? this.o.repeatWindowMs : this.o.windowMs) &&
        (i.repeats || l.atMs - i.firstMs <= this.o.maxSpanMs),
    );
    const target = this.pick(l, live);
    if (target) {
      target.severity = worse(target.severity, l.severity);
      target.classes[l.class] = (target.classes[l.class] ?? 0) + 1;
      target.lines++;
      target.lastMs = Math.max(target.lastMs, l.atMs);
      target.lastWallMs = l.wallMs;
      if (l.sector !== undefined && !target.sectors.includes(l.sector))
        target.sectors.push(l.sector);
      if (l.request !== undefined && !target.requests.includes(l.request))
        target.requests.push(l.request);
      return;
    }
    const inc: Incident = {
      device: l.device,
      severity: l.severity,
      classes: { [l.class]: 1 },
      lines: 1,
      firstMs: l.atMs,
      lastMs: l.atMs,
      lastWallMs: l.wallMs,
      sectors: l.sector === undefined ? [] : [l.sector],
      requests: l.request === undefined ? [] : [l.request],
      firstLine: l.line,
      repeats: l.repeats === true,
    };
    list.push(inc);
    this.open.set(l.device, list);
    if (++this.openCount > MAX_OPEN) this.closeOldest(); // bounded memory in a storm of distinct devices
  }

  private pick(l: IncidentLine, live: Incident[]): Incident | undefined {
    if (l.repeats) return live.find((i) => i.repeats && i.classes[l.class] !== undefined);
    const plain = live.filter((i) => !i.repeats);
    if (l.request !== undefined) {
      const same = plain.find((i) => i.requests.includes(l.request as string));
      if (same) return same;
    }
    if (l.sector !== undefined) {
      const same = plain.find((i) => i.sectors.includes(l.sector as string));
      if (same) return same;
    }
    const latest = plain[plain.length - 1];
    if (!latest) return undefined;
    if (l.request !== undefined)
      return latest.requests.length === 0 && latest.sectors.length === 0 ? latest : undefined;
    if (l.sector !== undefined) return latest.sectors.length === 0 ? latest : undefined;
    return latest;
  }

  /**
   * Incidents no line can join any more: quiet for the window by record time (a later record
   * arrived) or by wall clock (nothing arrived). `all` closes everything (shutdown).
   */
  flush(nowWallMs: number, all = false): Incident[] {
    for (const [dev, list] of this.open) {
      const keep: Incident[] = [];
      for (const i of list) {
        const w = i.repeats ? this.o.repeatWindowMs : this.o.windowMs;
        if (
          all ||
          this.latestMs - i.lastMs > w ||
          nowWallMs - i.lastWallMs > w ||
          (!i.repeats && this.latestMs - i.firstMs > this.o.maxSpanMs)
        )
          this.closed.push(i);
        else keep.push(i);
      }
      this.openCount -= list.length - keep.length;
      if (keep.length === 0) this.open.delete(dev);
      else this.open.set(dev, keep);
    }
    const out = this.closed.splice(0);
    return out.sort((a, b) => a.firstMs - b.firstMs);
  }

  private closeOldest(): void {
    let oldest: Incident | undefined;
    for (const list of this.open.values())
      for (const i of list) if (!oldest || i.lastWallMs < oldest.lastWallMs) oldest = i;
    if (!oldest) return;
    const list = this.open.get(oldest.device) ?? [];
    const rest = list.filter((i) => i !== oldest);
    if (rest.length === 0) this.open.delete(oldest.device);
    else this.open.set(oldest.device, rest);
    this.openCount--;
    this.closed.push(oldest);
  }
}

/** "scsi_medium_error x2, blk_medium_error, buffer_io_error" */
export function describeClasses(i: Pick<Incident, "classes">): string {
  return Object.entries(i.classes)
    .map(([k, n]) => (n && n > 1 ? `${k} x${n}` : k))
    .join(", ");
}
