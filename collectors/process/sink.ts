// process's sinks: the database's processes as one group (CPU seconds by mode, memory, counts of
// processes, threads, threads in D and descriptors) and the host's CPUs, busy and iowait shares
// and available memory; the group's CPU in cores, its memory and the host's busy share into
// history, so diagnose can show recent peaks. Two names differ from issue 19's draft so that
// promtool check metrics passes: db_processes (only histograms and summaries end in _count) and
// db_process_uninterruptible_threads (promtool reads a "_d" as days).
import type { Registry } from "prom-client";
import type { HistoryRow, Sinks } from "../../core/collector.js";
import { counter, gauge } from "../../core/metrics/define.js";
import { NS } from "../../core/metrics/registry.js";
import type { ProcessObservation } from "./observation.js";

export function processSinks(registry: Registry): Sinks<ProcessObservation> {
  const r = registry;
  const cpu = counter(r, {
    name: `${NS}db_process_cpu_seconds_total`,
    help:
      "CPU time used by the database's processes since the agent started, by mode " +
      "(deltas between samples: it does not go back when a process exits).",
    labelNames: ["mode"],
  });
  const rss = gauge(r, {
    name: `${NS}db_process_resident_memory_bytes`,
    help: "Resident memory of the database's processes, summed.",
  });
  const count = gauge(r, {
    name: `${NS}db_processes`,
    help: "The database's processes (comm starts with stemedb; the agent excluded).",
  });
  const threads = gauge(r, {
    name: `${NS}db_process_threads`,
    help: "Threads of the database's processes.",
  });
  const inD = gauge(r, {
    name: `${NS}db_process_uninterruptible_threads`,
    help: "Threads of the database's processes in uninterruptible sleep (D), usually waiting on storage.",
  });
  const fds = gauge(r, {
    name: `${NS}db_process_open_fds`,
    help: "Open descriptors of the database's processes (those whose descriptors could be listed).",
  });
  const cpus = gauge(r, { name: `${NS}host_cpus`, help: "Online CPUs of the host." });
  const busy = gauge(r, {
    name: `${NS}host_cpu_busy_ratio`,
    help: "Share of all the host's CPU time busy (not idle, not iowait) over the last interval.",
  });
  const iowait = gauge(r, {
    name: `${NS}host_cpu_iowait_ratio`,
    help: "Share of all the host's CPU time idle with I/O outstanding (iowait) over the last interval.",
  });
  const available = gauge(r, {
    name: `${NS}host_memory_available_bytes`,
    help: "Memory available for new work without swapping (MemAvailable).",
  });
  const user = cpu.labels("user");
  const system = cpu.labels("system");
  user.inc(0);
  system.inc(0);
  const noLabels = {};

  return {
    observation: {
      metrics(o) {
        const d = o.group.cpu_seconds_interval;
        if (d) {
          user.inc(Math.max(0, d.user));
          system.inc(Math.max(0, d.system));
        }
        rss.set(o.group.rss_bytes);
        count.set(o.group.count);
        threads.set(o.group.threads);
        inD.set(o.group.threads_in_d);
        fds.set(o.processes.reduce((a, p) => a + (p.open_fds ?? 0), 0));
        cpus.set(o.host.cpus);
        if (o.host.busy_ratio !== null) busy.set(o.host.busy_ratio);
        if (o.host.iowait_ratio !== null) iowait.set(o.host.iowait_ratio);
        available.set(o.host.mem_available_bytes);
      },
      *history(o): Iterable<HistoryRow> {
        const ts = Date.now();
        if (o.group.cpu_cores !== null)
          yield { series: "db_process_cpu_cores", labels: noLabels, value: o.group.cpu_cores, ts };
        yield { series: "db_process_rss_bytes", labels: noLabels, value: o.group.rss_bytes, ts };
        if (o.host.busy_ratio !== null)
          yield { series: "host_cpu_busy_ratio", labels: noLabels, value: o.host.busy_ratio, ts };
      },
    },
  };
}
