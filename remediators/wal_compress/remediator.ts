// wal_compress: frees WAL space the way the storage-errors runbook does by hand
// (gzip all but the newest 20 sealed segments), one segment at a time, crash-safe.
// Triggers: the WAL filesystem above trigger_used_percent, time-to-full below full_horizon, or
// sealed segments older than min_age. Never while the fsync probe says the WAL is slow.
import { readdirSync } from "node:fs";
import { statfs } from "node:fs/promises";
import { Worker } from "node:worker_threads";
import { execFile } from "node:child_process";
import { analyse, patternRegex } from "../../collectors/wal/inventory.js";
import { listSegments } from "../../collectors/wal/list.js";
import type { Config } from "../../core/config/schema.js";
import { spaceOf } from "../../core/host/statfs.js";
import type { Segment } from "../../collectors/wal/inventory.js";
import {
  DirHandle,
  type ResolvedDir,
  resolveDir,
  stillResolves,
  withDir,
} from "../../core/safefs.js";
import {
  type Latest,
  type Remediator,
  RemediatorBase,
  type RemediatorDeps,
  type RemediatorSummary,
} from "../framework.js";
import { cannotSeeHolders, openSegments } from "./holders.js";
import { fingerprint, type Plan, planCompression } from "./plan.js";
import {
  decompressSegment,
  digestName,
  recover,
  RESTORE_SUFFIX,
  TMP_SUFFIX,
  type RecoveryAction,
} from "./steps.js";
import type { CompressJob, WorkerMsg } from "./worker.js";
import { errorMessage } from "../../core/errors.js";

export { openSegments };

export const NAME = "wal_compress";
/** How often the plan is looked at when nothing is happening. */
const EVALUATE_EVERY_MS = 10_000;
const HELD_KEY = "wal_compress.held";
const INCOMPRESSIBLE_KEY = "wal_compress.incompressible";
/** Outcomes that say the segment was not ours to take right then: no breaker, no cooldown. */
const ABORTS = new Set([
  "SegmentChanged",
  "NotTheListedFile",
  "HeldOpen",
  "HoldersUnknown",
  "DirChanged",
]);

export interface WalCompressState extends RemediatorSummary {
  readonly plan: { readonly compress: string[]; readonly skipped: number } | null;
  readonly space_short: string | null;
  readonly incompressible: number;
}

/** What wal_compress reads of the configuration: its section, the WAL's place and /proc. */
export type WalCompressOptions = Config["remediators"]["wal_compress"] & {
  readonly walDir: string;
  readonly segmentPattern: string;
  readonly procPath: string;
};

export function walCompressOptions(c: Config): WalCompressOptions {
  return {
    ...c.remediators.wal_compress,
    walDir: c.wal.dir,
    segmentPattern: c.wal.segment_pattern,
    procPath: c.host.proc_path,
  };
}

