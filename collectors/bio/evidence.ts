// What the bio collector's latest observation says about a slow WAL: the WAL devices' latency
// per operation over the last interval, and which units' I/O was on the disks and how slow it
// was. backup_pause records it with a pause that was "not the cure", so the record shows whether
// the paused unit was still (or never) the one doing I/O, and whose requests were slow. Pure.
import type { BioObservation, BioUnit } from "./observation.js";

export interface BioEvidence {
  /** Per WAL device and operation: the last interval's p99 and how many requests. */
  readonly wal: ReadonlyArray<{
    readonly device: string;
    readonly op: string;
    readonly sync: boolean;
    readonly p99_seconds: number;
    readonly requests: number;
  }>;
  /** The units doing block I/O in the last interval, most bytes first (top K, then "other"). */
  readonly units: readonly BioUnit[];
  /** One line for people. */
  readonly text: string;
}

/** Null unless the eBPF tier runs (diskstats averages are no evidence of whose I/O is slow). */
export function bioEvidence(
  o: BioObservation | undefined,
  walDevices: readonly string[],
): BioEvidence | null {
  if (!o || o.tier !== "ebpf") return null;
  const devs = new Set(walDevices);
  const wal = o.histograms
    .filter((h) => devs.has(h.device) && h.p99_seconds !== null && h.interval_count > 0)
    .map((h) => ({
      device: h.device,
      op: h.op,
      sync: h.sync,
      p99_seconds: h.p99_seconds ?? 0,
      requests: h.interval_count,
    }));
  const ms = (s: number | null) => (s === null ? "n/a" : `${(s * 1000).toFixed(1)} ms`);
  const mib = (b: number) => `${(b / 1024 ** 2).toFixed(1)} MiB`;
  const text = `eBPF: ${
    wal.length > 0
      ? wal
          .map(
            (w) =>
              `${w.device} ${w.op}${w.sync ? " sync" : ""} p99 ${ms(w.p99_seconds)} (${w.requests})`,
          )
          .join(", ")
      : "no requests on the WAL devices"
  }; units: ${
    o.units.length > 0
      ? o.units
          .slice(0, 5)
          .map(
            (u) =>
              `${u.unit} ${mib(u.read_bytes + u.write_bytes)} mean ${ms(u.mean_latency_seconds)}`,
          )
          .join(", ")
      : "none doing I/O"
  }`;
  return { wal, units: o.units, text };
}
