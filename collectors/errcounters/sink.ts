// errcounters' sinks: the kernel's counters as Prometheus counters that mirror its values (a
// series seen for the first time, or one that went back, is set afresh, so a rebuild on reload
// never counts twice), the ext4 error times as gauges and the reporting function as an info
// series, the rises and the rises the kernel log has no line for as events, and a condition per
// filesystem or member that has recorded errors.
import type { Registry } from "prom-client";
import type { Sinks } from "../../core/collector.js";
import { Conditions } from "../../core/conditions.js";
import type { EventInput } from "../../core/history/store.js";
import { counter, gauge } from "../../core/metrics/define.js";
import { NS } from "../../core/metrics/registry.js";
import type { CollectorJudge } from "../judge.js";
import type { ErrcountersObservation, Ext4Fs, LogCheck, Rise } from "./observation.js";
import { BTRFS_STATS, btrfsMemberName, btrfsTotal } from "./parse.js";

export const EVENT_CLASS = "errcounter";
export const MISSING_KIND = "kernel_log.missing";

const utc = (ms: number) => `${new Date(ms).toISOString().slice(11, 19)} UTC`;

/** "trigger_test_error at 2026-12-03 10:29:26 UTC, line 129, errno 5" */
export function describeRecord(r: Ext4Fs["last"]): string {
  if (!r) return "none recorded";
  const when = new Date(r.time_s * 1000).toISOString().slice(0, 19).replace("T", " ");
  return [
    `${r.func ?? "?"} at ${when} UTC`,
    r.line !== null ? `line ${r.line}` : "",
    r.ino !== null ? `inode ${r.ino}` : "",
    r.block !== null ? `block ${r.block}` : "",
    r.errcode !== null ? `errno ${r.errcode}` : "",
  ]
    .filter(Boolean)
    .join(", ");
}

const where = (r: Pick<Rise, "device" | "mountpoint">) =>
  r.mountpoint ? `${r.device} (${r.mountpoint})` : r.device;

/** "ext4_errors on loop0 (/mnt) rose 1 -> 3 between 10:00:00 and 10:00:15 UTC" */
export const describeRise = (r: Rise): string =>
  `${r.counter} on ${where(r)} rose ${r.from} -> ${r.to} between ${utc(r.sinceMs)} and ${utc(r.atMs)}`;

/** Why a rise has no line: what the kernel-log collector knows of the window. */
export function missingMessage(c: LogCheck): string {
  const why =
    c.lost > 0
      ? `the kernel log lost ${c.lost} records in that window (overwritten before they were read)`
      : c.suppressed > 0
        ? `the kernel suppressed ${c.suppressed} messages in that window (rate limiting)`
        : "the line was rate-limited where it is printed, or never reached the kernel log";
  return (
    `${describeRise(c.rise)}, and the kernel log has no line on ${c.rise.disk} from ` +
    `${utc(c.fromMs)} to ${utc(c.toMs)}: ${why}`
  );
}

