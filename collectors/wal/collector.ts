// wal: the StemeDB WAL directory. A full rescan every `interval` (the rescan is the truth), and
// at the next tick after the directory's own modification time changes: a segment created,
// removed or renamed. Between rescans each tick only stats the directory and the active segment,
// so what the database writes into its segments costs nothing (a watcher wakes on every write:
// chokidar re-read and lstat'ed the whole directory each time, ~2 ms per write). Symbolic links
// are never followed and nothing outside the directory is read.
import { spawn } from "node:child_process";
import { closeSync, createReadStream, lstatSync, statSync } from "node:fs";
import { join } from "node:path";
import { createGunzip } from "node:zlib";
import type { CollectorJudge } from "../judge.js";
import type { Logger } from "../../core/log.js";
import { withDir } from "../../core/safefs.js";
import { estimateFill } from "../mounts/fill.js";
import { Host } from "../../core/host/host.js";
import { mountFor } from "../../core/host/mountinfo.js";
import { spaceOf } from "../../core/host/statfs.js";
import type { UsedHistory } from "../mounts/sink.js";
import type { CollectContext, Collector } from "../../core/collector.js";
import { DB_METRICS_MAX_BYTES, parseDbMetrics } from "./dbmetrics.js";
import { analyse, type Inventory, type Segment, type WalFinding } from "./inventory.js";
import { listSegments } from "./list.js";
import { errorMessage } from "../../core/errors.js";
import { fetchable, fetchError, redactUrl } from "../../core/url.js";
import type { WalObservation } from "./observation.js";

export interface WalOptions {
  readonly dir: string;
  readonly pattern: string;
  readonly rescanMs: number;
  readonly stallAfterMs: number;
  readonly expectedSegmentSize: number;
  readonly verifyCommand: string;
  readonly checkCompressed: boolean;
  readonly dbMetricsUrl: string;
  readonly service: string;
  readonly procPath: string;
  /** The mounts collector's used-bytes history of a mount point (typed; mounts/sink.ts). */
  readonly usedHistory: UsedHistory;
  readonly log: Logger;
  /** The judge's answers (judge/ sits above collectors/, so the app hands them down). */
  readonly judge: CollectorJudge;
}

/** How often the WAL filesystem's time-to-full is fitted again (the mounts collector's cadence). */
const FILL_EVERY_MS = 30_000;

export class WalCollector implements Collector<WalObservation> {
  readonly name = "wal";
  private dirty = true;
  /** The directory's identity and modification time at the last tick, and when it was taken. */
  private dirStamp: { key: string; mtimeMs: number; at: number } | null = null;
  private lastScan = -Infinity;
  private inventory: Inventory | null = null;
  private dirMissing = false;
  private highest: number | null = null;
  private rotations: number[] = []; // times of rotations in the last hour
  private lastActive: { name: string; size: number; at: number } | null = null;
  private readonly gzChecked = new Map<string, boolean>(); // name|size|mtime -> ok
  private gzRunning = false;
  private readonly verified = new Map<string, boolean>();
  private verifyRunning = false;
  private dbRunning: { at: number; running: boolean } | null = null;
  /** Rotations seen since the last observation was returned. */
  private newRotations = 0;
  private readonly host: Host;

  constructor(private readonly opts: WalOptions) {
    this.host = new Host({ procPath: opts.procPath });
  }