export class WalCompressRemediator
  extends RemediatorBase<WalCompressOptions>
  implements Remediator<WalCompressOptions>
{
  private worker: Worker | null = null;
  private cooldownUntil = 0;
  private cooldownWhy = "";
  private spaceShort: string | null = null;
  private lastPlan: Plan | null = null;
  private lastPlanAt = 0;

  constructor(options: WalCompressOptions, deps: RemediatorDeps) {
    super(NAME, options, deps);
    this.resolve();
  }

  /** Where wal.dir leads, followed once at start and at reload; never acted through if it changes. */
  private walDir: ResolvedDir | null = null;
  private walDirProblem: string | null = null;
  private resolve(): void {
    try {
      this.walDir = resolveDir(this.options.walDir);
      this.walDirProblem = null;
    } catch (e) {
      this.walDir = null;
      this.walDirProblem = `cannot resolve ${this.options.walDir}: ${errorMessage(e)}`;
    }
  }

  /** The resolved WAL directory, if wal.dir still leads to it. */
  private dir(): ResolvedDir {
    if (!this.walDir) this.resolve(); // a directory created after start
    const d = this.walDir;
    if (!d) throw new Error(this.walDirProblem ?? `cannot resolve ${this.options.walDir}`);
    if (!stillResolves(d)) {
      throw new Error(
        `${d.configured} no longer leads to ${d.real} (the directory resolved at start or reload); ` +
          `nothing is done through it until a reload (SIGHUP) accepts the change`,
      );
    }
    return d;
  }

  /** A reload: wal.dir is followed again, and the plan looked at on the next tick. */
  protected override reconfigured(): void {
    this.resolve();
    this.nextEvalAt = 0;
  }

  state(): WalCompressState {
    return {
      ...this.summary(),
      plan: this.lastPlan
        ? {
            compress: this.lastPlan.compress.map((s) => s.name),
            skipped: this.lastPlan.skipped.length,
          }
        : null,
      space_short: this.spaceShort,
      incompressible:
        this.lastPlan?.skipped.filter((s) => s.reason.startsWith("incompressible")).length ?? 0,
    };
  }

  /**
   * At start: our own interrupted work (journal rows still 'started') and leftovers on disk
   * (X.gz.tmp, X with X.gz) are resolved by verification. Only when on, or when the journal
   * says the work was ours: in off/dry-run an operator's own files are left alone.
   */
  async start(): Promise<void> {
    await this.recoverAtStart();
  }

  private async recoverAtStart(): Promise<RecoveryAction[]> {
    const unfinished = this.journal?.unfinished(NAME) ?? [];
    if (this.mode !== "on" && unfinished.length === 0) return [];
    const re = patternRegex(this.options.segmentPattern);
    let d: DirHandle;
    try {
      d = DirHandle.open(this.dir());
    } catch (e) {
      this.log.warn(
        { err: errorMessage(e) },
        "wal_compress: no recovery at start: the WAL directory cannot be opened",
      );
      return [];
    }
    let names: string[];
    try {
      names = d.list();
    } catch (e) {
      d.close();
      this.log.warn(
        { err: errorMessage(e) },
        "wal_compress: no recovery at start: the WAL directory cannot be listed",
      );
      return [];
    }
    const set = new Set(names);
    // X.gz.tmp (an unfinished compression) and X.restore.tmp (an unfinished undo): the other form is intact.
    const tmps = names.filter((n) =>
      [TMP_SUFFIX, RESTORE_SUFFIX].some(
        (sfx) => n.endsWith(sfx) && re.plain.test(n.slice(0, -sfx.length)),
      ),
    );
    const pairs = names.filter((n) => re.plain.test(n) && set.has(`${n}.gz`));
    let actions: RecoveryAction[];
    try {
      actions = await recover(d, pairs, tmps, this.options.procPath);
    } finally {
      d.close();
    }
    for (const row of unfinished)
      this.closeJournal(row.id, "recovered", {
        actions: actions.filter((a) => a.file.startsWith(row.target)),
      });
    for (const a of actions) {
      this.decisions.note(
        "recovered",
        a.kind === "moved_aside_unverifiable_gz" ? "crit" : "info",
        a.kind === "removed_tmp"
          ? `removed an unfinished ${a.file} (the segment itself was never touched)`
          : a.kind === "removed_plain_after_verify"
            ? `${a.file}: the compressed copy verified; removed the plain one`
            : a.kind === "kept_both"
              ? `${a.file}: kept both forms (${a.why})`
              : `${a.file} did not verify against its segment: moved aside to ${a.to}, segment kept`,
        a,
        true,
      );
    }
    return actions;
  }

  /** Called by the core loop every second; never blocks: compression runs in a worker thread. */
  tick(latest: Latest, _now?: number): void {
    this.look(latest, false);
  }

  private look(latest: Latest, force: boolean): void {
    this.latest = latest;
    if (this.busy !== null || this.mode === "off") return;
    // Not every second: listing the WAL and planning cost real CPU on a big WAL. Straight on after
    // a segment is done (force), and when a cooldown ends. Monotonic, so a clock jump cannot stall it.
    const now = performance.now();
    if (!force && now < this.nextEvalAt) return;
    this.nextEvalAt = now + EVALUATE_EVERY_MS;
    void this.evaluate(latest).catch((e: Error) =>
      this.log.error({ err: e.message }, "wal_compress: evaluation failed"),
    );
  }

  private evaluating = false;
  private nextEvalAt = 0;
  private latest: Latest | null = null;

  private async evaluate(latest: Latest): Promise<void> {
    if (this.evaluating) return;
    this.evaluating = true;
    try {
      await this.evaluateOnce(latest);
    } finally {
      this.evaluating = false;
    }
  }

  private skip(reason: string, kind = "skipped"): void {
    this.lastDecision = `skipped: ${reason}`;
    this.count("skipped", 0);
    this.decisions.note(kind, "info", `not compressing: ${reason}`);
  }

  /** A reason not to act at this moment, or null. */
  precondition(latest: Latest): string | null {
    const c = this.options;
    if (this.breaker.open)
      return (
        `circuit breaker open since ${new Date(this.breaker.since ?? 0).toISOString()} after repeated ` +
        `failures (agentctl remediations reset-breaker ${NAME})`
      );
    if (Date.now() < this.cooldownUntil)
      return `cooling down until ${new Date(this.cooldownUntil).toISOString()} (${this.cooldownWhy})`;
    const blind = cannotSeeHolders(this.options.procPath);
    if (blind && this.mode === "on") return blind;
    const probe = latest
      .get("fsync_probe")
      ?.observation.probes.find((p) => p.state === "ok" || p.state === "stalled");
    if (probe && (probe.state === "stalled" || probe.seconds * 1000 >= c.pause_fsync_above))
      return (
        `WAL fsync is slow ` +
        `(${probe.state === "stalled" ? "probe stalled" : `${(probe.seconds * 1000).toFixed(1)} ms`}); ` +
        `compressing would make it worse`
      );
    return null;
  }

  /** The segments that would be compressed, oldest first, and why the others are left alone. */
  async plan(_latest: Latest): Promise<{ items: Segment[]; skipped: Plan["skipped"] }> {
    const c = this.options;
    const dir = this.dir();
    const entries = await listSegments(dir.real, this.options.segmentPattern);
    if (entries === null) throw new Error(`cannot list ${this.options.walDir}`);
    const inv = analyse(entries, this.options.segmentPattern, 0);
    const input = {
      segments: inv.segments,
      keep: c.keep_uncompressed,
      minAgeMs: c.min_age,
      now: Date.now(),
      held: this.held(),
      incompressible: this.incompressible(),
    };
    // Who holds which segment open needs every /proc/<pid>/fd: only looked at when there is a
    // candidate at all (and again right before each file is compressed).
    let plan = planCompression({ ...input, open: new Set() });
    if (plan.compress.length > 0)
      plan = planCompression({
        ...input,
        open: await openSegments(dir.real, this.options.procPath),
      });
    this.lastPlan = plan;
    return { items: plan.compress, skipped: plan.skipped };
  }

  /** What calls for compression now: space used, time-to-full, or old sealed segments. */
  async triggers(latest: Latest, plan: readonly Segment[]): Promise<string[]> {
    const c = this.options;
    const out: string[] = [];
    const used = spaceOf(await statfs(this.dir().real)).used_ratio;
    const fullIn = latest.get("wal")?.observation.filesystem?.full_in_seconds ?? Infinity;
    if (used * 100 >= c.trigger_used_percent)
      out.push(`filesystem ${(used * 100).toFixed(1)}% used (>= ${c.trigger_used_percent}%)`);
    if (fullIn * 1000 < c.full_horizon) out.push(`full in ${(fullIn / 3600).toFixed(1)} h`);
    if (plan.length > 0)
      out.push(
        `${plan.length} sealed segments older than min_age beyond the newest ${c.keep_uncompressed}`,
      );
    return out;
  }

  /** Compresses one segment in the worker thread; throws with the worker's error code. */
  act(
    seg: Segment,
  ): Promise<{ segment: string; bytes: number; compressedBytes: number; sha256: string }> {
    const c = this.options;
    const job: CompressJob = {
      dir: this.dir(),
      name: seg.name,
      listed: { dev: seg.dev, ino: seg.ino, size: seg.size, mtimeMs: seg.mtimeMs },
      options: {
        level: c.level,
        bytesPerSecond: c.max_bytes_per_second,
        maxRatio: c.max_ratio,
        reserve: c.reserve,
        procPath: this.options.procPath,
      },
    };
    const w = this.ensureWorker();
    return new Promise((resolve, reject) => {
      const onMsg = (m: WorkerMsg) => {
        if ("step" in m) {
          this.log.debug({ segment: seg.name, step: m.step }, "wal_compress step");
          return;
        }
        w.off("message", onMsg);
        w.off("error", onErr);
        if ("result" in m) resolve(m.result);
        else reject(Object.assign(new Error(m.error), { code: m.code }));
      };
      const onErr = (e: Error) => {
        w.off("message", onMsg);
        this.worker = null;
        reject(Object.assign(e, { code: "EWORKER" }));
      };
      w.on("message", onMsg);
      w.once("error", onErr);
      w.postMessage(job);
    });
  }

  /** A compressed segment decompresses completely (its original is gone, so this is the check left). */
  async verify(target: string): Promise<boolean> {
    const name = target.endsWith(".gz") ? target : `${target}.gz`;
    try {
      return (await withDir(this.dir(), (d) => digestName(d, name, true))) !== null;
    } catch {
      return false;
    }
  }

  /** Segments undone by an operator, kept in the history's state table so a restart respects them. */
  private held(): Set<string> {
    try {
      return new Set(JSON.parse(this.history?.getState(HELD_KEY) ?? "[]") as string[]);
    } catch {
      return new Set();
    }
  }

  /** Segments that did not compress below max_ratio, with the fingerprint they had then. */
  private incompressible(): Map<string, string> {
    try {
      return new Map(
        Object.entries(
          JSON.parse(this.history?.getState(INCOMPRESSIBLE_KEY) ?? "{}") as Record<string, string>,
        ),
      );
    } catch {
      return new Map();
    }
  }

  private markIncompressible(seg: Segment): void {
    const m = this.incompressible();
    m.set(seg.name, fingerprint(seg));
    const kept = [...m].slice(-10_000); // bounded: the oldest marks go first
    try {
      this.history?.setState(INCOMPRESSIBLE_KEY, JSON.stringify(Object.fromEntries(kept)));
    } catch (e) {
      this.log.warn(
        { err: errorMessage(e) },
        "wal_compress: cannot record an incompressible segment",
      );
    }
  }

  /** Puts one segment back to plain, crash-safely, journalled like any action; it is then held out of future plans. */
  async undo(target: string): Promise<unknown> {
    const name = target.endsWith(".gz") ? target.slice(0, -3) : target;
    if (!patternRegex(this.options.segmentPattern).plain.test(name) || name.includes("/"))
      throw new Error(`${target} is not a segment of ${this.options.walDir}`);
    // Journalled first: when the row cannot be written nothing is done (the operator sees why).
    const id = this.journal?.begin(NAME, "decompress", name, { by: "operator" }) ?? -1;
    const held = this.held();
    held.add(name);
    this.history?.setState(HELD_KEY, JSON.stringify([...held].slice(-10_000)));
    try {
      const reserve = this.options.reserve;
      const r = await withDir(this.dir(), (d) => decompressSegment(d, `${name}.gz`, reserve));
      this.closeJournal(id, "done", r);
      this.decisions.note(
        "undone",
        "info",
        `decompressed ${name} back to plain on an operator's request (sha256 checked)`,
        r,
        true,
      );
      return r;
    } catch (e) {
      this.closeJournal(id, "failed", { error: errorMessage(e) });
      throw e;
    }
  }

  private async evaluateOnce(latest: Latest): Promise<void> {
    const reason = this.precondition(latest);
    if (reason)
      return this.skip(
        reason,
        this.breaker.open ? "breaker_open" : reason.startsWith("WAL fsync") ? "paused" : "skipped",
      );
    let plan;
    let triggers: string[];
    try {
      plan = await this.plan(latest);
      triggers = await this.triggers(latest, plan.items);
    } catch (e) {
      return this.skip(errorMessage(e));
    }
    const c = this.options;
    if (plan.items.length === 0)
      return this.skip(
        `nothing to compress (${plan.skipped.length} segments kept: newest ${c.keep_uncompressed}, ` +
          `active, open or younger than min_age)`,
      );
    if (triggers.length === 0) return this.skip("no trigger");
    const first = plan.items[0];
    if (!first) return;
    const summary = `${plan.items.length} segments (${plan.items
      .slice(0, 3)
      .map((s) => s.name)
      .join(", ")}${plan.items.length > 3 ? ", …" : ""}); trigger: ${triggers.join("; ")}`;
    if (this.mode === "dry-run") {
      this.lastDecision = `dry-run: would compress ${summary}`;
      const now = Date.now();
      if (now - this.lastPlanAt > 60_000) {
        this.lastPlanAt = now;
        this.count("planned");
      }
      this.decisions.note("plan", "info", `dry-run: would compress ${summary}`, {
        compress: plan.items.map((s) => s.name),
        skipped: plan.skipped,
      });
      return;
    }
    await this.compress(first, summary);
  }

  /** The framework around act: the journal row before and after, the breaker, the cooldown, the events. */
  private async compress(seg: Segment, why: string): Promise<void> {
    const c = this.options;
    const name = seg.name;
    // Re-checked right before acting: nobody may have it open (and again before the unlink).
    if ((await openSegments(this.dir().real, this.options.procPath)).has(name))
      return this.skip(`${name} was opened by a process`);
    this.busy = name;
    this.lastDecision = `compressing ${name}`;
    let id = -1;
    try {
      // Journalled before it happens: a journal that cannot be written (a full disk) means no action.
      id = this.journal?.begin(NAME, "compress", name, { why, level: c.level }) ?? -1;
    } catch (e) {
      this.busy = null;
      return this.skip(
        `the journal cannot be written (${errorMessage(e)}); nothing is done unjournalled`,
      );
    }
    this.decisions.note("started", "info", `compressing ${name}: ${why}`, undefined, true);
    try {
      const r = await this.act(seg);
      this.busy = null;
      this.closeJournal(id, "done", r);
      this.breaker.succeeded();
      this.spaceShort = null;
      this.count("done");
      this.lastDecision = `compressed ${name}: ${r.bytes} -> ${r.compressedBytes} bytes`;
      this.decisions.note(
        "done",
        "info",
        `compressed ${name}: ${r.bytes} -> ${r.compressedBytes} bytes (sha256 verified)`,
        r,
        true,
      );
      // Straight on to the next segment (each one re-checks every condition), not a tick later.
      setImmediate(() => this.latest && this.look(this.latest, true));
    } catch (e) {
      this.busy = null;
      this.failed(seg, id, e as Error & { code?: string });
    }
  }

  private coolDown(ms: number, why: string): void {
    this.cooldownUntil = Date.now() + ms;
    this.cooldownWhy = why;
    this.nextEvalAt = performance.now() + ms; // retry when the cooldown ends, not later
  }

  /** Sorts an unfinished compression: not ours to take, not worth it, no room, or a failure. */
  private failed(seg: Segment, id: number, err: Error & { code?: string }): void {
    const c = this.options;
    const name = seg.name;
    const detail = { error: err.message, code: err.code };
    if (err.code === "Incompressible") {
      this.markIncompressible(seg);
      this.closeJournal(id, "aborted", detail);
      this.count("aborted");
      this.lastDecision = `left ${name} plain: ${err.message}`;
      this.decisions.note(
        "incompressible",
        "info",
        `${name} left plain: ${err.message}; not tried again until it changes`,
        detail,
        true,
      );
      setImmediate(() => this.latest && this.look(this.latest, true));
      return;
    }
    if (err.code === "NoSpace") {
      // The round stops here: the next segment would meet the same full filesystem.
      this.closeJournal(id, "aborted", detail);
      this.count("aborted");
      this.lastDecision = `stopped at ${name}: ${err.message}`;
      this.decisions.note(
        "no_space",
        "warn",
        `stopped compressing at ${name}: ${err.message} (the segment is untouched; reserve ${c.reserve} bytes)`,
        detail,
        true,
      );
      this.coolDown(c.cooldown, "free space short of a segment plus the reserve");
      this.spaceShort = `free space short on the WAL filesystem at ${name}: ${err.message}`;
      return;
    }
    const aborted = ABORTS.has(err.code ?? "");
    this.closeJournal(id, aborted ? "aborted" : "failed", detail);
    this.count(aborted ? "aborted" : "failed");
    this.lastDecision = `${aborted ? "aborted" : "failed"} on ${name}: ${err.message}`;
    this.decisions.note(
      aborted ? "aborted" : "failed",
      "warn",
      `${aborted ? "aborted" : "failed"} compressing ${name}: ${err.message} (the segment is untouched)`,
      detail,
      true,
    );
    if (aborted) return;
    this.coolDown(c.cooldown, "after a failure");
    this.breakerFailed(
      "breaker_open",
      (n) =>
        `circuit breaker opened after ${n} failures; no more compression until an operator resets it`,
    );
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const before = taskIds();
    const w = new Worker(new URL("./worker.js", import.meta.url));
    w.unref();
    this.worker = w;
    // Idle I/O class for the compressing thread only (ioprio is per thread): the probe and
    // history keep their normal priority. Best effort: ionice may be missing or refused.
    setTimeout(() => {
      for (const tid of taskIds())
        if (!before.has(tid)) execFile("ionice", ["-c", "3", "-p", String(tid)], () => undefined);
    }, 200).unref();
    return w;
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
    this.worker = null;
  }
}

function taskIds(): Set<string> {
  try {
    return new Set(readdirSync("/proc/self/task"));
  } catch {
    return new Set();
  }
}
