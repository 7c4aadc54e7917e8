// procio: who is doing I/O right now (the runbook's `iotop -o`), per process from
// <proc>/<pid>/io and per systemd unit from cgroup v2 io.stat where the io controller is on.
// Top consumers go to history each interval; per-unit byte counters are exported only for the
// configured units (cardinality). Processes vanishing mid-read and permission errors are normal.
import { readFile } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import { Host } from "../../core/host/host.js";
import type { CollectContext, Collector } from "../../core/collector.js";
import { type IoStatEntry, parseCgroupUnit, parseIoStat, parseProcIo } from "./parse.js";
import { errorMessage } from "../../core/errors.js";
import type { ProcessIo, UnitIo, ProcioObservation } from "./observation.js";

/** Processes read per slice before yielding to the event loop (keeps loop lag low on busy hosts). */
const SLICE = 64;

export interface ProcioOptions {
  readonly procPath: string;
  readonly units: readonly string[];
  readonly topK: number;
}

interface PidState {
  readonly ppid: number;
  readonly comm: string;
  readonly unit: string | null;
  readonly cgroup: string | null;
  read: number;
  written: number;
  seen: number;
}

interface UnitCounters {
  read: number;
  written: number;
  devices: Map<string, IoStatEntry>;
}

export class ProcioCollector implements Collector<ProcioObservation> {
  readonly name = "procio";
  readonly onceWarmupMs = 1000;
  private readonly pids = new Map<number, PidState>();
  private readonly unitPrev = new Map<string, UnitCounters>();
  private lastAt: number | null = null;
  private generation = 0;
  private cgroupRoot: string | null | undefined;
  private readonly host: Host;

  constructor(private readonly opts: ProcioOptions) {
    this.host = new Host({ procPath: opts.procPath });
  }

  async collect({ signal }: CollectContext): Promise<ProcioObservation> {
    const proc = this.opts.procPath;
    const at = performance.now();
    const seconds = this.lastAt === null ? null : (at - this.lastAt) / 1000;
    this.lastAt = at;
    const gen = ++this.generation;
    let names: number[];
    try {
      names = this.host.pids();
    } catch (e) {
      throw new Error(`cannot list ${proc}: ${errorMessage(e)}`);
    }
    let unreadable = 0;
    const deltas = new Map<number, { st: PidState; dr: number; dw: number }>();
    for (let i = 0; i < names.length; i++) {
      if (i > 0 && i % SLICE === 0) {
        await new Promise<void>((r) => setImmediate(r));
        if (signal.aborted) throw signal.reason as Error;
      }
      const pid = names[i] as number;
      let io;
      try {
        io = parseProcIo(this.host.process(pid).read("io"));
      } catch (e) {
        if (
          (e as NodeJS.ErrnoException).code === "EACCES" ||
          (e as NodeJS.ErrnoException).code === "EPERM"
        )
          unreadable++;
        continue; // ENOENT/ESRCH: it exited between readdir and read
      }
      if (typeof io === "string") continue;
      const written = Math.max(0, io.writeBytes - io.cancelledWriteBytes);
      let st = this.pids.get(pid);
      if (st && (io.readBytes < st.read || written < st.written)) st = undefined; // pid reused
      if (!st) {
        st = { ...this.identify(pid), read: io.readBytes, written, seen: gen };
        this.pids.set(pid, st);
        continue; // no interval yet for a process first seen now
      }
      deltas.set(pid, { st, dr: io.readBytes - st.read, dw: written - st.written });
      st.read = io.readBytes;
      st.written = written;
      st.seen = gen;
    }
    // The kernel adds a reaped child's lifetime I/O to its parent's counters. Take back what the
    // child had already been charged with when last seen, so the parent does not appear to have
    // written it all in this one interval; only the child's last moments remain on the parent.
    for (const [pid, st] of this.pids) {
      if (st.seen === gen) continue;
      const parent = deltas.get(st.ppid);
      if (parent) {
        parent.dr = Math.max(0, parent.dr - st.read);
        parent.dw = Math.max(0, parent.dw - st.written);
      }
      this.pids.delete(pid);
    }
    const rows: ProcessIo[] = [];
    const byUnit = new Map<string, { read: number; write: number }>();
    for (const [pid, { st, dr, dw }] of deltas) {
      if (seconds === null || (dr === 0 && dw === 0)) continue;
      rows.push({
        pid,
        comm: st.comm,
        unit: st.unit,
        read_bps: dr / seconds,
        write_bps: dw / seconds,
        read_bytes: dr,
        write_bytes: dw,
        kthread: st.ppid === 2 || pid === 2,
      });
      if (st.unit) {
        const u = byUnit.get(st.unit) ?? { read: 0, write: 0 };
        u.read += dr;
        u.write += dw;
        byUnit.set(st.unit, u);
      }
    }
    rows.sort((a, b) => b.read_bps + b.write_bps - (a.read_bps + a.write_bps));
    const units = await this.unitFigures(byUnit, seconds, signal);
    return {
      interval_seconds: seconds,
      top: rows.slice(0, this.opts.topK),
      units,
      processes: names.length,
      unreadable,
    };
  }

