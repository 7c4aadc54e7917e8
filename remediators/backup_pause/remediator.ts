// backup_pause: the slow-WAL-fsync runbook's "systemctl stop backup.service; systemctl stop
// log-archiver.timer", done safely and undone. A listed unit is paused only while WAL fsync p99
// has been over the threshold for `for` and (a service) it is doing I/O; every pause has an end
// that does not need the agent (a transient systemd timer armed first), a maximum length and a
// daily budget; it is judged by the latency after it, and undone when latency recovers, when it
// did not help, or at its end.
import { Host } from "../../core/host/host.js";
import type { Counter, Gauge } from "prom-client";
import type { Config } from "../../core/config/schema.js";
import { parseDuration } from "../../core/config/units.js";
import { HistoryStore } from "../../core/history/store.js";
import type { Logger } from "../../core/log.js";
import { counter, gauge } from "../../core/metrics/define.js";
import { CoreMetrics, NS } from "../../core/metrics/registry.js";
import {
  ActionRefused,
  type Latest,
  RemediationMetrics,
  type Remediator,
  RemediatorBase,
  type RemediatorAction,
  type RemediatorDeps,
  type RemediatorSummary,
} from "../framework.js";
import {
  budgetLeft,
  choosePause,
  fmtMs,
  judgeHeld,
  LatencyWindow,
  pausedInLastDay,
  type PolicyConfig,
  Streak,
  type UnitFacts,
} from "./policy.js";
import { unitNameProblem } from "../../core/config/unit-name.js";
import {
  deadmanName,
  type PauseMethod,
  Systemd,
  SystemdError,
  unitKind,
  type UnitState,
} from "./systemd.js";
import { errorMessage } from "../../core/errors.js";
import { fsyncSlow, judgeFsync } from "../../judge/index.js";
import { type BioEvidence, bioEvidence } from "../../collectors/bio/evidence.js";

export const NAME = "backup_pause";
const STATE_KEY = "backup_pause.state";
/** How often units are looked at through systemctl while something is paused or the WAL is slow. */
const CHECK_EVERY_MS = 5000;
/** How long a freeze or SIGSTOP may take to show (a write in flight finishes first: 2.5 s seen). */
const SETTLE_MS = 15_000;

/** One pause the agent holds; persisted before the unit is touched, so a restart never forgets it. */
interface Hold {
  readonly unit: string;
  method: PauseMethod;
  readonly since: number;
  readonly deadline: number;
  readonly by: "agent" | "operator";
  readonly reason: string;
  readonly deadman: string;
  improvedAt: number | null;
}

interface Persisted {
  holds: Record<string, Hold>;
  /** Pause intervals per unit (last 48 h), for the daily budget. */
  intervals: Record<string, Array<{ start: number; end: number | null }>>;
  /** No automatic pause before this (after a pause that did not help). */
  cooldown: Record<string, number>;
}

export interface BackupUnitView {
  readonly unit: string;
  readonly kind: "service" | "timer";
  /** systemd's view, when asked (agentctl backups); null when systemctl did not answer. */
  readonly systemd: {
    readonly active: string;
    readonly sub: string;
    readonly freezer: string;
    readonly watchdog: boolean;
    readonly can_freeze: boolean;
  } | null;
  readonly paused: null | {
    readonly method: PauseMethod;
    readonly since: string;
    readonly until: string;
    readonly by: "agent" | "operator";
    readonly reason: string;
    readonly improved: boolean;
    readonly deadman: string;
  };
  readonly io_bytes_per_second: number | null;
  readonly paused_last_24h_seconds: number;
  readonly budget_left_seconds: number;
  readonly cooldown_until: string | null;
}

export interface BackupPauseState extends RemediatorSummary {
  readonly fsync: {
    readonly p99_seconds: number | null;
    readonly samples: number;
    readonly slow_for_seconds: number;
    readonly threshold_seconds: number;
    readonly for_seconds: number;
  };
  readonly units: BackupUnitView[];
}

/** What backup_pause reads of the configuration: its section and /proc. */
export type BackupPauseOptions = Config["remediators"]["backup_pause"] & {
  readonly procPath: string;
};

export function backupPauseOptions(c: Config): BackupPauseOptions {
  return { ...c.remediators.backup_pause, procPath: c.host.proc_path };
}

