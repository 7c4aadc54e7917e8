// kmsg: follows the kernel log and counts storage faults per device and class.
//
// /dev/kmsg is opened O_NONBLOCK and drained on each tick (default 500 ms) until EAGAIN: no
// thread-pool thread is ever parked in a blocking read, so shutdown never waits for the kernel.
// Only facilities from the config count (default kern: anything userspace writes into
// /dev/kmsg has another facility and cannot fake a disk fault). The resume point (boot id,
// next sequence number) is committed in the same history transaction as the events it
// produced, so a restart neither re-counts nor misses. EPIPE (records overwritten) and gaps
// are counted as lost. When /dev/kmsg cannot be read, `journalctl -k -f -o json` is followed
// instead. Counters count every record; history is rate-limited per device and class.
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, constants, openSync, readSync } from "node:fs";
import type { Logger } from "../../core/log.js";
import type { CollectContext, Collector, HistoryReader } from "../../core/collector.js";
import { Host } from "../../core/host/host.js";
import { PF_KTHREAD } from "../../core/host/proc.js";
import { classify } from "./classify.js";
import { FACILITIES, type KmsgRecord, parseRecord } from "./record.js";
import { DeviceResolver } from "./resolve.js";
import { errorMessage } from "../../core/errors.js";
import type { KernelFault, KmsgObservation } from "./observation.js";
import { CURSOR_KEY, RESUME_KEY } from "./sink.js";

const READ_BUFFER = 16 * 1024; // > the kernel's 8 KiB record limit: a short buffer loses records
const MAX_RECORDS_PER_TICK = 100_000;
const YIELD_EVERY = 2_000;

export interface KmsgOptions {
  readonly kmsgPath: string;
  readonly procPath: string;
  readonly sysPath: string;
  readonly facilities: readonly string[];
  /** Where the resume point was kept (the history's state); null: none. */
  readonly state: HistoryReader | null;
  readonly log: Logger;
  /** --once: read what is in the buffer now and stop; do not resume or persist. */
  readonly once: boolean;
}

export class KmsgCollector implements Collector<KmsgObservation> {
  readonly name = "kmsg";
  private fd: number | null = null;
  private journal: ChildProcess | null = null;
  private journalLines: string[] = [];
  private journalCursor: string | null = null;
  private source: "kmsg" | "journal" | null = null;
  private readonly facilities: Set<number>;
  private readonly bootId: string;
  private readonly host: Host;
  private nextSeq: number | null = null;
  private readonly buf = Buffer.alloc(READ_BUFFER);
  private readonly resolver: DeviceResolver;
  private readonly btrfsLast = new Map<string, number>();
  constructor(private readonly opts: KmsgOptions) {
    this.facilities = new Set(opts.facilities.map((f) => FACILITIES[f] ?? 0));
    this.resolver = new DeviceResolver(opts.sysPath);
    this.host = new Host({ procPath: opts.procPath, sysPath: opts.sysPath });
    this.bootId = this.host.bootId() ?? "unknown";
  }

  async collect({ signal }: CollectContext): Promise<KmsgObservation> {
    if (this.source === null) this.open();
    if (this.source === "journal") return this.drainJournal();
    return this.drainKmsg(signal);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    this.journal?.kill("SIGTERM");
    this.journal = null;
  }

  private open(): void {
    try {
      this.fd = openSync(this.opts.kmsgPath, constants.O_RDONLY | constants.O_NONBLOCK);
      this.source = "kmsg";
      if (!this.opts.once) {
        const saved = this.opts.state?.getState(RESUME_KEY);
        if (saved) {
          const s = JSON.parse(saved) as { boot_id?: string; next_seq?: number };
          if (s.boot_id === this.bootId && typeof s.next_seq === "number")
            this.nextSeq = s.next_seq;
        }
      }
    } catch (e) {
      // The shipped unit (ProtectKernelLogs=yes) hides /dev/kmsg on purpose: info, not warn.
      const code = (e as NodeJS.ErrnoException).code ?? "";
      const expected = ["ENOENT", "EACCES", "EPERM"].includes(code);
      this.opts.log[expected ? "info" : "warn"](
        { path: this.opts.kmsgPath, err: errorMessage(e) },
        "kmsg: /dev/kmsg not readable; following journalctl -k (kernel_log_source=journal)",
      );
      this.startJournal();
    }
  }