export function errcountersSinks(
  registry: Registry,
  judge: Pick<CollectorJudge, "counterRiseSeverity" | "logMissingSeverity">,
): Sinks<ErrcountersObservation> {
  const r = registry;
  const scsiDone = counter(r, {
    name: `${NS}scsi_commands_completed_total`,
    help: "SCSI commands completed, whatever their result (iodone_cnt in /sys/block/<disk>/device).",
    labelNames: ["device"],
  });
  const scsiErrors = counter(r, {
    name: `${NS}scsi_command_errors_total`,
    help:
      "SCSI commands completed with a nonzero result, check conditions a caller expects included " +
      "(ioerr_cnt).",
    labelNames: ["device"],
  });
  const scsiTimeouts = counter(r, {
    name: `${NS}scsi_command_timeouts_total`,
    help: "SCSI commands that timed out (iotmo_cnt).",
    labelNames: ["device"],
  });
  const fsErrors = counter(r, {
    name: `${NS}filesystem_errors_total`,
    help: "Errors the filesystem recorded since its last fsck (ext4 errors_count in /sys/fs/ext4/<dev>).",
    labelNames: ["device", "mountpoint", "fstype"],
  });
  const fsErrorTime = gauge(r, {
    name: `${NS}filesystem_error_time_seconds`,
    help: "When the filesystem recorded its first and last error (ext4 first/last_error_time), since the epoch.",
    labelNames: ["device", "mountpoint", "which"],
  });
  const fsErrorInfo = gauge(r, {
    name: `${NS}filesystem_error_info`,
    help: "1, naming the kernel function that recorded the first and last error (ext4 first/last_error_func).",
    labelNames: ["device", "mountpoint", "which", "function"],
  });
  const btrfsErrors = counter(r, {
    name: `${NS}btrfs_device_errors_total`,
    help:
      "btrfs per-device error stats (/sys/fs/btrfs/<fsid>/devinfo/<devid>/error_stats, 5.14 on), " +
      "by kind: write, read, flush, corruption, generation.",
    labelNames: ["device", "mountpoint", "kind"],
  });
  const missingTotal = counter(r, {
    name: `${NS}kernel_log_missing_total`,
    help:
      "Rises of a kernel error counter the kernel log has no line for within the window " +
      "(ext4 and btrfs print one for each): the log was lost or rate-limited.",
    labelNames: ["device", "counter"],
  });
  const omitted = gauge(r, {
    name: `${NS}kernel_error_counters_omitted`,
    help: "SCSI disks (what=scsi) and filesystems (what=filesystems) beyond the caps, not read.",
    labelNames: ["what"],
  });

  /** The kernel's value last exported per series (by a key of its labels). */
  const last = new Map<string, number>();
  const mirror = <L extends string>(
    id: string,
    c: ReturnType<typeof counter<L>>,
    labels: Record<L, string>,
    value: number,
    present: Set<string>,
  ) => {
    const key = `${id}\u0000${JSON.stringify(labels)}`;
    present.add(key);
    const prev = last.get(key);
    if (prev === undefined || value < prev) {
      // First sight (the registry may hold this series from before a reload) or a reset.
      c.remove(labels);
      c.inc(labels, value);
    } else if (value > prev) c.inc(labels, value - prev);
    last.set(key, value);
  };
  const series = new Map<string, () => void>();
  /** The function label each (device, mountpoint, which) info series carries now. */
  const funcs = new Map<string, Record<string, string>>();
  const setInfo = (labels: Record<string, string> | null, key: string) => {
    const had = funcs.get(key);
    if (had && (!labels || had.function !== labels.function)) fsErrorInfo.remove(had);
    if (labels) {
      fsErrorInfo.set(labels, 1);
      funcs.set(key, labels);
    } else funcs.delete(key);
  };
  const conditions = new Conditions<string, number>();

  return {
    observation: {
      metrics(o) {
        const present = new Set<string>();
        const removers = new Map<string, () => void>();
        const keep = (key: string, remove: () => void) => removers.set(key, remove);
        for (const d of o.scsi) {
          const l = { device: d.device };
          mirror("done", scsiDone, l, d.done, present);
          mirror("err", scsiErrors, l, d.errors, present);
          mirror("tmo", scsiTimeouts, l, d.timeouts, present);
          keep(`scsi ${d.device}`, () => {
            scsiDone.remove(l);
            scsiErrors.remove(l);
            scsiTimeouts.remove(l);
          });
        }
        for (const f of o.ext4) {
          const l = { device: f.device, mountpoint: f.mountpoint };
          mirror("fs", fsErrors, { ...l, fstype: "ext4" }, f.errors, present);
          const id = `ext4 ${f.device} ${f.mountpoint}`;
          for (const [which, rec] of [
            ["first", f.first],
            ["last", f.last],
          ] as const) {
            if (rec) fsErrorTime.set({ ...l, which }, rec.time_s);
            else fsErrorTime.remove({ ...l, which });
            setInfo(rec ? { ...l, which, function: rec.func ?? "?" } : null, `${id} ${which}`);
          }
          keep(id, () => {
            fsErrors.remove({ ...l, fstype: "ext4" });
            for (const which of ["first", "last"]) {
              fsErrorTime.remove({ ...l, which });
              setInfo(null, `${id} ${which}`);
            }
          });
        }
        for (const b of o.btrfs) {
          if (!("stats" in b.counters)) continue;
          const l = { device: btrfsMemberName(b), mountpoint: b.mountpoint };
          for (const kind of BTRFS_STATS)
            mirror("btrfs", btrfsErrors, { ...l, kind }, b.counters.stats[kind], present);
          keep(`btrfs ${l.device} ${l.mountpoint}`, () => {
            for (const kind of BTRFS_STATS) btrfsErrors.remove({ ...l, kind });
          });
        }
        // Devices and filesystems gone since: their series go too.
        for (const [key, remove] of series) if (!removers.has(key)) remove();
        series.clear();
        for (const [k, v] of removers) series.set(k, v);
        for (const key of [...last.keys()]) if (!present.has(key)) last.delete(key);
        omitted.set({ what: "scsi" }, o.omitted.scsi);
        omitted.set({ what: "filesystems" }, o.omitted.filesystems);
        for (const c of o.checks)
          if (c.lines === 0) missingTotal.inc({ device: c.rise.device, counter: c.rise.counter });
      },
      *events(o): Iterable<EventInput> {
        const ext4 = new Map(o.ext4.map((f) => [`${f.device} ${f.mountpoint}`, f]));
        for (const r of o.rises) {
          const f = r.counter === "ext4_errors" ? ext4.get(`${r.device} ${r.mountpoint}`) : null;
          yield {
            class: EVENT_CLASS,
            kind: r.counter,
            severity: judge.counterRiseSeverity(r.counter),
            subject: r.device,
            message: `${describeRise(r)}${f ? `; last error: ${describeRecord(f.last)}` : ""}`,
            data: { ...r, ...(f ? { last_error: f.last } : {}) },
          };
        }
        for (const c of o.checks) {
          if (c.lines > 0) continue;
          yield {
            class: EVENT_CLASS,
            kind: MISSING_KIND,
            severity: judge.logMissingSeverity(c.rise.counter),
            subject: c.rise.device,
            message: missingMessage(c),
            data: { ...c },
          };
        }
        yield* recorded(o, conditions);
      },
    },
  };
}