export class BackupPauseRemediator
  extends RemediatorBase<BackupPauseOptions>
  implements Remediator<BackupPauseOptions>
{
  private readonly systemd: Systemd;
  private readonly probe: LatencyWindow;
  private readonly db: LatencyWindow;
  private readonly slow = new Streak();
  private readonly recovered = new Map<string, Streak>();
  private readonly io = new Map<string, Array<{ t: number; bps: number }>>();
  private held: Persisted;
  /**
   * Holds in the persisted state for units not in remediators.backup_pause.units: never acted on
   * (the state is trusted only as far as the configuration agrees), kept in the file untouched.
   */
  private foreign: Record<string, Hold> = {};
  private lastProbeAt = 0;
  private lastDbAt = 0;
  private lastProcioAt = 0;
  /** The bio collector's evidence from the latest observation (null unless its eBPF tier runs). */
  private bio: BioEvidence | null = null;
  private lastCheck = 0;
  private lastTickAt = Date.now();
  private queue: Promise<unknown> = Promise.resolve();
  private pending = false;
  private readonly gPaused: Gauge<"unit">;
  private readonly cPausedSeconds: Counter<"unit">;
  private readonly gBudget: Gauge<"unit">;

  constructor(
    options: BackupPauseOptions,
    deps: RemediatorDeps,
    private readonly now: () => number = Date.now,
  ) {
    super(NAME, options, deps);
    const c = options;
    const registry = deps.registry;
    this.systemd = new Systemd(c.systemctl, c.systemd_run);
    const keep = Math.max(c.window, c.improve_within, c.resume_after, 60_000) * 2;
    this.probe = new LatencyWindow(keep);
    this.db = new LatencyWindow(keep);
    this.held = this.load();
    for (const h of Object.values(this.foreign)) {
      this.log.warn(
        { unit: h.unit },
        `backup_pause: the state holds ${h.unit} paused, but it is not in ` +
          `remediators.backup_pause.units: left alone (its dead-man's switch ends the pause)`,
      );
    }
    this.gPaused = gauge(registry, {
      name: `${NS}backup_paused`,
      help: "1 while the agent holds this listed unit paused (frozen, SIGSTOPped or, a timer, stopped).",
      labelNames: ["unit"],
    });
    this.cPausedSeconds = counter(registry, {
      name: `${NS}backup_paused_seconds_total`,
      help: "Time this unit spent paused by the agent.",
      labelNames: ["unit"],
    });
    this.gBudget = gauge(registry, {
      name: `${NS}backup_budget_remaining_seconds`,
      help: "Pause time this unit has left in the last 24 h (daily_budget minus time paused).",
      labelNames: ["unit"],
    });
    this.refreshGauges();
  }

  private get policy(): PolicyConfig {
    const c = this.options;
    return {
      threshold: c.fsync_p99_threshold / 1000,
      resumeBelow: c.resume_below / 1000,
      forMs: c.for,
      windowMs: c.window,
      resumeAfterMs: c.resume_after,
      improveWithinMs: c.improve_within,
      maxPauseMs: c.max_pause,
      dailyBudgetMs: c.daily_budget,
      minIoBytesPerSecond: c.min_io_per_second,
    };
  }

  protected override reconfigured(): void {
    this.refreshGauges();
  }

  /**
   * Pauses from before a restart: resumed or adopted (queued ahead of any new decision; not
   * awaited, so a slow systemd cannot hold up the agent's start).
   */
  start(): Promise<void> {
    this.reconcileAtStart().catch((e: unknown) =>
      this.log.error({ err: errorMessage(e) }, "backup_pause: reconcile at start failed"),
    );
    return Promise.resolve();
  }

  /** The agent is stopping: nothing it paused stays paused behind it. */
  stop(reason: string): Promise<string[]> {
    return this.resumeAll(reason);
  }

  // ------------------------------------------------------------------ persisted state

  private load(): Persisted {
    const empty: Persisted = { holds: {}, intervals: {}, cooldown: {} };
    const raw = this.history?.getState(STATE_KEY);
    if (!raw) return empty;
    try {
      const p = JSON.parse(raw) as Partial<Persisted>;
      const listed = new Set(this.options.units);
      const holds: Record<string, Hold> = {};
      for (const [u, h] of Object.entries(p.holds ?? {})) {
        if (listed.has(u) && h.unit === u) holds[u] = h;
        else this.foreign[u] = h;
      }
      return { holds, intervals: p.intervals ?? {}, cooldown: p.cooldown ?? {} };
    } catch (e) {
      this.log.error(
        { err: errorMessage(e) },
        "backup_pause: persisted state unreadable; starting empty (dead-man timers still resume anything paused)",
      );
      return empty;
    }
  }

  /** Durable at once. False when it could not be written (then nothing new may be paused). */
  private save(): boolean {
    const cut = this.now() - 2 * 86_400_000;
    for (const [u, ivs] of Object.entries(this.held.intervals))
      this.held.intervals[u] = ivs.filter((iv) => iv.end === null || iv.end >= cut);
    const all: Persisted = { ...this.held, holds: { ...this.foreign, ...this.held.holds } };
    return this.history?.setState(STATE_KEY, JSON.stringify(all)) ?? false;
  }

  private intervals(unit: string) {
    return (this.held.intervals[unit] ??= []);
  }

  // ------------------------------------------------------------------ signals

  /** Called every second by the core loop: cheap bookkeeping; systemctl only when needed. */
  tick(latest: Latest, now = this.now()): void {
    this.ingest(latest);
    const p = this.policy;
    const cur = this.p99(now - p.windowMs, now);
    // The judge's comparison at this remediator's own figures: when to act, not what status calls slow.
    const limits = { warn: p.resumeBelow, crit: p.threshold };
    this.slow.update(now, cur === null ? null : fsyncSlow(cur.p99, limits));
    for (const [unit, h] of Object.entries(this.held.holds)) {
      const post = this.p99(Math.max(h.since, now - p.windowMs), now);
      const s = this.recovered.get(unit) ?? new Streak();
      this.recovered.set(unit, s);
      s.update(now, post === null ? null : judgeFsync(post.p99, limits) === "ok");
      // Paused time counts as it passes (a clock jump back counts nothing).
      const dt = Math.min(Math.max(0, now - this.lastTickAt), 5000);
      this.cPausedSeconds.labels(unit).inc(dt / 1000);
    }
    this.lastTickAt = now;
    this.refreshGauges();
    const attention =
      Object.keys(this.held.holds).length > 0 ||
      (this.mode !== "off" && this.slow.heldFor(now) >= p.forMs);
    if (attention && now - this.lastCheck >= CHECK_EVERY_MS) {
      this.lastCheck = now;
      this.enqueue(() => this.evaluate()).catch(() => undefined); // logged by enqueue
    }
  }

  private ingest(latest: Latest): void {
    const fp = latest.get("fsync_probe");
    if (fp && fp.at !== this.lastProbeAt) {
      this.lastProbeAt = fp.at;
      const vs = fp.observation.probes.flatMap((p) =>
        p.state === "ok" ? [p.seconds] : p.state === "stalled" ? [p.stalled_seconds] : [],
      );
      if (vs.length > 0) this.probe.push(fp.at, Math.max(...vs));
    }
    const wal = latest.get("wal");
    const dbv = wal?.observation.database;
    if (wal && wal.at !== this.lastDbAt && dbv && dbv.ok && dbv.p99 !== null) {
      this.lastDbAt = wal.at;
      this.db.push(wal.at, dbv.p99);
    }
    // The eBPF tier's view of the last interval, kept for the record of a pause that did not help.
    this.bio = bioEvidence(
      latest.get("bio")?.observation,
      latest
        .get("diskstats")
        ?.observation.roles.filter((r) => r.role === "wal")
        .flatMap((r) => r.chain.map((n) => n.name)) ?? [],
    );
    const pio = latest.get("procio");
    if (pio && pio.at !== this.lastProcioAt && pio.observation.interval_seconds !== null) {
      this.lastProcioAt = pio.at;
      const walDevs = this.walDeviceNumbers(latest);
      const listed = new Set(this.options.units);
      const seen = new Map(pio.observation.units.map((u) => [u.unit, u]));
      for (const unit of listed) {
        if (unitKind(unit) !== "service") continue;
        const u = seen.get(unit);
        // io.stat names devices: count only the WAL's. Process sums cannot tell devices apart.
        const onWal =
          u && u.source === "io.stat" && walDevs.size > 0
            ? Object.entries(u.devices)
                .filter(([d]) => walDevs.has(d))
                .reduce((a, [, v]) => a + v.read_bps + v.write_bps, 0)
            : null;
        const bps = u ? (onWal ?? u.read_bps + u.write_bps) : 0;
        const arr = this.io.get(unit) ?? [];
        arr.push({ t: pio.at, bps });
        const cut = pio.at - Math.max(this.policy.windowMs, 60_000);
        while (arr.length > 0 && (arr[0]?.t ?? 0) < cut) arr.shift();
        this.io.set(unit, arr);
      }
    }
  }

  private walDeviceNumbers(latest: Latest): Set<string> {
    const d = latest.get("diskstats")?.observation;
    return new Set(
      d?.roles
        .filter((r) => r.role === "wal")
        .flatMap((r) => r.chain.map((n) => `${n.major}:${n.minor}`)) ?? [],
    );
  }

  /** WAL fsync p99 over [from, to] from the configured source(s); the worse of the two under "auto". */
  private p99(from: number, to: number): { p99: number; n: number } | null {
    const src = this.options.source;
    const a = src === "database" ? null : this.probe.p99(from, to);
    const b = src === "probe" ? null : this.db.p99(from, to);
    if (a && b) return { p99: Math.max(a.p99, b.p99), n: a.n + b.n };
    return a ?? b;
  }

  private ioOf(unit: string): number | null {
    const arr = this.io.get(unit);
    return arr && arr.length > 0 ? Math.max(...arr.map((x) => x.bps)) : null;
  }

  // ------------------------------------------------------------------ decisions

  /** Serialises every systemd conversation: the tick, operators' commands and shutdown never interleave. */
  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch((e: Error) =>
      this.log.error({ err: e.message }, "backup_pause: evaluation failed"),
    );
    return p;
  }

  private async evaluate(): Promise<void> {
    if (this.pending) return;
    this.pending = true;
    try {
      await this.reviewHolds();
      if (this.mode !== "off") await this.considerPausing();
    } finally {
      this.pending = false;
    }
  }

  /** Each held unit: still paused as we left it? Time to resume? */
  private async reviewHolds(): Promise<void> {
    const now = this.now();
    const p = this.policy;
    for (const h of Object.values(this.held.holds)) {
      let st: UnitState;
      try {
        st = await this.systemd.show(h.unit);
      } catch (e) {
        this.decisions.note(
          "check_failed",
          "warn",
          `cannot ask systemd about ${h.unit}: ${errorMessage(e)} (its dead-man's switch still ends the pause)`,
        );
        continue;
      }
      if (!this.isPaused(st, h.method)) {
        this.closeHold(h.unit, now);
        const byDeadman = now >= h.deadline - 2000;
        this.decisions.note(
          byDeadman ? "switch_fired" : "resumed_outside",
          byDeadman ? "info" : "warn",
          byDeadman
            ? `${h.unit} was resumed by its dead-man's switch at the end of the pause`
            : `${h.unit} is running again, but not by the agent's hand (an operator, ` +
                `a restart of the unit, or systemd's thaw before a job): the agent lets it be`,
          { unit: h.unit },
          true,
        );
        continue;
      }
      if (this.mode === "off") {
        await this.resume(h, "mode_off", "backup_pause was switched off: nothing stays paused");
        continue;
      }
      const post = this.p99(Math.max(h.since, now - p.windowMs), now);
      const v = judgeHeld(p, h, now, post, this.recovered.get(h.unit)?.heldFor(now) ?? 0);
      // Improvement is recorded even when recovery came so fast that this same look ends the pause.
      if (
        h.improvedAt === null &&
        ((v.kind === "keep" && v.improved) || (v.kind === "resume" && v.reason === "recovered"))
      ) {
        h.improvedAt = now;
        this.save();
        this.decisions.note(
          "improved",
          "info",
          `WAL fsync p99 back under ${fmtMs(p.threshold)} ${Math.round((now - h.since) / 1000)} s ` +
            `after pausing ${h.unit}`,
          { unit: h.unit, p99: post?.p99 },
          true,
        );
      }
      if (v.kind === "keep") continue;
      if (v.reason === "not_improving") this.held.cooldown[h.unit] = now + this.options.cooldown;
      await this.resume(h, v.reason, v.message);
    }
  }

  private async considerPausing(): Promise<void> {
    const now = this.now();
    const p = this.policy;
    const slowMs = this.slow.heldFor(now);
    if (slowMs < p.forMs) return;
    const cur = this.p99(now - p.windowMs, now);
    const why =
      `WAL fsync p99 ${cur ? fmtMs(cur.p99) : "?"} above ${fmtMs(p.threshold)} for ` +
      `${Math.round(slowMs / 1000)} s`;
    if (this.breaker.open) {
      this.lastDecision = `not pausing: circuit breaker open (agentctl remediations reset-breaker ${NAME})`;
      this.decisions.note("breaker_open", "warn", this.lastDecision);
      return;
    }
    const candidates: string[] = [];
    for (const unit of this.options.units) {
      if (this.held.holds[unit]) continue;
      if ((this.held.cooldown[unit] ?? 0) > now) {
        this.decisions.note(
          "skipped",
          "info",
          `not pausing ${unit}: its last pause did not help; cooling down until ` +
            `${new Date(this.held.cooldown[unit] ?? 0).toISOString()}`,
        );
        continue;
      }
      let st: UnitState;
      try {
        st = await this.systemd.show(unit);
      } catch (e) {
        this.failed(`cannot ask systemd about ${unit}: ${errorMessage(e)}`);
        continue;
      }
      const choice = choosePause(p, this.facts(st), budgetLeft(p, this.intervals(unit), now));
      if (choice.kind === "skip") continue;
      if (choice.kind === "refuse") {
        this.lastDecision = `refused ${unit}: ${choice.reason}`;
        this.decisions.note(
          "refused",
          "warn",
          `${why}, but not pausing ${unit}: ${choice.reason}`,
          { unit },
        );
        continue;
      }
      candidates.push(unit);
      if (this.mode === "dry-run") {
        this.lastDecision =
          `dry-run: would pause ${unit} (${choice.method}, at most ` +
          `${Math.round(choice.forMs / 60_000)} min)`;
        this.decisions.note(
          "plan",
          "info",
          `dry-run: ${why}; would pause ${unit} by ${choice.method} for at most ` +
            `${Math.round(choice.forMs / 60_000)} min`,
          { unit, method: choice.method },
        );
        this.count("planned", 0);
        continue;
      }
      await this.pause(
        unit,
        choice.method,
        choice.forMs,
        "agent",
        unitKind(unit) === "service"
          ? `${why}; ${unit} doing ${((this.ioOf(unit) ?? 0) / 1048576).toFixed(1)} MiB/s of I/O`
          : why,
      );
    }
    if (candidates.length === 0) {
      this.lastDecision = `${why}, but no listed unit is active and doing I/O: the backups are not the cause`;
      this.decisions.note("no_candidate", "info", this.lastDecision);
    }
  }

  private facts(st: UnitState): UnitFacts {
    return {
      unit: st.unit,
      kind: st.kind,
      active: st.active === "active",
      load: st.load,
      watchdog: st.watchdogUsec > 0,
      canFreeze: st.canFreeze,
      ioBytesPerSecond: this.ioOf(st.unit),
    };
  }

  /** Whether the unit is held the way `method` holds it. */
  private isPaused(st: UnitState, method: PauseMethod): boolean {
    switch (method) {
      case "freeze":
        return st.freezer === "frozen" || st.freezer === "freezing";
      case "stop-timer":
        return st.active !== "active";
      case "sigstop":
        return st.active === "active" && processState(this.options.procPath, st.mainPid) === "T";
    }
  }

  private failed(message: string): void {
    this.count("failed");
    this.breakerFailed(
      "breaker_opened",
      (n) =>
        `circuit breaker opened after ${n} consecutive failures; ` +
        `no more pauses until an operator resets it (agentctl remediations reset-breaker ${NAME})`,
    );
    this.lastDecision = `failed: ${message}`;
    this.decisions.note("failed", "warn", message, undefined, true);
  }

  /**
   * The safety net first, then the pause: record (durable) -> journal -> dead-man's switch armed
   * -> pause -> verify. Any step failing undoes the ones before it.
   */
  private async pause(
    unit: string,
    method0: PauseMethod,
    forMs: number,
    by: "agent" | "operator",
    reason: string,
  ): Promise<Hold> {
    const now = this.now();
    const hold: Hold = {
      unit,
      method: method0,
      since: now,
      deadline: now + forMs,
      by,
      reason,
      deadman: deadmanName(unit),
      improvedAt: null,
    };
    this.held.holds[unit] = hold;
    this.intervals(unit).push({ start: now, end: null });
    const undoRecord = () => {
      delete this.held.holds[unit];
      this.intervals(unit).pop();
      this.save();
    };
    if (!this.save()) {
      undoRecord();
      throw new ActionRefused(
        `cannot record the pause durably (history: ${this.history?.stats().write_state ?? "none"}); ` +
          `not pausing what could be forgotten`,
      );
    }
    let id = -1;
    try {
      id =
        this.journal?.begin(NAME, "pause", unit, {
          method: method0,
          for_seconds: forMs / 1000,
          by,
          reason,
        }) ?? -1;
    } catch (e) {
      undoRecord();
      throw new ActionRefused(`cannot write the journal: ${errorMessage(e)}`);
    }
    this.busy = unit;
    // Whether a pause command was sent: a switch that failed to arm leaves nothing to undo.
    let sent = false;
    try {
      let method = method0;
      await this.systemd.arm(unit, method, forMs / 1000);
      try {
        sent = true;
        await this.systemd.pause(unit, method);
      } catch (e) {
        if (!(method === "freeze" && e instanceof SystemdError && e.freezeUnsupported)) throw e;
        // cgroup v1: "does not support freezing". SIGSTOP through systemd, and a switch that sends SIGCONT.
        method = "sigstop";
        hold.method = method;
        this.save();
        await this.systemd.arm(unit, method, forMs / 1000);
        await this.systemd.pause(unit, method);
        this.decisions.note(
          "fallback",
          "info",
          `${unit} cannot be frozen here (${e.stderr.trim()}): paused with SIGSTOP through systemd instead`,
          { unit },
          true,
        );
      }
      if (!(await this.settle(unit, (s) => this.isPaused(s, method))))
        throw new Error(`${unit} did not show as paused within ${SETTLE_MS / 1000} s`);
      this.closeJournal(id, "done", {
        method,
        until: new Date(hold.deadline).toISOString(),
        deadman: `${hold.deadman}.timer`,
      });
      this.breaker.succeeded();
      this.count("done");
      this.recovered.set(unit, new Streak());
      this.lastDecision = `paused ${unit} (${method}) until ${new Date(hold.deadline).toISOString()}`;
      this.decisions.note(
        "paused",
        "warn",
        `paused ${unit} by ${method} until ${new Date(hold.deadline).toISOString()} (dead-man's ` +
          `switch ${hold.deadman}.timer armed): ${reason}`,
        { unit, method, by, since: now, deadline: hold.deadline },
        true,
      );
      this.refreshGauges();
      return hold;
    } catch (e) {
      const msg = errorMessage(e);
      // Undo whatever got done: resume (only if a pause was sent) and disarm.
      if (sent) await this.systemd.resume(unit, hold.method).catch(() => undefined);
      await this.systemd.disarm(unit);
      undoRecord();
      this.closeJournal(id, "failed", { error: msg });
      this.failed(`pausing ${unit} failed: ${msg} (left running)`);
      throw e;
    } finally {
      this.busy = null;
      this.refreshGauges();
    }
  }

  private async settle(unit: string, pred: (s: UnitState) => boolean): Promise<boolean> {
    const end = this.now() + SETTLE_MS;
    for (;;) {
      try {
        if (pred(await this.systemd.show(unit))) return true;
      } catch {
        // keep trying until the end
      }
      if (this.now() >= end) return false;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  private closeHold(unit: string, now: number): void {
    delete this.held.holds[unit];
    for (const iv of this.intervals(unit)) if (iv.end === null) iv.end = now;
    this.recovered.delete(unit);
    this.save();
    this.refreshGauges();
  }

  /** Resume -> disarm -> verify -> record closed; journalled like the pause. */
  private async resume(h: Hold, reason: string, message: string): Promise<void> {
    const id = (() => {
      try {
        return this.journal?.begin(NAME, "resume", h.unit, { reason, method: h.method }) ?? -1;
      } catch {
        return -1; // the journal is down: resuming is still right
      }
    })();
    this.busy = h.unit;
    try {
      let err: Error | null = null;
      try {
        await this.systemd.resume(h.unit, h.method);
      } catch (e) {
        err = e as Error; // e.g. the unit stopped meanwhile; verified below
      }
      const ok = await this.settle(h.unit, (s) => !this.isPaused(s, h.method));
      if (!ok) {
        this.closeJournal(id, "failed", { error: err?.message ?? "still paused" });
        this.failed(
          `resuming ${h.unit} failed: ${err?.message ?? "still paused"}; ` +
            `its dead-man's switch ends the pause at ${new Date(h.deadline).toISOString()}`,
        );
        return;
      }
      await this.systemd.disarm(h.unit);
      this.closeHold(h.unit, this.now());
      this.closeJournal(id, "done", { reason });
      this.lastDecision = `resumed ${h.unit}: ${message}`;
      // Not the cure: what the eBPF tier saw (whose I/O, how slow), when it runs.
      const bio = reason === "not_improving" ? this.bio : null;
      this.decisions.note(
        reason === "not_improving" ? "not_the_cure" : "resumed",
        reason === "not_improving" ? "warn" : "info",
        `resumed ${h.unit} after ${Math.round((this.now() - h.since) / 1000)} s: ${message}` +
          (bio ? `; ${bio.text}` : ""),
        {
          unit: h.unit,
          reason,
          method: h.method,
          ...(bio ? { bio: { wal: bio.wal, units: bio.units } } : {}),
        },
        true,
      );
    } finally {
      this.busy = null;
    }
  }

  // ------------------------------------------------------------------ start, stop, operators

  /**
   * At start: every hold in the persisted state is reconciled with systemd. Past its end: resumed
   * (or found resumed by its switch). Still running: adopted, its switch re-armed for the time
   * left. Interrupted journal rows are closed as recovered. Never forgotten.
   */
  private async reconcileAtStart(): Promise<void> {
    await this.enqueue(async () => {
      const now = this.now();
      for (const h of Object.values(this.held.holds)) {
        let st: UnitState;
        try {
          st = await this.systemd.show(h.unit);
        } catch (e) {
          this.decisions.note(
            "check_failed",
            "warn",
            `at start, cannot ask systemd about ${h.unit}, paused since ` +
              `${new Date(h.since).toISOString()}: ${errorMessage(e)}; will retry`,
            undefined,
            true,
          );
          continue;
        }
        if (!this.isPaused(st, h.method)) {
          this.closeHold(h.unit, Math.min(now, h.deadline));
          this.decisions.note(
            "switch_fired",
            "info",
            `${h.unit}, paused at ${new Date(h.since).toISOString()}, ` +
              `was resumed while the agent was down (its dead-man's switch or the agent unit's ` +
              `ExecStopPost)`,
            { unit: h.unit },
            true,
          );
        } else if (now >= h.deadline || this.mode === "off") {
          await this.resume(h, "deadline", "the pause ended while the agent was down");
        } else {
          if (!(await this.systemd.armed(h.unit)))
            await this.systemd.arm(h.unit, h.method, (h.deadline - now) / 1000);
          this.decisions.note(
            "adopted",
            "info",
            `${h.unit} is still paused (${h.method}) from before the restart: ` +
              `kept until ${new Date(h.deadline).toISOString()}, dead-man's switch armed`,
            { unit: h.unit },
            true,
          );
        }
      }
      for (const h of Object.values(this.foreign)) {
        this.decisions.note(
          "not_listed",
          "warn",
          `the state holds ${h.unit} paused since ${new Date(h.since).toISOString()}, ` +
            `but it is not in remediators.backup_pause.units: left alone (its dead-man's switch ends ` +
            `the pause)`,
          { unit: h.unit },
          true,
        );
      }
      for (const row of this.journal?.unfinished(NAME) ?? [])
        this.closeJournal(row.id, "recovered", {
          note: "interrupted by a restart; reconciled with systemd at start",
          held: Boolean(this.held.holds[row.target]),
        });
      // A listed unit frozen by someone else is reported, never thawed behind an operator's back.
      for (const unit of this.options.units) {
        if (this.held.holds[unit] || unitKind(unit) !== "service") continue;
        try {
          const st = await this.systemd.show(unit);
          if (st.freezer === "frozen")
            this.decisions.note(
              "foreign_pause",
              "warn",
              `${unit} is frozen, but not by the agent: left alone`,
              { unit },
              true,
            );
        } catch {
          // systemd not reachable: nothing to report on
        }
      }
    });
  }

  /** Stopping: nothing the agent paused stays paused behind it (ExecStopPost covers a crash). */
  async resumeAll(reason: string): Promise<string[]> {
    return this.enqueue(async () => {
      const done: string[] = [];
      for (const h of Object.values(this.held.holds)) {
        await this.resume(h, "agent_stopping", reason);
        if (!this.held.holds[h.unit]) done.push(h.unit);
      }
      return done;
    });
  }

  /** Units the persisted state holds that the configuration does not list (never touched). */
  notListed(): string[] {
    return Object.keys(this.foreign);
  }

  /** agentctl backups pause UNIT [--for D] and resume UNIT (root). */
  readonly actions = new Map<string, RemediatorAction>([
    [
      "pause",
      (q) => {
        const forText = q.get("for");
        let forMs: number | null = null;
        if (forText) {
          const d = parseDuration(forText);
          if (!d.ok) return Promise.reject(new ActionRefused(`--for: ${d.reason}`));
          forMs = d.value;
        }
        return this.operatorPause(q.get("unit") ?? "", forMs);
      },
    ],
    ["resume", (q) => this.operatorResume(q.get("unit") ?? "")],
  ]);

  /** agentctl backups pause UNIT [--for D] (root): the same safety net and journal. */
  async operatorPause(unit: string, forMs: number | null): Promise<BackupUnitView> {
    return this.enqueue(async () => {
      const c = this.options;
      checkRequested(unit);
      if (!c.units.includes(unit))
        throw new ActionRefused(
          `${unit} is not in remediators.backup_pause.units (${c.units.join(", ")}): ` +
            `the agent never touches other units`,
        );
      if (this.mode === "off") throw new ActionRefused("backup_pause is off in the configuration");
      if (this.held.holds[unit])
        throw new ActionRefused(
          `${unit} is already paused until ${new Date(this.held.holds[unit]?.deadline ?? 0).toISOString()}`,
        );
      const st = await this.systemd.show(unit);
      const p = this.policy;
      const choice = choosePause(
        p,
        this.facts(st),
        budgetLeft(p, this.intervals(unit), this.now()),
        { manual: { forMs: forMs ?? p.maxPauseMs } },
      );
      if (choice.kind !== "pause") {
        this.decisions.note(
          "refused",
          "warn",
          `operator asked to pause ${unit}: refused, ${choice.reason}`,
          { unit },
          true,
        );
        throw new ActionRefused(choice.reason);
      }
      await this.pause(
        unit,
        choice.method,
        choice.forMs,
        "operator",
        `an operator asked (agentctl backups pause${forMs ? ` --for ${Math.round(forMs / 1000)}s` : ""})`,
      );
      return (await this.views([unit]))[0] as BackupUnitView;
    });
  }

  async operatorResume(unit: string): Promise<BackupUnitView> {
    return this.enqueue(async () => {
      checkRequested(unit);
      const h = this.held.holds[unit];
      if (!h) throw new ActionRefused(`${unit} is not paused by the agent (nothing to resume)`);
      await this.resume(h, "operator", "an operator asked (agentctl backups resume)");
      if (this.held.holds[unit])
        throw new Error(
          `${unit} could not be resumed; its dead-man's switch ends the pause at ${new Date(h.deadline).toISOString()}`,
        );
      return (await this.views([unit]))[0] as BackupUnitView;
    });
  }

  // ------------------------------------------------------------------ views and metrics

  private refreshGauges(): void {
    const now = this.now();
    const p = this.policy;
    for (const unit of this.options.units) {
      this.gPaused.set({ unit }, this.held.holds[unit] ? 1 : 0);
      this.cPausedSeconds.labels(unit).inc(0);
      this.gBudget.set({ unit }, budgetLeft(p, this.intervals(unit), now) / 1000);
    }
  }

  /** Without systemd's view (cheap: for status). */
  state(): BackupPauseState {
    return this.describe(this.options.units.map((u) => [u, null] as const));
  }

  /** With systemd's view of each listed unit (agentctl backups). */
  async detailed(): Promise<BackupPauseState> {
    return this.describeWithSystemd(this.options.units);
  }

  private async views(units: string[]): Promise<BackupUnitView[]> {
    return (await this.describeWithSystemd(units)).units;
  }

  /** describe() with systemd asked about each unit (null where it did not answer). */
  private async describeWithSystemd(units: readonly string[]): Promise<BackupPauseState> {
    const sts = await Promise.all(units.map((u) => this.systemd.show(u).catch(() => null)));
    return this.describe(units.map((u, i) => [u, sts[i] ?? null] as const));
  }

  private describe(units: ReadonlyArray<readonly [string, UnitState | null]>): BackupPauseState {
    const now = this.now();
    const p = this.policy;
    const cur = this.p99(now - p.windowMs, now);
    const iso = (t: number) => new Date(t).toISOString();
    return {
      ...this.summary(),
      fsync: {
        p99_seconds: cur?.p99 ?? null,
        samples: cur?.n ?? 0,
        slow_for_seconds: Math.round(this.slow.heldFor(now) / 1000),
        threshold_seconds: p.threshold,
        for_seconds: p.forMs / 1000,
      },
      units: units.map(([unit, st]) => {
        const h = this.held.holds[unit];
        const cd = this.held.cooldown[unit] ?? 0;
        return {
          unit,
          kind: unitKind(unit),
          systemd: st
            ? {
                active: st.active,
                sub: st.sub,
                freezer: st.freezer,
                watchdog: st.watchdogUsec > 0,
                can_freeze: st.canFreeze,
              }
            : null,
          paused: h
            ? {
                method: h.method,
                since: iso(h.since),
                until: iso(h.deadline),
                by: h.by,
                reason: h.reason,
                improved: h.improvedAt !== null,
                deadman: `${h.deadman}.timer`,
              }
            : null,
          io_bytes_per_second: this.ioOf(unit),
          paused_last_24h_seconds: Math.round(pausedInLastDay(this.intervals(unit), now) / 1000),
          budget_left_seconds: Math.round(budgetLeft(p, this.intervals(unit), now) / 1000),
          cooldown_until: cd > now ? iso(cd) : null,
        };
      }),
    };
  }

  async close(): Promise<void> {
    await this.queue.catch(() => undefined);
  }
}

/** A unit name from a request: systemd's rules first, so nothing odd reaches a message or systemctl. */
function checkRequested(unit: string): void {
  const p = unitNameProblem(unit, ["service", "timer"]);
  if (p !== null)
    throw new ActionRefused(
      `${JSON.stringify(unit.slice(0, 300))} is not a usable systemd unit name: it ${p}`,
    );
}

/** A process's state letter from <proc>/<pid>/stat ("T" when stopped), or null. */
function processState(procPath: string, pid: number): string | null {
  if (pid <= 0) return null;
  return new Host({ procPath }).process(pid).stat()?.state ?? null;
}

/**
 * `stemedb-agent --resume-paused`, the agent unit's ExecStopPost: when the agent is gone (crash,
 * OOM kill, watchdog, stop), resume every unit its persisted state says it holds. It only undoes.
 * Returns the units still held afterwards (their dead-man timers end those pauses).
 */
export async function resumePaused(
  config: Config,
  log: Logger,
): Promise<{ resumed: string[]; left: string[]; not_listed: string[] }> {
  const core = new CoreMetrics();
  const history = new HistoryStore({
    stateDir: config.agent.state_dir,
    retention: config.history,
    log,
    metrics: core,
  });
  try {
    const r = new BackupPauseRemediator(backupPauseOptions(config), {
      history,
      metrics: new RemediationMetrics(core.registry),
      registry: core.registry,
      log,
    });
    const resumed = await r.resumeAll("the agent stopped (ExecStopPost)");
    return {
      resumed,
      left: r
        .state()
        .units.filter((u) => u.paused)
        .map((u) => u.unit),
      not_listed: r.notListed(),
    };
  } finally {
    history.close();
  }
}