  private async drainKmsg(signal: AbortSignal): Promise<KmsgObservation> {
    const faults: KernelFault[] = [];
    let records = 0;
    let lost = 0;
    let suppressed = 0;
    for (let n = 0; n < MAX_RECORDS_PER_TICK; n++) {
      if (n > 0 && n % YIELD_EVERY === 0) {
        await new Promise<void>((r) => setImmediate(r));
        if (signal.aborted) break;
      }
      let len: number;
      try {
        len = readSync(this.fd as number, this.buf, 0, READ_BUFFER, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "EAGAIN") break;
        if (code === "EPIPE") continue; // records were overwritten; the next record's sequence tells how many
        throw e;
      }
      const rec = parseRecord(this.buf.toString("utf8", 0, len));
      if (typeof rec === "string") continue;
      if (this.nextSeq !== null) {
        if (rec.seq < this.nextSeq) continue; // already counted before a restart
        if (rec.seq > this.nextSeq) lost += rec.seq - this.nextSeq;
      }
      this.nextSeq = rec.seq + 1;
      records++;
      suppressed += this.handle(rec, faults);
    }
    return {
      source: "kmsg",
      records,
      faults,
      lost,
      suppressed,
      resume:
        this.nextSeq === null || this.opts.once
          ? null
          : { boot_id: this.bootId, next_seq: this.nextSeq },
    };
  }

  /** Classifies one record into `faults`; returns the kernel's own suppressed count. */
  private handle(rec: KmsgRecord, faults: KernelFault[]): number {
    if (!this.facilities.has(rec.facility)) return 0;
    const o = classify(rec.text, rec.meta);
    if (o === null) return 0;
    if ("suppressed" in o) return o.suppressed;
    const c =
      o.class === "hung_task" && o.device !== null && !this.isKernelThread(o.pid)
        ? { ...o, device: null, deviceKind: "none" as const }
        : o;
    const where = this.resolver.resolve(c);
    let count = c.count;
    if (c.btrfsCounters && c.device) {
      // Cumulative counters: count the rise since the last line for this member (1 when unknown).
      const total = Object.values(c.btrfsCounters).reduce((a, b) => a + b, 0);
      const prev = this.btrfsLast.get(c.device);
      this.btrfsLast.set(c.device, total);
      count = prev === undefined ? 1 : Math.max(0, total - prev);
    }
    faults.push({
      seq: rec.seq,
      class: c.class,
      severity: c.severity,
      device: where.disk,
      logical: where.logical,
      count,
      line: rec.text.slice(0, 1024),
      atMs: rec.tsUsec > 0 ? rec.tsUsec / 1000 : Date.now(),
      ...(c.sector !== undefined ? { sector: c.sector } : {}),
      ...(c.request !== undefined ? { request: c.request } : {}),
      ...(c.repeats ? { repeats: true as const } : {}),
    });
    return 0;
  }

  /**
   * Whether a hung task is a kernel thread (jbd2/sdb1-8, xfsaild/sdb1). Any program can take
   * such a comm; only a kernel thread's names a device. Read while the task is still blocked.
   */
  private isKernelThread(pid: number | undefined): boolean {
    if (pid === undefined) return false;
    const stat = this.host.process(pid).stat();
    return stat !== null && (stat.flags & PF_KTHREAD) !== 0; // gone: not known to be the kernel's
  }

