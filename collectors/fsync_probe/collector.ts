// fsync_probe: every interval, in each probed directory (default: the WAL dir), write one small
// block into a reused file and fdatasync it; the time is what a WAL commit pays for durability.
// One worker thread per directory, so a hung device stalls only its own probe. A probe that is
// not back by its deadline is reported as stalled; when it does return, its real duration still
// goes into the histogram (a 30 s fsync must show up as 30 s, not vanish as a timeout).
import { Worker } from "node:worker_threads";
import { Host } from "../../core/host/host.js";
import { mountFor, type MountInfo } from "../../core/host/mountinfo.js";
import { nearestExisting } from "../mounts/paths.js";
import type { CollectContext, Collector } from "../../core/collector.js";
import type { ProbeReply } from "./protocol.js";
import type { FsyncProbeObservation, ProbeOutcome, ProbeTick, ProbeUpdate } from "./observation.js";

export interface FsyncProbeOptions {
  readonly dirs: readonly string[];
  readonly blockSize: number;
  /** A probe not back within this is reported stalled (kept below the collector's timeout). */
  readonly deadlineMs: number;
  readonly procPath: string;
  /** The core's route for a probe that returns after its deadline, and the in-flight ticks. */
  readonly emit: (update: ProbeUpdate) => void;
}

interface InFlight {
  readonly id: number;
  readonly startedAt: number;
  readonly done: Promise<ProbeReply>;
  /** Set when the collector stopped waiting; the eventual reply is then reported as late. */
  late: boolean;
}

/** The in-flight ticker's period: ages reach the stall detector within this. */
const TICK_MS = 1000;

/** One directory's worker and its probe in flight, if any. */
class DirProbe {
  private worker: Worker | undefined;
  private inFlight: InFlight | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, (r: ProbeReply) => void>();

  constructor(
    readonly dir: string,
    private readonly blockSize: number,
    private readonly onLate: (dir: string, reply: ProbeReply) => void,
    private readonly onEnd: (dir: string, seconds: number | null) => void,
  ) {}

