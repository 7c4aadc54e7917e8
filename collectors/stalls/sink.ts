// stalls' sinks: the shared stall metrics (core/stalls.ts) for the database's WAL writes (target:
// the WAL directory) and each device; events when an episode turns slow, turns into a stall, and
// ends; a log line each time, so the journal has it too.
import type { Registry } from "prom-client";
import type { Sinks } from "../../core/collector.js";
import type { EventInput } from "../../core/history/store.js";
import type { Logger } from "../../core/log.js";
import {
  type StallChange,
  StallDetector,
  stallEvent,
  type StallLimits,
  stallMetrics,
  type StallSource,
} from "../../core/stalls.js";
import type { StallsObservation } from "./observation.js";

/** WAL files with an episode at most (threads arrive oldest first, so the oldest are kept). */
const MAX_FILES = 32;

export function stallsSinks(
  registry: Registry,
  log: Logger,
  walDir: string,
  limits: StallLimits,
): Sinks<StallsObservation> {
  const m = stallMetrics(registry);
  const db = new StallDetector(limits);
  const dev = new StallDetector(limits);
  /** Device label values exported now (removed when the device has nothing waiting). */
  let exported = new Set<string>();
  let pending: EventInput[] = [];

  const note = (source: StallSource, subject: (key: string) => string, cs: StallChange[]) => {
    for (const c of cs) {
      if (c.kind === "detected") {
        m.episodes.inc({ source, level: c.level });
        (c.level === "stall" ? log.error : log.warn).call(
          log,
          { source, key: c.key, detail: c.detail, seconds: c.age_seconds },
          `${source} ${c.level}: an operation in flight for ${c.age_seconds.toFixed(1)} s`,
        );
      } else
        log.info(
          { source, key: c.key, detail: c.detail, seconds: c.duration_seconds, level: c.level },
          `${source} ${c.level} over after ${c.duration_seconds.toFixed(1)} s`,
        );
      pending.push(stallEvent(source, subject(c.key), c));
    }
  };

  return {
    observation: {
      metrics(o) {
        const oldest = o.db.threads[0]?.age_seconds ?? 0;
        m.ongoing.set({ source: "db", target: walDir }, oldest);
        m.unknown.set({ source: "db" }, o.db.unknown === null ? 0 : 1);
        const now = new Set<string>();
        for (const d of o.devices) {
          now.add(d.device);
          m.ongoing.set({ source: "device", target: d.device }, d.age_seconds);
        }
        for (const d of exported)
          if (!now.has(d)) m.ongoing.remove({ source: "device", target: d });
        exported = now;
        // One episode per WAL file (its oldest thread), not per thread: a database with
        // hundreds of threads stuck on one file is one event, and at most MAX_FILES files.
        const byFile = new Map<string, (typeof o.db.threads)[number]>();
        for (const t of o.db.threads) {
          const was = byFile.get(t.file);
          if ((!was && byFile.size < MAX_FILES) || (was && t.age_seconds > was.age_seconds))
            byFile.set(t.file, t);
        }
        note(
          "db",
          () => walDir,
          db.update(
            [...byFile.values()].map((t) => ({
              key: t.file,
              age_seconds: t.age_seconds,
              detail: `${t.call} on ${t.file}, thread ${t.tid} of ${t.comm}[${t.pid}]`,
            })),
          ),
        );
        note(
          "device",
          (k) => k,
          dev.update(
            o.devices.map((d) => ({
              key: d.device,
              age_seconds: d.age_seconds,
              // "device I/O (write, eBPF) on sda in flight for 21.0 s (stall)"
              detail: d.via === "ebpf" ? `${d.op ?? "request"}, eBPF` : "diskstats, a lower bound",
            })),
          ),
        );
      },
      *events(): Iterable<EventInput> {
        const out = pending;
        pending = [];
        yield* out;
      },
    },
    // Closed on reload (rebuilt, perhaps for another WAL directory) or turned off: its series go,
    // or the old directory's and a device's last age would stay exported for ever.
    close: {
      metrics() {
        m.ongoing.remove({ source: "db", target: walDir });
        m.unknown.remove({ source: "db" });
        for (const d of exported) m.ongoing.remove({ source: "device", target: d });
        exported = new Set();
      },
    },
  };
}