  private startJournal(): void {
    const cursor = this.opts.once ? null : this.readCursor();
    const args = [
      "-k",
      "-f",
      "-o",
      "json",
      "--no-pager",
      ...(cursor ? [`--after-cursor=${cursor}`] : ["-n", "all"]),
    ];
    const child = spawn("journalctl", args, { stdio: ["ignore", "pipe", "pipe"] });
    this.source = "journal";
    this.journal = child;
    let partial = "";
    child.stdout.on("data", (b: Buffer) => {
      partial += b.toString("utf8");
      const lines = partial.split("\n");
      partial = lines.pop() ?? "";
      for (const l of lines) if (this.journalLines.length < 200_000) this.journalLines.push(l);
    });
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => (stderr = (stderr + b.toString("utf8")).slice(-2000)));
    child.on("error", (e) =>
      this.opts.log.error({ err: e.message }, "kmsg: journalctl fallback failed"),
    );
    child.on("exit", (code, signal) => {
      // close() lets go of it first: an exit we asked for is no failure.
      if (this.journal !== child) return;
      this.journal = null;
      this.source = null;
      // Stopping the unit signals its whole cgroup at once (KillMode=control-group), so
      // journalctl can die of that SIGTERM before the agent's own close() reaches it.
      if (signal === "SIGTERM" || signal === "SIGINT") {
        this.opts.log.info({ signal }, "kmsg: journalctl was stopped by a signal; follows again");
        return;
      }
      this.opts.log.error(
        { code, signal, stderr: stderr.trim() },
        "kmsg: journalctl exited; retrying /dev/kmsg next tick",
      );
    });
  }

  private readCursor(): string | null {
    const saved = this.opts.state?.getState(CURSOR_KEY);
    if (!saved) return null;
    try {
      return (JSON.parse(saved) as { cursor?: string }).cursor ?? null;
    } catch {
      return null;
    }
  }

  private drainJournal(): KmsgObservation {
    const lines = this.journalLines;
    this.journalLines = [];
    const faults: KernelFault[] = [];
    let suppressed = 0;
    let records = 0;
    for (const l of lines) {
      const rec = parseJournalLine(l);
      if (!rec) continue;
      records++;
      this.journalCursor = rec.cursor;
      suppressed += this.handle(
        {
          facility: rec.facility,
          level: rec.level,
          seq: -1,
          tsUsec: rec.tsUsec ?? 0,
          text: rec.text,
          meta: rec.meta,
        },
        faults,
      );
    }
    return {
      source: "journal",
      records,
      faults,
      lost: 0,
      suppressed,
      resume: this.journalCursor && !this.opts.once ? { cursor: this.journalCursor } : null,
    };
  }
}

export interface JournalRecord {
  readonly facility: number;
  readonly level: number;
  readonly text: string;
  readonly cursor: string;
  /** journald's copy of the record's dictionary: SUBSYSTEM, DEVICE (as in /dev/kmsg). */
  readonly meta: Readonly<Record<string, string>>;
  /** The kernel's own timestamp of the record (_SOURCE_MONOTONIC_TIMESTAMP), when journald kept it. */
  readonly tsUsec?: number;
}

export function parseJournalLine(line: string): JournalRecord | null {
  try {
    const o = JSON.parse(line) as Record<string, unknown>;
    const msg = o["MESSAGE"];
    const text =
      typeof msg === "string"
        ? msg
        : Array.isArray(msg)
          ? Buffer.from(msg as number[]).toString("utf8")
          : null;
    if (text === null) return null;
    const meta: Record<string, string> = {};
    for (const [k, f] of [
      ["SUBSYSTEM", "_KERNEL_SUBSYSTEM"],
      ["DEVICE", "_KERNEL_DEVICE"],
    ] as const) {
      if (typeof o[f] === "string") meta[k] = o[f];
    }
    // Record time for grouping lines into incidents: a replayed backlog arrives all at once.
    const ts = Number(o["_SOURCE_MONOTONIC_TIMESTAMP"] ?? o["__MONOTONIC_TIMESTAMP"]);
    const base = {
      facility: Number(o["SYSLOG_FACILITY"] ?? 0),
      level: Number(o["PRIORITY"] ?? 6),
      text,
      cursor: typeof o["__CURSOR"] === "string" ? o["__CURSOR"] : "",
      meta,
    };
    return Number.isSafeInteger(ts) && ts > 0 ? { ...base, tsUsec: ts } : base;
  } catch {
    return null;
  }
}