  /** When the probe in flight started (Date.now()), if one is. */
  inFlightSince(): number | undefined {
    return this.inFlight?.startedAt;
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    // It allocates one block and a reply per probe: small heap limits keep its isolate ~1.3 MB
    // smaller (a worker thread is ~9 MB resident; it stays because its timing must not include
    // the main event loop's delays, which would read as slow fsyncs).
    const w = new Worker(new URL("./worker.js", import.meta.url), {
      workerData: { dir: this.dir, blockSize: this.blockSize },
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 8 },
    });
    w.unref(); // a probe hung in D state must not keep a stopping agent alive
    w.on("message", (r: ProbeReply) => {
      const resolve = this.waiting.get(r.id);
      this.waiting.delete(r.id);
      resolve?.(r);
    });
    w.on("error", (e) => this.failAll("EWORKER", e.message));
    w.on("exit", () => {
      this.worker = undefined;
      this.failAll("EWORKER", "probe worker exited");
    });
    this.worker = w;
    return w;
  }

  private failAll(code: string, message: string): void {
    for (const [id, resolve] of this.waiting) resolve({ id, ok: false, code, message });
    this.waiting.clear();
  }

  /** Starts a probe unless one is still in flight; resolves by the deadline either way. */
  async probe(
    deadlineMs: number,
    signal: AbortSignal,
  ): Promise<{ reply: ProbeReply } | { stalledSince: number }> {
    if (this.inFlight) return { stalledSince: this.inFlight.startedAt };
    const id = this.nextId++;
    const done = new Promise<ProbeReply>((resolve) => this.waiting.set(id, resolve));
    const flight: InFlight = { id, startedAt: Date.now(), done, late: false };
    this.inFlight = flight;
    void done.then((reply) => {
      const late = this.inFlight === flight && flight.late;
      this.inFlight = undefined;
      this.onEnd(this.dir, reply.ok ? reply.seconds : null);
      if (late) this.onLate(this.dir, reply);
    });
    this.ensureWorker().postMessage({ id });
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const deadline = new Promise<"deadline">((resolve) => {
      onAbort = () => resolve("deadline");
      timer = setTimeout(onAbort, deadlineMs);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    const r = await Promise.race([done, deadline]);
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener("abort", onAbort);
    if (r === "deadline") {
      flight.late = true;
      return { stalledSince: flight.startedAt };
    }
    return { reply: r };
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
    this.worker = undefined;
  }
}
export class FsyncProbeCollector implements Collector<FsyncProbeObservation> {
  readonly name = "fsync_probe";
  private readonly probes: DirProbe[];
  private readonly mountOf = new Map<string, string>();
  private ended: Array<ProbeTick["ended"][number]> = [];
  private readonly ticker: NodeJS.Timeout;

  constructor(private readonly opts: FsyncProbeOptions) {
    this.probes = opts.dirs.map(
      (d) =>
        new DirProbe(
          d,
          opts.blockSize,
          (dir, reply) => this.late(dir, reply),
          (dir, seconds) =>
            this.ended.push({ dir, mountpoint: this.mountOf.get(dir) ?? dir, seconds }),
        ),
    );
    // Off the scheduler's cadence (a probe every 5 s): a probe in flight is seen each second.
    this.ticker = setInterval(() => this.tick(), TICK_MS);
    this.ticker.unref();
  }

  private tick(): void {
    const now = Date.now();
    const in_flight: Array<ProbeTick["in_flight"][number]> = [];
    for (const p of this.probes) {
      const since = p.inFlightSince();
      if (since !== undefined)
        in_flight.push({
          dir: p.dir,
          mountpoint: this.mountOf.get(p.dir) ?? p.dir,
          age_seconds: Math.max(0, now - since) / 1000,
        });
    }
    const ended = this.ended;
    this.ended = [];
    this.opts.emit({ in_flight, ended });
  }

  async collect({ signal }: CollectContext): Promise<FsyncProbeObservation> {
    const mounts = await this.mounts(signal);
    const outcomes = await Promise.all(
      this.probes.map(async (p): Promise<ProbeOutcome> => {
        const mountpoint = await this.mountpointOf(p.dir, mounts);
        const r = await p.probe(this.opts.deadlineMs, signal);
        if ("stalledSince" in r)
          return {
            dir: p.dir,
            mountpoint,
            state: "stalled",
            stalled_seconds: (Date.now() - r.stalledSince) / 1000,
          };
        if (r.reply.ok) return { dir: p.dir, mountpoint, state: "ok", seconds: r.reply.seconds };
        return {
          dir: p.dir,
          mountpoint,
          state: "error",
          errno: r.reply.code,
          message: r.reply.message,
        };
      }),
    );
    return { probes: outcomes };
  }

  async close(): Promise<void> {
    clearInterval(this.ticker);
    await Promise.all(this.probes.map((p) => p.close()));
  }

  /** A probe back after its deadline: its real duration still goes out, through the core. */
  private late(dir: string, reply: ProbeReply): void {
    const mountpoint = this.mountOf.get(dir) ?? dir;
    this.opts.emit({
      dir,
      mountpoint,
      reply: reply.ok
        ? { ok: true, seconds: reply.seconds }
        : { ok: false, code: reply.code, message: reply.message },
    });
  }

  private async mounts(signal: AbortSignal) {
    try {
      return (await new Host({ procPath: this.opts.procPath }).mountinfo("self", signal)).mounts;
    } catch {
      return [];
    }
  }

  /** Mount point of the directory (or of its nearest existing ancestor, if it is missing). */
  private async mountpointOf(dir: string, mounts: readonly MountInfo[]): Promise<string> {
    const mp = mountFor((await nearestExisting(dir)).real, mounts)?.mountPoint ?? "/";
    this.mountOf.set(dir, mp); // for probes that report after their deadline
    return mp;
  }
}
