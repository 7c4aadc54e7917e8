// The agent's own footprint, in the standard process_* names plus event-loop delay.
// (prom-client's default set is not used: its nodejs_active_*_total gauges fail promtool's lint
// and it exports ~30 series we do not need on every database node.)
import { readdirSync } from "node:fs";
import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";
import { Counter, Gauge, type Registry } from "prom-client";
import { NS } from "./registry.js";

const LOOP_RESOLUTION_MS = 100;

export class SelfMetrics {
  private readonly loop: IntervalHistogram;
  private window = { p50: 0, p99: 0, max: 0 };

  constructor(registry: Registry, procPath = "/proc") {
    const registers = [registry];
    // Sampled at 10 Hz: any stall spanning a tick is caught, and the sampling costs ~0.05% of a
    // core (a 10 ms resolution measured ~0.7% of a core on its own: 100 wake-ups a second).
    this.loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    this.loop.enable();
    let lastCpu = process.cpuUsage();
    const user = new Counter({ name: "process_cpu_user_seconds_total", help: "User CPU time spent by the agent.", registers });
    const system = new Counter({ name: "process_cpu_system_seconds_total", help: "System CPU time spent by the agent.", registers });
    new Counter({
      name: "process_cpu_seconds_total",
      help: "User and system CPU time spent by the agent.",
      registers,
      collect() {
        const now = process.cpuUsage();
        const du = (now.user - lastCpu.user) / 1e6;
        const ds = (now.system - lastCpu.system) / 1e6;
        lastCpu = now;
        user.inc(du);
        system.inc(ds);
        this.inc(du + ds);
      },
    });
    new Gauge({ name: "process_resident_memory_bytes", help: "Resident memory of the agent.", registers, collect() { this.set(process.memoryUsage.rss()); } });
    new Gauge({ name: "process_start_time_seconds", help: "Unix time the agent process started.", registers }).set(Math.round(Date.now() / 1000 - process.uptime()));
    new Gauge({
      name: "process_open_fds",
      help: "Open file descriptors of the agent.",
      registers,
      collect() {
        try {
          this.set(readdirSync(`${procPath}/self/fd`).length);
        } catch {
          // not Linux, or no procfs
        }
      },
    });
    new Gauge({ name: "nodejs_heap_used_bytes", help: "V8 heap in use.", registers, collect() { this.set(process.memoryUsage().heapUsed); } });
    const win = () => this.window;
    new Gauge({
      name: `${NS}event_loop_delay_seconds`,
      help: "Event-loop delay over the last 10 s window, by statistic (p50, p99, max): how late the agent's timers and I/O callbacks run.",
      labelNames: ["stat"],
      registers,
      collect() {
        const w = win();
        this.set({ stat: "p50" }, w.p50);
        this.set({ stat: "p99" }, w.p99);
        this.set({ stat: "max" }, w.max);
      },
    });
  }

  /** Closes the current 10 s window (called by the core loop). */
  rollWindow(): void {
    const h = this.loop;
    // Node records the whole interval between two timer runs, so every value includes the
    // resolution itself (an idle loop reads ~100 ms): the delay is what exceeds it.
    const late = (ns: number) => Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS) / 1e3;
    if (h.count > 0) this.window = { p50: late(h.percentile(50)), p99: late(h.percentile(99)), max: late(h.max) };
    h.reset();
  }

  /** The last window, for status and benchmarks. */
  eventLoopDelay(): { p50: number; p99: number; max: number } {
    return this.window;
  }

  stop(): void {
    this.loop.disable();
  }
}
