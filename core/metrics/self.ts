// The agent's own footprint, in the standard process_* names plus event-loop delay.
// (prom-client's default set is not used: its nodejs_active_*_total gauges fail promtool's lint
// and it exports ~30 series we do not need on every database node.)
import { createHistogram, type RecordableHistogram } from "node:perf_hooks";
import { Counter, Gauge, type Registry } from "prom-client";
import { NS } from "./registry.js";
import { Host } from "../host/host.js";

export class SelfMetrics {
  private readonly loop: RecordableHistogram = createHistogram();
  private window = { p50: 0, p99: 0, max: 0 };

  constructor(registry: Registry, procPath = "/proc") {
    const registers = [registry];
    const self = new Host({ procPath }).process("self");
    let lastCpu = process.cpuUsage();
    const user = new Counter({
      name: "process_cpu_user_seconds_total",
      help: "User CPU time spent by the agent.",
      registers,
    });
    const system = new Counter({
      name: "process_cpu_system_seconds_total",
      help: "System CPU time spent by the agent.",
      registers,
    });
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
    new Gauge({
      name: "process_resident_memory_bytes",
      help: "Resident memory of the agent.",
      registers,
      collect() {
        this.set(process.memoryUsage.rss());
      },
    });
    new Gauge({
      name: "process_start_time_seconds",
      help: "Unix time the agent process started.",
      registers,
    }).set(Math.round(Date.now() / 1000 - process.uptime()));
    new Gauge({
      name: "process_open_fds",
      help: "Open file descriptors of the agent.",
      registers,
      collect() {
        try {
          const fds = self.fds();
          if (fds) this.set(fds.length);
        } catch {
          // not Linux, or no procfs
        }
      },
    });
    new Gauge({
      name: "nodejs_heap_used_bytes",
      help: "V8 heap in use.",
      registers,
      collect() {
        this.set(process.memoryUsage().heapUsed);
      },
    });
    const win = () => this.window;
    new Gauge({
      name: `${NS}event_loop_delay_seconds`,
      help:
        "Event-loop delay over the last 10 s window, by statistic (p50, p99, max):" +
        " how late the agent's timers and I/O callbacks run.",
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

  /**
   * How late one of the agent's own timers fired (ms): the core tick and every collector run
   * report it. That is the event-loop delay, sampled by the timers the agent has anyway (about 3.5
   * a second at defaults) rather than by monitorEventLoopDelay, whose own 10 Hz timer cost ~3 CPU
   * seconds an hour (measured): a third of the idle budget's headroom.
   */
  late(ms: number): void {
    // The histogram takes whole nanoseconds >= 1.
    this.loop.record(Math.max(1, Math.round(Math.max(0, ms) * 1e6)));
  }

  /** Closes the current 10 s window (called by the core loop). */
  rollWindow(): void {
    const h = this.loop;
    const s = (ns: number) => (ns <= 1 ? 0 : ns / 1e9);
    if (h.count > 0)
      this.window = { p50: s(h.percentile(50)), p99: s(h.percentile(99)), max: s(h.max) };
    h.reset();
  }

  /** The last window, for status and benchmarks. */
  eventLoopDelay(): { p50: number; p99: number; max: number } {
    return this.window;
  }

  stop(): void {
    this.loop.reset();
  }
}