  /** Parent, comm and unit, read once per process. */
  private identify(pid: number): {
    ppid: number;
    comm: string;
    unit: string | null;
    cgroup: string | null;
  } {
    // Each read is null once the process has exited.
    const p = this.host.process(pid);
    const ppid = p.stat()?.ppid ?? 0;
    const comm = p.comm()?.slice(0, 64) ?? "?";
    const text = p.cgroup();
    const { unit, path: cgroup } =
      text === null ? { unit: null, path: null } : parseCgroupUnit(text);
    return { ppid, comm, unit, cgroup };
  }

  /** Per-unit rates: io.stat for units whose cgroup has it, the processes' sum otherwise. */
  private async unitFigures(
    byUnit: Map<string, { read: number; write: number }>,
    seconds: number | null,
    signal: AbortSignal,
  ): Promise<UnitIo[]> {
    const names = new Set([...byUnit.keys(), ...this.opts.units]);
    const root = await this.cgroup2Root(signal);
    const cgroupOf = new Map<string, string>();
    for (const st of this.pids.values())
      if (st.unit && st.cgroup && !cgroupOf.has(st.unit)) cgroupOf.set(st.unit, st.cgroup);
    const out: UnitIo[] = [];
    for (const unit of names) {
      const rel =
        cgroupOf.get(unit) ??
        (unit.endsWith(".service") || unit.endsWith(".timer") ? `/system.slice/${unit}` : null);
      let stat: Map<string, IoStatEntry> | null = null;
      if (root && rel) {
        try {
          stat = parseIoStat(await readFile(`${root}${rel}/io.stat`, { encoding: "utf8", signal }));
        } catch {
          // no io controller for this cgroup, or no such cgroup
        }
      }
      if (stat) {
        let read = 0;
        let written = 0;
        for (const e of stat.values()) {
          read += e.rbytes;
          written += e.wbytes;
        }
        const prev = this.unitPrev.get(unit);
        this.unitPrev.set(unit, { read, written, devices: stat });
        if (!prev || seconds === null || read < prev.read || written < prev.written) continue;
        const devices: UnitIo["devices"] = {};
        for (const [dev, e] of stat) {
          const p = prev.devices.get(dev);
          if (p && (e.rbytes > p.rbytes || e.wbytes > p.wbytes))
            devices[dev] = {
              read_bps: (e.rbytes - p.rbytes) / seconds,
              write_bps: (e.wbytes - p.wbytes) / seconds,
            };
        }
        const dr = read - prev.read;
        const dw = written - prev.written;
        out.push({
          unit,
          source: "io.stat",
          read_bps: dr / seconds,
          write_bps: dw / seconds,
          read_bytes: dr,
          write_bytes: dw,
          devices,
        });
      } else if (seconds !== null) {
        const s = byUnit.get(unit) ?? { read: 0, write: 0 };
        out.push({
          unit,
          source: "processes",
          read_bps: s.read / seconds,
          write_bps: s.write / seconds,
          read_bytes: s.read,
          write_bytes: s.write,
          devices: {},
        });
      }
    }
    return out.sort((a, b) => b.read_bps + b.write_bps - (a.read_bps + a.write_bps));
  }

  private async cgroup2Root(signal: AbortSignal): Promise<string | null> {
    if (this.cgroupRoot !== undefined) return this.cgroupRoot;
    try {
      const { mounts } = await this.host.mountinfo("self", signal);
      this.cgroupRoot = mounts.find((m) => m.fsType === "cgroup2")?.mountPoint ?? null;
    } catch {
      this.cgroupRoot = null;
    }
    return this.cgroupRoot;
  }
}