  async collect({ signal }: CollectContext): Promise<WalObservation> {
    const t0 = performance.now();
    const now = Date.now();
    this.noteDirChange(now);
    let scanned = false;
    if (this.dirty || now - this.lastScan >= this.opts.rescanMs || this.inventory === null) {
      this.dirty = false;
      this.lastScan = now;
      scanned = true;
      const entries = await listSegments(this.opts.dir, this.opts.pattern, signal);
      this.dirMissing = entries === null;
      this.inventory = analyse(entries ?? [], this.opts.pattern, this.opts.expectedSegmentSize);
      this.noteRotation(this.inventory, now);
    }
    const inv = this.inventory;
    const findings = [...inv.findings];
    if (this.dirMissing)
      findings.push({
        kind: "dir_missing",
        files: [this.opts.dir],
        message: `the WAL directory ${this.opts.dir} does not exist or cannot be listed`,
      });
    // The active segment is re-read every tick: its size and age are what a stall shows in.
    let active: WalObservation["active"] = null;
    if (inv.active) {
      try {
        const st = lstatSync(join(this.opts.dir, inv.active.name));
        const rate = this.writeRate(inv.active.name, st.size, now);
        active = {
          name: inv.active.name,
          size: st.size,
          write_age_seconds: Math.max(0, (now - st.mtimeMs) / 1000),
          bytes_per_second: rate,
        };
        if (now - st.mtimeMs > this.opts.stallAfterMs && this.databaseRunning(now)) {
          findings.push({
            kind: "stalled",
            files: [inv.active.name],
            message:
              `the active segment ${inv.active.name} has not been written for ` +
              `${Math.round((now - st.mtimeMs) / 1000)} s while the database is running`,
          });
        }
      } catch {
        this.dirty = true; // rotated or removed since the scan
      }
    }
    findings.push(...this.unreadable(inv), ...this.gzFindings(inv), ...this.verifyFindings(inv));
    const filesystem = await this.filesystem(now);
    if (
      filesystem &&
      this.opts.judge.walFilesystemFilling(filesystem.used_ratio, filesystem.full_in_seconds)
    ) {
      const hours = (filesystem.full_in_seconds / 3600).toFixed(1);
      const fullIn = Number.isFinite(filesystem.full_in_seconds)
        ? `, full in ${hours} h at the recent rate`
        : "";
      findings.push({
        kind: "filesystem_filling",
        files: [this.opts.dir],
        message: `the WAL filesystem is ${(filesystem.used_ratio * 100).toFixed(1)}% used${fullIn}`,
      });
    }
    const database = scanned ? await this.scrapeDb(signal) : this.lastDb;
    if (database && !database.ok)
      findings.push({
        kind: "db_metrics_unreachable",
        files: [],
        message: `the database's metrics endpoint did not answer: ${database.error}`,
      });
    const ageOf = (ms: number | null) => (ms === null ? null : Math.max(0, (now - ms) / 1000));
    const hourAgo = now - 3_600_000;
    const span = this.firstSeen === null ? 0 : Math.min(now - this.firstSeen, 3_600_000);
    return {
      dir: this.opts.dir,
      scanned,
      segments: inv.totals,
      active,
      oldest_age_seconds: ageOf(inv.oldestMtimeMs),
      newest_age_seconds: ageOf(inv.newestMtimeMs),
      rotations: this.rotations.length,
      new_rotations: this.takeNewRotations(),
      rotations_per_hour:
        span >= 60_000
          ? (this.rotations.filter((t) => t >= hourAgo).length / span) * 3_600_000
          : null,
      expected_segment_size: inv.expectedSize,
      findings,
      filesystem,
      database,
      scan_seconds: (performance.now() - t0) / 1000,
    };
  }

  async close(): Promise<void> {
    // nothing held between ticks
  }

  // ------------------------------------------------------------------ internals

  /**
   * Marks the inventory dirty when a name in the directory changed since the last tick: creating,
   * removing or renaming an entry sets the directory's mtime (writing into a file does not).
   * Timestamps come from a coarse clock (a few ms), so a change in the same clock step as the
   * stamp would not show: while the stamp is that young, the next tick rescans as well.
   */
  private noteDirChange(now: number): void {
    const prev = this.dirStamp;
    try {
      const st = statSync(this.opts.dir);
      this.dirStamp = {
        key: `${st.dev}:${st.ino}:${st.mtimeMs}:${st.ctimeMs}`,
        mtimeMs: st.mtimeMs,
        at: now,
      };
    } catch {
      this.dirStamp = null; // missing or unreadable: the rescan says which
    }
    if (
      prev === null ||
      this.dirStamp === null ||
      prev.key !== this.dirStamp.key ||
      prev.at - prev.mtimeMs < 1000
    )
      this.dirty = true;
  }

  private firstSeen: number | null = null;

  private takeNewRotations(): number {
    const n = this.newRotations;
    this.newRotations = 0;
    return n;
  }

  private noteRotation(inv: Inventory, now: number): void {
    this.firstSeen ??= now;
    if (inv.highestSeq !== null && this.highest !== null && inv.highestSeq > this.highest) {
      const n = Math.min(inv.highestSeq - this.highest, 10_000);
      this.newRotations += n;
      for (let i = 0; i < n; i++) this.rotations.push(now);
    }
    if (inv.highestSeq !== null) this.highest = Math.max(this.highest ?? 0, inv.highestSeq);
    this.rotations = this.rotations.filter((t) => t >= now - 3_600_000).slice(-10_000);
  }

  /**
   * Growth of the active segment; across a rotation, the previous active's remainder and the sealed
   * ones between count too.
   */
  private writeRate(name: string, size: number, now: number): number | null {
    const prev = this.lastActive;
    this.lastActive = { name, size, at: now };
    if (!prev || now <= prev.at) return null;
    let bytes = size - prev.size;
    if (prev.name !== name) {
      const inv = this.inventory;
      const prevSeg = inv?.segments.find((s) => s.name === prev.name && s.state !== "compressed");
      const between =
        inv?.segments.filter((s) => s.state === "sealed" && s.seq > (prevSeg?.seq ?? Infinity)) ??
        [];
      bytes =
        (prevSeg ? prevSeg.size - prev.size : 0) + between.reduce((a, s) => a + s.size, 0) + size;
    }
    return Math.max(0, bytes) / ((now - prev.at) / 1000);
  }

