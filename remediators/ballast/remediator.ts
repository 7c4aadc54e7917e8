// ballast: CockroachDB's EMERGENCY_BALLAST on the WAL's filesystem. Space is reserved while there
// is plenty (in 64 MiB steps a second apart, at idle priority), given back the moment the disk runs
// short, before WAL compression has to act (or by `agentctl ballast release`), and taken again only
// once space has been back for `recreate_after`. The decisions are ./plan.ts (pure); where it lives
// is ./place.ts; the file work ./file.ts. Every step has a journal row before it and an event.
import { statfsSync, statSync } from "node:fs";
import type { Counter, Gauge } from "prom-client";
import type { Config } from "../../core/config/schema.js";
import { errorMessage } from "../../core/errors.js";
import { ExecError } from "../../core/exec.js";
import { spaceOf } from "../../core/host/statfs.js";
import { counter, gauge } from "../../core/metrics/define.js";
import { NS } from "../../core/metrics/registry.js";
import type { DirHandle } from "../../core/safefs.js";
import {
  ActionRefused,
  type Latest,
  type Remediator,
  type RemediatorAction,
  RemediatorBase,
  type RemediatorDeps,
} from "../framework.js";
import {
  allocated,
  BallastRefused,
  closeQuietly,
  createBallast,
  type Held,
  inMemory,
  NoSpace,
  openBallast,
  release,
  reserve,
  type Runner,
} from "./file.js";
import {
  choosePlace,
  openPlace,
  type PlaceChoice,
  PlaceRefused,
  placePath,
  stillPlaced,
} from "./place.js";
import {
  type BallastLines,
  type Decision,
  EMPTY_MEMORY,
  type Memory,
  type PlanInput,
  planBallast,
  STEP_PAUSE_MS,
  targetBytes,
} from "./plan.js";
import {
  BALLAST_STATES,
  type BallastState,
  type BallastStateName,
  type BallastView,
  size,
} from "./view.js";

export const NAME = "ballast";
const MEMORY_KEY = "ballast.memory";
/** How often the space is looked at when nothing is being done (statfs and fstat: cheap). */
const EVALUATE_EVERY_MS = 2000;
/** After a failure, no new step for this long. */
const COOLDOWN_MS = 60_000;
/** A place or filesystem that refused is looked at again after this long (or at a reload). */
const REFUSED_RETRY_MS = 3_600_000;

/** What the ballast reads of the configuration: its section, where the WAL and the state live. */
export type BallastOptions = Config["remediators"]["ballast"] & {
  readonly walDir: string;
  readonly stateDir: string;
  /** collectors.mounts.fill_window: time-to-full is not believed for this long after it grew. */
  readonly fillWindowMs: number;
};

export function ballastOptions(c: Config): BallastOptions {
  return {
    ...c.remediators.ballast,
    walDir: c.wal.dir,
    stateDir: c.agent.state_dir,
    fillWindowMs: c.collectors.mounts.fill_window,
  };
}

/** What one look found: the place, the file, the space. */
interface Seen {
  readonly space: { size_bytes: number; used_ratio: number } | null;
  readonly exists: boolean;
  readonly bytes: number;
}

