// procio's sinks: per-unit byte counters for the configured units only (cardinality), the count
// of unreadable processes; the top consumers of each interval into history.
import type { Registry } from "prom-client";
import type { HistoryRow, Sinks } from "../../core/collector.js";
import { counter, gauge } from "../../core/metrics/define.js";
import { NS } from "../../core/metrics/registry.js";
import type { ProcioObservation } from "./observation.js";

export function procioSinks(
  registry: Registry,
  units: readonly string[],
): Sinks<ProcioObservation> {
  const unitRead = counter(registry, {
    name: `${NS}unit_read_bytes_total`,
    help: "Bytes read from storage by a configured systemd unit (cgroup io.stat, else the sum of its processes).",
    labelNames: ["unit"],
  });
  const unitWritten = counter(registry, {
    name: `${NS}unit_written_bytes_total`,
    help: "Bytes written to storage by a configured systemd unit (cgroup io.stat, else dirtied by its processes).",
    labelNames: ["unit"],
  });
  const unreadable = gauge(registry, {
    name: `${NS}procio_unreadable_processes`,
    help: "Processes whose I/O counters the agent may not read (needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH).",
  });
  for (const u of units) {
    unitRead.labels(u).inc(0);
    unitWritten.labels(u).inc(0);
  }
  const configured = new Set(units);
  return {
    observation: {
      metrics(o) {
        unreadable.set(o.unreadable);
        for (const u of o.units) {
          if (!configured.has(u.unit)) continue;
          unitRead.labels(u.unit).inc(u.read_bytes);
          unitWritten.labels(u.unit).inc(u.write_bytes);
        }
      },
      *history(o): Iterable<HistoryRow> {
        if (o.interval_seconds === null || o.top.length === 0) return;
        yield {
          ts: Date.now(),
          topIo: o.top.map(({ pid, comm, unit, read_bps, write_bps }) => ({
            pid,
            comm,
            unit,
            read_bps,
            write_bps,
          })),
        };
      },
    },
  };
}