  /**
   * Whether a StemeDB process is alive, looked up at most every quarter of `stall_after` (and
   * at most every 30 s): the walk reads two files of every process, and on a node whose
   * database is stopped it ran on every 2 s tick, the largest part of the agent's idle CPU.
   */
  private databaseRunning(now: number): boolean {
    const ttl = Math.min(30_000, this.opts.stallAfterMs / 4);
    if (this.dbRunning !== null && now >= this.dbRunning.at && now - this.dbRunning.at < ttl)
      return this.dbRunning.running;
    this.dbRunning = { at: now, running: this.walkForDatabase() };
    return this.dbRunning.running;
  }

  private walkForDatabase(): boolean {
    for (const p of this.host.processes()) {
      const comm = p.comm();
      if (comm === null) continue; // exited
      if (this.opts.judge.isStemedbDatabase(comm)) return true;
      if (p.cgroup()?.includes(`/${this.opts.service}`)) return true;
    }
    return false;
  }

  /** With root or the files' owner everything is readable; otherwise judge from mode bits. */
  private unreadable(inv: Inventory): WalFinding[] {
    const uid = process.getuid?.() ?? 0;
    if (uid === 0) return [];
    const groups = new Set(process.getgroups?.() ?? []);
    const bad: string[] = [];
    for (const s of inv.segments) {
      try {
        const st = lstatSync(join(this.opts.dir, s.name));
        const ok =
          (st.uid === uid && st.mode & 0o400) ||
          (groups.has(st.gid) && st.mode & 0o040) ||
          st.mode & 0o004;
        if (!ok) bad.push(s.name);
      } catch {
        // gone
      }
      if (bad.length > 20) break;
    }
    return bad.length > 0
      ? [{ kind: "unreadable", files: bad, message: "segments the agent may not read" }]
      : [];
  }

  /** Each compressed segment is stream-checked once, one at a time in the background. */
  private gzFindings(inv: Inventory): WalFinding[] {
    if (!this.opts.checkCompressed) return [];
    const key = (s: { name: string; size: number; mtimeMs: number }) =>
      `${s.name}|${s.size}|${s.mtimeMs}`;
    const compressed = inv.segments.filter((s) => s.state === "compressed");
    const next = compressed.find((s) => !this.gzChecked.has(key(s)));
    if (next && !this.gzRunning) {
      this.gzRunning = true;
      void checkGzip(this.opts.dir, next.name, next).then((ok) => {
        this.gzChecked.set(key(next), ok);
        this.gzRunning = false;
        this.dirty = true; // report at the next tick
      });
    }
    const bad = compressed.filter((s) => this.gzChecked.get(key(s)) === false).map((s) => s.name);
    return bad.length > 0
      ? [{ kind: "corrupt_gz", files: bad, message: "compressed segments that do not decompress" }]
      : [];
  }

  /**
   * The optional verifier, run once per sealed segment at idle priority. It gets the segment as
   * it was listed, already open, on its standard input, and `{}` stands for /dev/stdin: a name
   * in the WAL directory is the database user's to swap, and the verifier runs as root.
   */
  private verifyFindings(inv: Inventory): WalFinding[] {
    if (!this.opts.verifyCommand) return [];
    const next = inv.segments.find((s) => s.state === "sealed" && !this.verified.has(s.name));
    if (next && !this.verifyRunning) {
      this.verifyRunning = true;
      void this.verifyOne(next).then((ok) => {
        this.verified.set(next.name, ok);
        this.verifyRunning = false;
        this.dirty = true;
      });
    }
    const bad = [...this.verified].filter(([, ok]) => !ok).map(([n]) => n);
    return bad.length > 0
      ? [
          {
            kind: "verify_failed",
            files: bad,
            message: `segments the verifier (${this.opts.verifyCommand}) rejected`,
          },
        ]
      : [];
  }

  private verifyOne(seg: Segment): Promise<boolean> {
    let fd: number;
    try {
      fd = withDir(this.opts.dir, (d) => d.openListed(seg.name, seg).fd);
    } catch (e) {
      this.opts.log.warn(
        { segment: seg.name, err: errorMessage(e) },
        "wal: segment not verified: it is not the file that was listed",
      );
      return Promise.resolve(false);
    }
    const [cmd, ...args] = this.opts.verifyCommand
      .split(/\s+/)
      .map((a) => (a === "{}" ? "/dev/stdin" : a));
    return new Promise((resolve) => {
      const child = spawn("nice", ["-n", "19", cmd ?? "true", ...args], {
        stdio: [fd, "ignore", "pipe"],
        env: { ...process.env, STEMEDB_WAL_SEGMENT: seg.name },
        timeout: 300_000,
      });
      closeSync(fd); // the child has its own copy
      let err = "";
      child.stderr?.on("data", (c: Buffer) => (err = (err + c.toString()).slice(-500)));
      child.on("error", (e) => {
        this.opts.log.warn({ segment: seg.name, err: e.message }, "wal: verifier could not run");
        resolve(false);
      });
      child.on("close", (code, signal) => {
        if (code !== 0)
          this.opts.log.warn(
            { segment: seg.name, code, signal, stderr: err },
            "wal: verifier reported a problem",
          );
        resolve(code === 0);
      });
    });
  }

