// What every remediator shares: a mode (off, dry-run, on), a journal row written before acting
// and completed after, an event for every decision (taken, skipped and why, failed), a cooldown,
// and a circuit breaker that stops the remediator after repeated failures until an operator
// resets it (agentctl remediations reset-breaker NAME).
import type { Counter, Gauge, Registry } from "prom-client";
import { Conditions } from "../core/conditions.js";
import { errorMessage } from "../core/errors.js";
import { Journal } from "../core/history/journal.js";
import type { HistoryStore } from "../core/history/store.js";
import type { Logger } from "../core/log.js";
import { counter, gauge } from "../core/metrics/define.js";
import { NS } from "../core/metrics/registry.js";

export type Mode = "off" | "dry-run" | "on";

/** The collectors' latest observations, as the core hands them to remediators each tick. */
import type { Latest } from "../collectors/observations.js";
export type { Latest };

/**
 * What the agent needs of every remediator: a name and mode, a lifecycle (start, a tick each
 * second, new options at reload, close), a summary, the operator's reset, and what only some
 * offer (undo, extra operator actions). The shared part (journal, decisions, breaker, mode
 * metrics) is RemediatorBase.
 */
export interface Remediator<Options = unknown> {
  readonly name: string;
  readonly mode: Mode;
  /** Before any collector runs: half-done work from before a restart is resolved (or queued). */
  start(): Promise<void>;
  /** Called by the core loop every second; never blocks. */
  tick(latest: Latest, now: number): void;
  /** A reload: this remediator's part of the new configuration. */
  setOptions(options: Options): void;
  state(): RemediatorSummary;
  /** agentctl remediations reset-breaker NAME. */
  resetBreaker(): void;
  /** agentctl remediations undo NAME TARGET, for remediators whose actions can be reversed. */
  undo?(target: string): Promise<unknown>;
  /** Operator actions beyond reset and undo, by name (admin socket); refusals are ActionRefused. */
  readonly actions?: ReadonlyMap<string, RemediatorAction>;
  /** The state with what is costly to find out (asks outside the agent): for a detail view. */
  detailed?(): Promise<RemediatorSummary>;
  /** The agent is stopping: undo what must not outlive it (the caller bounds the wait). */
  stop?(reason: string): Promise<unknown>;
  close(): Promise<void>;
}

/** An operator's request (the query's parameters) and its answer. */
export type RemediatorAction = (params: URLSearchParams) => Promise<unknown>;

/** The refusal of an operator's request: the operator's answer, not the agent's failure. */
export class ActionRefused extends Error {
  override readonly name = "ActionRefused";
}

/** What every remediator is built with. */
export interface RemediatorDeps {
  /** Null when nothing may be recorded (no journal, no events, no persisted state). */
  readonly history: HistoryStore | null;
  readonly metrics: RemediationMetrics;
  /** Where a remediator registers metrics of its own. */
  readonly registry: Registry;
  readonly log: Logger;
}

/** The options every remediator has. */
export interface BaseOptions {
  readonly mode: Mode;
  readonly breaker_after: number;
}

/** What every remediator reports about itself (agentctl remediations, status). */
export interface RemediatorSummary {
  readonly name: string;
  readonly mode: Mode;
  readonly breaker_open: boolean;
  readonly consecutive_failures: number;
  /** What it is acting on right now, if anything. */
  readonly busy: string | null;
  readonly last_decision: string;
}

export type Outcome = "done" | "failed" | "skipped" | "planned" | "aborted";
const MODES: readonly Mode[] = ["off", "dry-run", "on"];

// The journal belongs to the history layer (its writes share the store's write-state handling).
export { Journal, type JournalRow } from "../core/history/journal.js";
export { HistoryWriteError } from "../core/history/store.js";

export class Breaker {
  private failures = 0;
  private openSince: number | null = null;
  constructor(private readonly threshold = 3) {}
  get open(): boolean {
    return this.openSince !== null;
  }
  get since(): number | null {
    return this.openSince;
  }
  /** Returns true when this failure opened the breaker. */
  failed(): boolean {
    this.failures++;
    if (this.openSince === null && this.failures >= this.threshold) {
      this.openSince = Date.now();
      return true;
    }
    return false;
  }
  succeeded(): void {
    this.failures = 0;
  }
  reset(): void {
    this.failures = 0;
    this.openSince = null;
  }
  get consecutiveFailures(): number {
    return this.failures;
  }
}