/**
 * Filesystems and btrfs members with errors on record: an event when first seen so (the agent
 * starting on a filesystem with errors since its last fsck), and when the count is gone.
 */
function* recorded(
  o: ErrcountersObservation,
  conditions: Conditions<string, number>,
): Iterable<EventInput> {
  const now = new Map<string, { n: number; subject: string; what: string }>();
  for (const f of o.ext4)
    now.set(`ext4 ${f.device} ${f.mountpoint}`, {
      n: f.errors,
      subject: f.device,
      what:
        `ext4 on ${f.device} (${f.mountpoint}) has ${f.errors} errors on record since its last ` +
        `fsck; first: ${describeRecord(f.first)}; last: ${describeRecord(f.last)}`,
    });
  for (const b of o.btrfs) {
    if (!("stats" in b.counters)) continue;
    const s = b.counters.stats;
    const n = btrfsTotal(s);
    const dev = btrfsMemberName(b);
    now.set(`btrfs ${dev} ${b.mountpoint}`, {
      n,
      subject: dev,
      what:
        `btrfs member ${dev} of ${b.mountpoint} has errors on record: ` +
        BTRFS_STATS.map((k) => `${k} ${s[k]}`).join(", "),
    });
  }
  const info = new Map([...now].map(([k, v]) => [k, v.n > 0 ? 1 : 0]));
  for (const t of conditions.update(info)) {
    const cur = now.get(t.key);
    if (!cur) continue; // unmounted: nothing to say
    if (t.before === undefined && t.after === 1)
      yield {
        class: EVENT_CLASS,
        kind: "errors_on_record",
        severity: "warn",
        subject: cur.subject,
        message: cur.what,
      };
    else if (t.before === 1 && t.after === 0)
      yield {
        class: EVENT_CLASS,
        kind: "errors_cleared",
        severity: "info",
        subject: cur.subject,
        message: `${t.key}: no errors on record any more (fsck, or a new device)`,
      };
  }
}
