// mounts' sinks: flagged options, read-only, space, inodes and time-to-full per mount; used
// bytes and ratio into history; an event when a mount's options change (remounted ro at 03:12)
// and when each finding appears or clears. Also the typed query over the used-bytes history,
// so no other module needs the series' name.
import type { Registry } from "prom-client";
import type { HistoryReader, HistoryRow, Sinks } from "../../core/collector.js";
import { Conditions } from "../../core/conditions.js";
import type { EventInput } from "../../core/history/store.js";
import type { Logger } from "../../core/log.js";
import { gauge } from "../../core/metrics/define.js";
import { NS } from "../../core/metrics/registry.js";
import type { UsedSample } from "./fill.js";
import type { MountsObservation, MountState } from "./observation.js";

const USED_BYTES = "filesystem_used_bytes";
const USED_RATIO = "filesystem_used_ratio";

/** A mount's used bytes since a time, oldest first (seeds a time-to-full fit after a restart). */
export type UsedHistory = (mountpoint: string, since: number) => UsedSample[];

export function usedHistory(h: HistoryReader | null): UsedHistory {
  return (mountpoint, since) =>
    (h?.series(USED_BYTES, { mountpoint }, since) ?? []).map((p) => ({ ts: p.ts, used: p.value }));
}

export function mountsSinks(registry: Registry, log: Logger): Sinks<MountsObservation> {
  const g = (name: string, help: string) =>
    gauge(registry, { name: `${NS}${name}`, help, labelNames: ["mountpoint"] });
  const gFinding = gauge(registry, {
    name: `${NS}mount_finding`,
    help:
      "1 for each mount option the policy flags on a WAL or data mount (ro, nobarrier, errors=continue, " +
      "data=journal, sync, atime).",
    labelNames: ["mountpoint", "option", "severity"],
  });
  const gRo = g("mount_read_only", "1 while the WAL or data filesystem is mounted read-only.");
  const gSize = g("filesystem_size_bytes", "Filesystem size (statfs).");
  const gFree = g(
    "filesystem_free_bytes",
    "Free bytes, including those reserved for root (statfs).",
  );
  const gAvail = g("filesystem_avail_bytes", "Bytes available to unprivileged users (statfs).");
  const gFiles = g("filesystem_files", "Inodes (statfs).");
  const gFilesFree = g("filesystem_files_free", "Free inodes (statfs).");
  const gFull = g(
    "filesystem_full_in_seconds",
    "Estimated seconds until available space runs out at the recent fill rate (robust fit); +Inf when not filling.",
  );
  /** Per mount point: its options, as one string. */
  const options = new Conditions<string, string>();
  /** Per mount point: which options the policy flags (info aside). */
  const findings = new Map<string, Conditions<string, true>>();

  function* changes(m: MountState): Iterable<EventInput> {
    const opts = m.options.join(",");
    const t = options.set(m.mountpoint, opts);
    const before = t?.before;
    if (before !== undefined) {
      const ro = m.read_only && !before.split(",").includes("ro");
      yield {
        class: "mount",
        kind: ro ? "mount.remounted_ro" : "mount.options_changed",
        severity: ro ? "crit" : "warn",
        subject: m.mountpoint,
        message: `${m.mountpoint} ${ro ? "was remounted read-only" : "mount options changed"}: ${before} -> ${opts}`,
        data: { before, after: opts },
      };
      log.warn({ mountpoint: m.mountpoint, before, after: opts }, "mount options changed");
    }
    let flagged = findings.get(m.mountpoint);
    if (!flagged) findings.set(m.mountpoint, (flagged = new Conditions()));
    const serious = m.findings.filter((f) => f.severity !== "info");
    for (const t of flagged.update(new Map(serious.map((f) => [f.option, true] as const)))) {
      if (t.after === undefined)
        yield {
          class: "mount",
          kind: "mount.finding_cleared",
          severity: "info",
          subject: m.mountpoint,
          message: `${m.mountpoint}: ${t.key} no longer set`,
        };
      else
        for (const f of serious.filter((x) => x.option === t.key))
          yield {
            class: "mount",
            kind: "mount.finding",
            severity: f.severity,
            subject: m.mountpoint,
            message: `${m.mountpoint} (${m.fs_type} on ${m.source}): ${f.option}: ${f.reason}`,
          };
    }
  }

  return {
    observation: {
      metrics(o) {
        gFinding.reset();
        for (const m of o.mounts) {
          const mp = { mountpoint: m.mountpoint };
          for (const f of m.findings)
            gFinding.set({ ...mp, option: f.option, severity: f.severity }, 1);
          gRo.set(mp, m.read_only ? 1 : 0);
          gFull.set(mp, m.full_in_seconds);
          if (m.space) {
            gSize.set(mp, m.space.size_bytes);
            gFree.set(mp, m.space.free_bytes);
            gAvail.set(mp, m.space.avail_bytes);
            gFiles.set(mp, m.space.files);
            gFilesFree.set(mp, m.space.files_free);
          }
        }
      },
      *history(o): Iterable<HistoryRow> {
        const ts = Date.now();
        for (const m of o.mounts) {
          if (!m.space) continue;
          const labels = { mountpoint: m.mountpoint };
          yield { series: USED_BYTES, labels, value: m.space.used_bytes, ts };
          yield { series: USED_RATIO, labels, value: m.space.used_ratio, ts };
        }
      },
      *events(o) {
        for (const m of o.mounts) yield* changes(m);
      },
    },
  };
}