  private async filesystem(now: number): Promise<WalObservation["filesystem"]> {
    try {
      const space = spaceOf(await this.host.statfs(this.opts.dir));
      // The fit reads 6 h of the mounts collector's samples, which gain a row every 30 s: it is
      // redone every FILL_EVERY_MS, not at every tick (it was a third of the collector's cost).
      if (this.fill === null || now - this.fill.at >= FILL_EVERY_MS || now < this.fill.at) {
        const mountpoint = this.mountpoint();
        const history = mountpoint ? this.opts.usedHistory(mountpoint, now - 6 * 3_600_000) : [];
        const fill = estimateFill(
          [...history, { ts: now, used: space.used_bytes }],
          space.avail_bytes,
          10 * 60_000,
        );
        this.fill = { at: now, fullInSeconds: fill.fullInSeconds };
      }
      return {
        used_ratio: space.used_ratio,
        avail_bytes: space.avail_bytes,
        full_in_seconds: this.fill.fullInSeconds,
      };
    } catch {
      return null;
    }
  }

  private fill: { at: number; fullInSeconds: number } | null = null;
  private mountpointCache: string | null | undefined;
  /** The WAL's mount point, as the mounts collector labels its used-bytes history. */
  private mountpoint(): string | null {
    if (this.mountpointCache !== undefined) return this.mountpointCache;
    try {
      const { mounts } = this.host.mountinfoSync("self");
      this.mountpointCache = mountFor(this.opts.dir, mounts)?.mountPoint ?? "/";
    } catch {
      this.mountpointCache = null;
    }
    return this.mountpointCache;
  }

  private lastDb: WalObservation["database"] = null;
  private async scrapeDb(signal: AbortSignal): Promise<WalObservation["database"]> {
    if (!this.opts.dbMetricsUrl) return null;
    try {
      // Credentials in the URL go in a header (fetch refuses them) and never into a message.
      const { target, headers } = fetchable(this.opts.dbMetricsUrl);
      const res = await fetch(target, {
        headers,
        signal: AbortSignal.any([signal, AbortSignal.timeout(3000)]),
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      this.lastDb = { ok: true, ...parseDbMetrics(await boundedText(res, DB_METRICS_MAX_BYTES)) };
    } catch (e) {
      const url = this.opts.dbMetricsUrl;
      this.lastDb = { ok: false, error: `${redactUrl(url).text}: ${fetchError(url, e)}` };
    }
    return this.lastDb;
  }
}

/**
 * A response's text, at most `max` bytes of it: the endpoint is untrusted, and a body that never
 * ends must cost neither memory nor the whole timeout. The rest is cancelled, not read, and the
 * line cut in the middle is dropped (a cut "12345" would read as 123).
 */
async function boundedText(res: Response, max: number): Promise<string> {
  if (!res.body) return "";
  const chunks: Uint8Array[] = [];
  let n = 0;
  // Leaving the loop early cancels the stream (its iterator's return()), closing the connection.
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    chunks.push(chunk.subarray(0, max - n));
    n += Math.min(chunk.length, max - n);
    if (n >= max) break;
  }
  const text = Buffer.concat(chunks).toString("utf8");
  return n < max ? text : text.slice(0, Math.max(0, text.lastIndexOf("\n")));
}

/**
 * Whether a compressed segment decompresses whole. Opened through the directory's descriptor,
 * never following a link, and only if it is the regular single-link file that was listed: the
 * directory's owner may have swapped in anything (a FIFO would hang a plain open forever).
 */
function checkGzip(
  dir: string,
  name: string,
  listed: { dev: number; ino: number },
): Promise<boolean> {
  let fd: number;
  try {
    fd = withDir(dir, (d) => d.openListed(name, listed).fd);
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const src = createReadStream("", { fd, highWaterMark: 64 * 1024 });
    const gunzip = createGunzip();
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      src.destroy();
      resolve(ok);
    };
    src.on("error", () => finish(false));
    gunzip.on("error", () => finish(false));
    gunzip.on("data", () => undefined);
    gunzip.on("end", () => finish(true));
    src.pipe(gunzip);
  });
}