export class RemediationMetrics {
  readonly actions: Counter<"remediator" | "outcome">;
  private readonly mode: Gauge<"remediator" | "mode">;
  private readonly breaker: Gauge<"remediator">;
  constructor(registry: Registry) {
    this.actions = counter(registry, {
      name: `${NS}remediation_actions_total`,
      help: "Remediation decisions by outcome: done, failed, aborted (acted), planned (dry-run), skipped.",
      labelNames: ["remediator", "outcome"],
    });
    this.mode = gauge(registry, {
      name: `${NS}remediation_mode`,
      help: "The remediator's mode as a state set (off, dry-run, on).",
      labelNames: ["remediator", "mode"],
    });
    this.breaker = gauge(registry, {
      name: `${NS}remediation_breaker_open`,
      help: "1 while the remediator's circuit breaker is open (stopped after repeated failures until reset).",
      labelNames: ["remediator"],
    });
  }
  setMode(remediator: string, mode: Mode): void {
    for (const m of MODES) this.mode.set({ remediator, mode: m }, m === mode ? 1 : 0);
  }
  setBreaker(remediator: string, open: boolean): void {
    this.breaker.set({ remediator }, open ? 1 : 0);
  }
}

/** Records a decision as an event, but only when it differs from the last one (no event storm from a 1 s tick). */
export class DecisionLog {
  /** The last decision is a condition: an event is due when it changes (or when always). */
  private readonly decision = new Conditions<"decision", string>();
  constructor(
    private readonly remediator: string,
    private readonly history: HistoryStore | null,
    private readonly log: Logger,
  ) {}
  note(
    kind: string,
    severity: "info" | "warn" | "crit",
    message: string,
    data?: unknown,
    always = false,
  ): void {
    const changed = this.decision.set("decision", `${kind}\u0000${message}`) !== null;
    if (!always && !changed) return;
    this.history?.event({
      class: "remediation",
      kind: `${this.remediator}.${kind}`,
      severity,
      subject: this.remediator,
      message,
      data,
    });
    this.log[severity === "info" ? "info" : "warn"]({ remediator: this.remediator, kind }, message);
  }
}

/**
 * The part every remediator shares: its options and mode (with the mode metric), the journal,
 * the decision events, the circuit breaker (with its metric and the operator's reset), what it
 * is busy with and its last decision.
 */
export abstract class RemediatorBase<Options extends BaseOptions> {
  protected readonly breaker: Breaker;
  protected readonly decisions: DecisionLog;
  protected readonly journal: Journal | null;
  protected readonly history: HistoryStore | null;
  protected readonly metrics: RemediationMetrics;
  protected readonly log: Logger;
  /** What it is acting on right now, if anything. */
  protected busy: string | null = null;
  protected lastDecision = "not evaluated yet";

  constructor(
    readonly name: string,
    protected options: Options,
    deps: RemediatorDeps,
  ) {
    this.history = deps.history;
    this.metrics = deps.metrics;
    this.log = deps.log;
    this.breaker = new Breaker(options.breaker_after);
    this.decisions = new DecisionLog(name, deps.history, deps.log);
    this.journal = deps.history ? new Journal(deps.history) : null;
    deps.metrics.setMode(name, options.mode);
    deps.metrics.setBreaker(name, false);
  }

  get mode(): Mode {
    return this.options.mode;
  }

  setOptions(options: Options): void {
    this.options = options;
    this.metrics.setMode(this.name, this.mode);
    this.reconfigured();
  }

  /** After setOptions: whatever the remediator derives from its options. */
  protected reconfigured(): void {}

  resetBreaker(): void {
    this.breaker.reset();
    this.metrics.setBreaker(this.name, false);
    this.decisions.note(
      "breaker_reset",
      "info",
      "circuit breaker reset by an operator",
      undefined,
      true,
    );
  }

  /**
   * Closes a journal row. The action's outcome stands whether or not the row can be written
   * (a row left "started" is closed as recovered at the next start), so a failed write is
   * logged, never thrown into the middle of undoing or finishing the action.
   */
  protected closeJournal(
    id: number,
    state: "done" | "failed" | "aborted" | "recovered",
    detail: unknown,
  ): void {
    try {
      this.journal?.finish(id, state, detail);
    } catch (e) {
      this.log.error(
        { err: errorMessage(e), id, state, remediator: this.name },
        "cannot close the journal row",
      );
    }
  }

  /** A decision counted by outcome (by 0: the series exists before the first one). */
  protected count(outcome: Outcome, by = 1): void {
    this.metrics.actions.labels(this.name, outcome).inc(by);
  }

  /** One more failure for the breaker; when it opens, its metric and a crit event `kind`. */
  protected breakerFailed(kind: string, message: (failures: number) => string): void {
    if (!this.breaker.failed()) return;
    this.metrics.setBreaker(this.name, true);
    this.decisions.note(kind, "crit", message(this.breaker.consecutiveFailures), undefined, true);
  }

  /** The fields every state() starts with. */
  protected summary(): RemediatorSummary {
    return {
      name: this.name,
      mode: this.mode,
      breaker_open: this.breaker.open,
      consecutive_failures: this.breaker.consecutiveFailures,
      busy: this.busy,
      last_decision: this.lastDecision,
    };
  }
}