export class BallastRemediator
  extends RemediatorBase<BallastOptions>
  implements Remediator<BallastOptions>
{
  private choice: PlaceChoice | null = null;
  private dir: DirHandle | null = null;
  private memory: Memory;
  private queue: Promise<unknown> = Promise.resolve();
  private pending = false;
  private nextEvalAt = 0;
  private latest: Latest | null = null;
  private refused: { reason: string; until: number } | null = null;
  private cooldownUntil = 0;
  /** The reservation step in flight: an operator's release aborts it. */
  private step: AbortController | null = null;
  private lastPlanAt = 0;
  private view: BallastView;
  private readonly gBytes: Gauge;
  private readonly gTarget: Gauge;
  private readonly gState: Gauge<"state">;
  private readonly cReleases: Counter<"by">;

  constructor(
    options: BallastOptions,
    deps: RemediatorDeps,
    /** Runs fallocate and sync (tests see what is run). */
    private readonly runner?: Runner,
  ) {
    super(NAME, options, deps);
    this.memory = this.load();
    const registry = deps.registry;
    this.gBytes = gauge(registry, {
      name: `${NS}ballast_bytes`,
      help: "Bytes the emergency ballast holds on the WAL filesystem (allocated blocks).",
    });
    this.gTarget = gauge(registry, {
      name: `${NS}ballast_target_bytes`,
      help: "The size the emergency ballast should have (remediators.ballast.size).",
    });
    this.gState = gauge(registry, {
      name: `${NS}ballast_state`,
      help: "The emergency ballast's state as a state set (absent, creating, held, released, refused).",
      labelNames: ["state"],
    });
    this.cReleases = counter(registry, {
      name: `${NS}ballast_releases_total`,
      help: "Times the emergency ballast was given back, by the agent or by an operator (agentctl ballast release).",
      labelNames: ["by"],
    });
    for (const by of ["agent", "operator"]) this.cReleases.labels(by).inc(0);
    this.count("done", 0);
    this.view = this.describe(null, null, "not evaluated yet");
    this.publish();
  }

  private get lines(): BallastLines {
    const o = this.options;
    return {
      releaseUsedPercent: o.release_used_percent,
      releaseFullHorizonMs: o.release_full_horizon,
      createUsedPercent: o.create_used_percent,
      recreateAfterMs: o.recreate_after,
      fillWindowMs: o.fillWindowMs,
    };
  }

  protected override reconfigured(): void {
    // wal.dir may have moved: the place is chosen again; a refusal is looked at again.
    this.closeDir();
    this.choice = null;
    this.refused = null;
    this.nextEvalAt = 0;
  }

  // ------------------------------------------------------------------ memory

  private load(): Memory {
    try {
      const raw = this.history?.getState(MEMORY_KEY);
      return raw ? { ...EMPTY_MEMORY, ...(JSON.parse(raw) as Partial<Memory>) } : EMPTY_MEMORY;
    } catch {
      return EMPTY_MEMORY;
    }
  }

  private remember(m: Memory): void {
    if (JSON.stringify(m) === JSON.stringify(this.memory)) return;
    this.memory = m;
    try {
      this.history?.setState(MEMORY_KEY, JSON.stringify(m));
    } catch (e) {
      // A full disk: kept in memory; the ballast's state on disk speaks for itself at a restart.
      this.log.warn({ err: errorMessage(e) }, "ballast: cannot persist its state");
    }
  }

  // ------------------------------------------------------------------ the place

  /** The place, chosen once (and again after a reload); throws PlaceRefused. */
  private place(): PlaceChoice {
    // Chosen again when the WAL directory is now on another filesystem (mounted after the start).
    if (this.choice && !onDevice(this.options.walDir, this.choice.dev)) {
      this.closeDir();
      this.choice = null;
    }
    this.choice ??= choosePlace({ walDir: this.options.walDir, stateDir: this.options.stateDir });
    return this.choice;
  }

  /** The held directory, opened (created only when `create`), or null when it does not exist. */
  private openDir(create: boolean): DirHandle | null {
    const choice = this.place();
    if (this.dir && !stillPlaced(choice, this.dir)) this.closeDir();
    this.dir ??= openPlace(choice, create);
    return this.dir;
  }

  private closeDir(): void {
    try {
      this.dir?.close();
    } catch {
      // already closed
    }
    this.dir = null;
  }

  // ------------------------------------------------------------------ looking

  /** The file and the space, as they are now. Throws PlaceRefused or BallastRefused. */
  private look(): Seen {
    const dir = this.openDir(false);
    let exists = false;
    let bytes = 0;
    if (dir) {
      const f = openBallast(dir, this.where());
      if (f) {
        exists = true;
        bytes = Math.min(allocated(f.st), f.st.size); // reserved within the file
        closeQuietly(f.fd);
      }
    }
    const fs = statfsSync(dir ? `/proc/self/fd/${dir.fd}` : this.place().parent);
    const mem = inMemory(fs.type);
    if (mem) throw new BallastRefused(mem);
    const sp = spaceOf(fs);
    return {
      space: { size_bytes: sp.size_bytes, used_ratio: sp.used_ratio },
      exists,
      bytes,
    };
  }

  private fullIn(): number {
    return this.latest?.get("wal")?.observation.filesystem?.full_in_seconds ?? Infinity;
  }

  private input(seen: Seen, now: number): PlanInput {
    const sizeBytes = seen.space?.size_bytes ?? 0;
    return {
      now,
      sizeBytes,
      usedRatio: seen.space?.used_ratio ?? 1,
      fullInSeconds: this.fullIn(),
      exists: seen.exists,
      heldBytes: seen.bytes,
      target: targetBytes(this.options.size, sizeBytes),
      memory: this.memory,
      lines: this.lines,
    };
  }

  // ------------------------------------------------------------------ the tick

  /** Every second from the core loop; never blocks: the work is queued. */
  tick(latest: Latest, _now?: number): void {
    this.latest = latest;
    if (this.pending) return;
    const mono = performance.now();
    if (mono < this.nextEvalAt) return;
    this.nextEvalAt = mono + EVALUATE_EVERY_MS;
    this.pending = true;
    this.enqueue(() => this.evaluate())
      .catch(() => undefined) // logged by enqueue
      .finally(() => (this.pending = false));
  }

  /** Serialises every look and action: the tick, operators' commands and the start never interleave. */
  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch((e: unknown) => {
      // An operator's refused request is their answer, not the agent's failure.
      if (!(e instanceof ActionRefused))
        this.log.error({ err: errorMessage(e) }, "ballast: evaluation failed");
    });
    return p;
  }

  private async evaluate(): Promise<void> {
    const now = Date.now();
    if (this.mode === "off") {
      // Nothing is done; what is on disk (a ballast left from before) is still shown.
      this.lastDecision = "off";
      return this.settle(this.safeLook(), null, null);
    }
    let seen: Seen;
    try {
      if (this.refused && now < this.refused.until) {
        seen = this.safeLook();
        this.settle(seen, null, this.refused.reason);
        return;
      }
      seen = this.look();
    } catch (e) {
      if (e instanceof PlaceRefused || e instanceof BallastRefused) {
        this.refuse(e.message, e instanceof BallastRefused);
        this.settle(this.safeLook(), null, e.message);
        return;
      }
      throw e;
    }
    const plan = planBallast(this.input(seen, now));
    const d = plan.decision;
    if (this.mode === "dry-run") {
      this.dryRun(seen, d);
      return;
    }
    switch (d.kind) {
      case "release":
        await this.giveBack(
          "agent",
          d.reason,
          d.code === "unfinishable" ? "unfinished" : "release",
        );
        this.remember({ ...this.memory, grewAt: null, spaceBackSince: null });
        return this.settle(this.safeLook(), null, null);
      case "grow": {
        const why = this.holdBack(now);
        if (why !== null) {
          this.lastDecision = `not taking: ${why}`;
          this.decisions.note("skipped", "info", `not taking the ballast: ${why}`);
          return this.settle(seen, d, null);
        }
        this.remember(plan.memory);
        await this.grow(seen, d.bytes, d.reason);
        return this.settle(this.safeLook(), null, null);
      }
      default:
        this.remember(plan.memory);
        this.lastDecision = d.reason;
        this.decisions.note(d.kind === "hold" ? "held" : d.code, "info", stableMessage(d, seen));
        return this.settle(seen, d, null);
    }
  }

  /** A reason not to grow now (a release never waits for these), or null. */
  private holdBack(now: number): string | null {
    if (this.breaker.open)
      return (
        `circuit breaker open since ${new Date(this.breaker.since ?? 0).toISOString()} after ` +
        `repeated failures (agentctl remediations reset-breaker ${NAME})`
      );
    if (now < this.cooldownUntil)
      return `cooling down until ${new Date(this.cooldownUntil).toISOString()} after a failure`;
    return null;
  }

  private dryRun(seen: Seen, d: Decision): void {
    const what =
      d.kind === "grow"
        ? `would take ${size(this.input(seen, Date.now()).target)} at ${this.where()} ` +
          `(${d.reason})`
        : d.kind === "release"
          ? `would give back the ${size(seen.bytes)} held (${d.reason})`
          : d.reason;
    this.lastDecision = `dry-run: ${what}`;
    const now = Date.now();
    if (d.kind === "grow" || d.kind === "release") {
      if (now - this.lastPlanAt > 60_000) {
        this.lastPlanAt = now;
        this.count("planned");
      }
      this.decisions.note(
        "plan",
        "info",
        d.kind === "grow"
          ? `dry-run: would take the emergency ballast at ${this.where()}`
          : `dry-run: would give the emergency ballast back (${d.code})`,
        { decision: d },
      );
    }
    this.settle(seen, d, null);
  }

  private where(): string {
    try {
      return placePath(this.place());
    } catch (e) {
      return `(no place: ${errorMessage(e)})`;
    }
  }

  /**
   * No ballast can be kept: said once (an event when the reason changes). A place that does not
   * do is looked at again at the next evaluation (cheap); a filesystem that did not reserve, only
   * after REFUSED_RETRY_MS or a reload.
   */
  private refuse(reason: string, retry: boolean): void {
    this.refused = retry ? { reason, until: Date.now() + REFUSED_RETRY_MS } : null;
    this.lastDecision = `refused: ${reason}`;
    this.decisions.note(
      "refused",
      this.mode === "on" ? "warn" : "info",
      `no emergency ballast: ${reason}`,
    );
  }

  /** look() that never throws (for what status shows after a refusal or an action). */
  private safeLook(): Seen {
    try {
      return this.look();
    } catch {
      return { space: null, exists: false, bytes: 0 };
    }
  }

  // ------------------------------------------------------------------ acting

  /** One reservation step (the file created first when absent); journalled before each. */
  private async grow(seen: Seen, bytes: number, why: string): Promise<void> {
    let dir: DirHandle | null;
    try {
      dir = this.openDir(true);
      if (!dir) throw new PlaceRefused("the place could not be made");
      const fsProblem = inMemory(statfsSync(`/proc/self/fd/${dir.fd}`).type);
      if (fsProblem) throw new BallastRefused(fsProblem);
    } catch (e) {
      if (e instanceof PlaceRefused || e instanceof BallastRefused)
        return this.refuse(e.message, e instanceof BallastRefused);
      throw e;
    }
    const path = `${placePath(this.place())}/EMERGENCY_BALLAST`;
    let held: Held | null = null;
    let id = -1;
    this.busy = path;
    try {
      held = openBallast(dir, this.where());
      if (!held) {
        const created = this.begin("create", path, { why });
        if (created === null) return;
        id = created;
        held = createBallast(dir);
        this.closeJournal(id, "done", { ino: held.st.ino });
        id = -1;
        this.decisions.note(
          "creating",
          "info",
          `taking the emergency ballast at ${path}: ${why}`,
          undefined,
          true,
        );
      }
      const st = held.st;
      const have = allocated(st);
      const offset = have >= st.size ? st.size : Math.floor(have / 4096) * 4096;
      const begun = this.begin("reserve", path, { offset, length: bytes });
      if (begun === null) return;
      id = begun;
      this.step = new AbortController();
      const after = await reserve(held, offset, bytes, {
        signal: this.step.signal,
        ...(this.runner ? { runner: this.runner } : {}),
      });
      this.closeJournal(id, "done", { offset, length: bytes, allocated: allocated(after) });
      id = -1;
      this.breaker.succeeded();
      const target = targetBytes(this.options.size, seen.space?.size_bytes ?? 0);
      this.nextEvalAt = performance.now() + STEP_PAUSE_MS; // the next step a second from now
      if (allocated(after) >= target) {
        this.count("done");
        this.lastDecision = `took the emergency ballast: ${size(allocated(after))} at ${path}`;
        this.decisions.note(
          "created",
          "info",
          `took the emergency ballast: ${size(allocated(after))} reserved at ${path} ` +
            `(blocks checked); given back at ${this.options.release_used_percent}% used or full ` +
            `within the release horizon`,
          { bytes: allocated(after), path },
          true,
        );
      } else
        this.lastDecision = `taking the emergency ballast: ${size(allocated(after))} of ${size(target)}`;
    } catch (e) {
      await this.growFailed(dir, held, id, e);
      held = null;
    } finally {
      this.step = null;
      this.busy = null;
      if (held) closeQuietly(held.fd);
    }
  }

  /** A journal row before a step; null when it cannot be written (then nothing is done). */
  private begin(action: string, target: string, detail: unknown): number | null {
    try {
      return this.journal?.begin(NAME, action, target, detail) ?? -1;
    } catch (e) {
      const why = `the journal cannot be written (${errorMessage(e)}); nothing is done unjournalled`;
      this.lastDecision = `not taking: ${why}`;
      this.decisions.note("skipped", "warn", `not taking the ballast: ${why}`);
      return null;
    }
  }

  /** Sorts a failed step: refused (the filesystem), no space, aborted (an operator), or a failure. */
  private async growFailed(
    dir: DirHandle,
    held: Held | null,
    id: number,
    e: unknown,
  ): Promise<void> {
    const msg = errorMessage(e);
    const aborted = e instanceof ExecError && e.kind === "aborted";
    const refusal = e instanceof BallastRefused;
    // What was made of it is given back: a ballast that is not really reserved is none.
    let removed = false;
    if (held && !aborted) {
      try {
        await release(dir, held, this.runner ? { runner: this.runner } : {});
        removed = true;
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, "ballast: cannot remove a half-made ballast");
      }
    } else if (held) closeQuietly(held.fd);
    const state = refusal || e instanceof NoSpace || aborted ? "aborted" : "failed";
    this.closeJournal(id, state, { error: msg, removed });
    if (aborted) return; // the operator's release follows in the queue
    if (refusal) {
      this.count("aborted");
      return this.refuse(`${msg}${removed ? " (the half-made file removed)" : ""}`, true);
    }
    this.cooldownUntil = Date.now() + COOLDOWN_MS;
    if (e instanceof NoSpace) {
      this.count("aborted");
      this.lastDecision = `stopped taking the ballast: ${msg}`;
      this.decisions.note(
        "no_space",
        "warn",
        `stopped taking the ballast: ${msg} (given back)`,
        undefined,
        true,
      );
      return;
    }
    this.count("failed");
    this.lastDecision = `failed taking the ballast: ${msg}`;
    this.decisions.note("failed", "warn", `failed taking the ballast: ${msg}`, undefined, true);
    this.breakerFailed(
      "breaker_open",
      (n) =>
        `circuit breaker opened after ${n} failures; the ballast is not taken until an operator resets it`,
    );
  }

  /**
   * Gives the ballast back (the agent at its lines, an operator, or the recovery of a half-made
   * one). Freeing space is always right: a journal that cannot be written (the very disk that is
   * full) does not stop it. Returns the bytes freed, or null when there was nothing to give back.
   */
  private async giveBack(
    by: "agent" | "operator",
    reason: string,
    kind: "release" | "unfinished" = "release",
  ): Promise<number | null> {
    const dir = this.openDir(false);
    const held = dir ? openBallast(dir, this.where()) : null;
    if (!dir || !held) return null;
    const path = `${placePath(this.place())}/EMERGENCY_BALLAST`;
    let id = -1;
    try {
      id =
        this.journal?.begin(NAME, "release", path, { by, reason, bytes: allocated(held.st) }) ?? -1;
    } catch (e) {
      this.log.warn(
        { err: errorMessage(e) },
        "ballast: releasing without a journal row (it cannot be written)",
      );
    }
    this.busy = path;
    try {
      const r = await release(dir, held, this.runner ? { runner: this.runner } : {});
      this.closeJournal(id, "done", r);
      const at = Date.now();
      if (kind === "release") {
        this.cReleases.labels(by).inc();
        this.memory = { ...this.memory, released: { at, by, reason } };
        this.remember({ ...this.memory, grewAt: null, spaceBackSince: null });
      }
      this.count("done");
      this.lastDecision =
        kind === "release"
          ? `gave the emergency ballast back (${by}): ${size(r.bytes)} freed: ${reason}`
          : `gave back a half-made ballast (${size(r.bytes)}): ${reason}`;
      this.decisions.note(
        kind === "release" ? "released" : "removed",
        kind === "release" ? "warn" : "info",
        kind === "release"
          ? `gave the emergency ballast back (by ${by}): ${size(r.bytes)} freed at ${path}: ${reason}` +
              (r.synced ? `; ${r.synced}` : "")
          : `gave back a half-made ballast (${size(r.bytes)}) at ${path}: ${reason}`,
        { by, reason, ...r },
        true,
      );
      return r.bytes;
    } catch (e) {
      this.closeJournal(id, "failed", { error: errorMessage(e) });
      this.count("failed");
      this.lastDecision = `failed giving the ballast back: ${errorMessage(e)}`;
      this.decisions.note(
        "failed",
        "crit",
        `failed giving the ballast back: ${errorMessage(e)}`,
        undefined,
        true,
      );
      throw e;
    } finally {
      this.busy = null;
    }
  }

  // ------------------------------------------------------------------ start, operators

  /**
   * At start: journal rows left open are closed as recovered, and what is on disk decides. An
   * interrupted release is finished; a half-made ballast is left to the next decision when on
   * (finished, or given back when it cannot be finished), else given back; a whole one is kept.
   */
  async start(): Promise<void> {
    await this.enqueue(() => this.recover());
  }

  private async recover(): Promise<void> {
    const rows = this.journal?.unfinished(NAME) ?? [];
    let seen: Seen | null = null;
    let problem: string | null = null;
    try {
      seen = this.look();
    } catch (e) {
      problem = errorMessage(e);
    }
    const target = targetBytes(this.options.size, seen?.space?.size_bytes ?? 0);
    const detail = seen
      ? { exists: seen.exists, bytes: seen.bytes, target }
      : { note: `at start: ${problem}` };
    for (const r of rows) this.closeJournal(r.id, "recovered", detail);
    if (!seen?.exists) return;
    if (rows.some((r) => r.action === "release")) {
      await this.giveBack("agent", "a release interrupted by a restart, finished at start");
      return;
    }
    if (seen.bytes >= target) return; // whole: held as it is
    if (this.mode !== "on") {
      await this.giveBack(
        "agent",
        `interrupted at ${size(seen.bytes)} of ${size(target)}, and the ballast is ${this.mode}`,
        "unfinished",
      );
      return;
    }
    this.decisions.note(
      "recovered",
      "info",
      `a half-made ballast from before the restart (${size(seen.bytes)} of ${size(target)}): ` +
        "finished, or given back if it cannot be, by the next decisions",
      detail,
      true,
    );
  }

  /** agentctl ballast release (root): in every mode, at once (a step in flight is stopped). */
  readonly actions = new Map<string, RemediatorAction>([["release", () => this.operatorRelease()]]);

  async operatorRelease(): Promise<BallastView> {
    this.step?.abort();
    return this.enqueue(async () => {
      let freed: number | null;
      try {
        freed = await this.giveBack("operator", "an operator asked (agentctl ballast release)");
      } catch (e) {
        if (e instanceof PlaceRefused || e instanceof BallastRefused)
          throw new ActionRefused(e.message);
        throw e;
      }
      this.settle(this.safeLook(), null, null);
      if (freed === null) {
        this.decisions.note(
          "refused",
          "info",
          "an operator asked to release the ballast: none is held",
          undefined,
          true,
        );
        throw new ActionRefused(
          `no emergency ballast is held (${this.view.state}: ${this.view.next})`,
        );
      }
      return this.view;
    });
  }

  // ------------------------------------------------------------------ view and metrics

  /** The view and the metrics after a look (and the decision, when there was one). */
  private settle(seen: Seen, d: Decision | null, refused: string | null): void {
    this.view = this.describe(seen, d, refused);
    this.publish();
  }

  private describe(seen: Seen | null, d: Decision | null, refused: string | null): BallastView {
    const o = this.options;
    const sizeBytes = seen?.space?.size_bytes ?? 0;
    const target = targetBytes(o.size, sizeBytes);
    const state: BallastStateName =
      refused !== null
        ? "refused"
        : seen?.exists
          ? seen.bytes >= target
            ? "held"
            : "creating"
          : this.memory.released
            ? "released"
            : "absent";
    const r = this.memory.released;
    const full = this.fullIn();
    let path: string | null;
    try {
      path = placePath(this.place());
    } catch {
      path = null;
    }
    return {
      state,
      path,
      bytes: seen?.bytes ?? 0,
      target_bytes: target,
      released: r ? { at: new Date(r.at).toISOString(), by: r.by, reason: r.reason ?? "" } : null,
      refused,
      next: refused ?? d?.reason ?? this.lastDecision,
      filesystem: seen?.space
        ? {
            size_bytes: seen.space.size_bytes,
            used_ratio: seen.space.used_ratio,
            full_in_seconds: Number.isFinite(full) ? full : null,
          }
        : null,
      lines: {
        release_used_percent: o.release_used_percent,
        release_full_horizon_seconds: o.release_full_horizon / 1000,
        create_used_percent: o.create_used_percent,
        recreate_after_seconds: o.recreate_after / 1000,
      },
    };
  }

  private publish(): void {
    const v = this.view;
    this.gBytes.set(v.bytes);
    this.gTarget.set(v.target_bytes);
    for (const s of BALLAST_STATES) this.gState.set({ state: s }, s === v.state ? 1 : 0);
  }

  state(): BallastState {
    return { ...this.summary(), ballast: this.view };
  }

  async close(): Promise<void> {
    this.step?.abort();
    await this.queue.catch(() => undefined);
    this.closeDir();
  }
}

/** What an event says of a hold or wait: no figures, so a moving number makes no new event. */
function stableMessage(d: Decision, seen: Seen): string {
  switch (d.code) {
    case "held":
      return `holding the emergency ballast (${size(seen.bytes)})`;
    case "release_line":
      return "no ballast taken while the WAL filesystem is past a release line";
    case "no_room":
      return "no ballast taken: it would push the WAL filesystem past create_used_percent";
    case "space_back":
      return "the ballast was given back; waiting for space to stay back for recreate_after";
    default:
      return `no ballast: ${d.reason}`;
  }
}

/** The path is a directory on device `dev` (false when it cannot be read). */
function onDevice(path: string, dev: number): boolean {
  try {
    return statSync(path).dev === dev;
  } catch {
    return false;
  }
}
