// What every remediator shares: a mode (off, dry-run, on), a journal row written before acting
// and completed after, an event for every decision (taken, skipped and why, failed), a cooldown,
// and a circuit breaker that stops the remediator after repeated failures until an operator
// resets it (agentctl remediations reset-breaker NAME).
import type { Counter, Gauge, Registry } from "prom-client";
import type { HistoryStore } from "../core/history/store.js";
import type { Logger } from "../core/log.js";
import { counter, gauge } from "../core/metrics/define.js";
import { NS } from "../core/metrics/registry.js";

export type Mode = "off" | "dry-run" | "on";

/** The collectors' latest observations, as the core hands them to remediators each tick. */
import type { Latest } from "../collectors/observations.js";
export type { Latest };

/**
 * What every remediator declares. The framework around it (journal, decisions, cooldown,
 * breaker, dry-run) is the same for all; a remediator only answers these questions.
 */
export interface Remediator<Item, Inputs> {
  readonly name: string;
  readonly mode: Mode;
  /** Why acting is worth considering now; empty when nothing calls for it. */
  triggers(inputs: Inputs, plan: readonly Item[]): Promise<string[]>;
  /** A reason not to act at this moment (slow fsync, cooldown, open breaker), or null. */
  precondition(inputs: Inputs): string | null;
  /** Exactly what would be done, in order, and what is left alone and why (dry-run shows it). */
  plan(
    inputs: Inputs,
  ): Promise<{ items: Item[]; skipped: ReadonlyArray<{ name: string; reason: string }> }>;
  /** Do one item (journalled before and after by the caller). */
  act(item: Item): Promise<unknown>;
  /** Check an item's result after the fact. */
  verify(target: string): Promise<boolean>;
  /** Reverse one item. */
  undo(target: string): Promise<unknown>;
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

export interface JournalRow {
  readonly id: number;
  readonly remediator: string;
  readonly action: string;
  readonly target: string;
  readonly state: string;
  readonly started_at: string;
  readonly finished_at: string | null;
  readonly detail: string | null;
}

export class Journal {
  constructor(private readonly history: HistoryStore) {}

  /** Durable at once (not batched): the row exists before the action starts. */
  begin(remediator: string, action: string, target: string, detail: unknown): number {
    const r = this.history.database
      .prepare(
        "INSERT INTO remediation_journal (remediator, action, target, state, started_at, detail) VALUES (?, ?, ?, 'started', ?, ?)",
      )
      .run(remediator, action, target, Date.now(), JSON.stringify(detail));
    return Number(r.lastInsertRowid);
  }

  finish(id: number, state: "done" | "failed" | "aborted" | "recovered", detail: unknown): void {
    this.history.database
      .prepare("UPDATE remediation_journal SET state = ?, finished_at = ?, detail = ? WHERE id = ?")
      .run(state, Date.now(), JSON.stringify(detail), id);
  }

  unfinished(remediator: string): Array<{ id: number; target: string }> {
    return this.history.database
      .prepare(
        "SELECT id, target FROM remediation_journal WHERE remediator = ? AND state = 'started'",
      )
      .all(remediator) as Array<{ id: number; target: string }>;
  }

  recent(limit: number): JournalRow[] {
    const rows = this.history.database
      .prepare("SELECT * FROM remediation_journal ORDER BY id DESC LIMIT ?")
      .all(limit) as Array<
      Omit<JournalRow, "started_at" | "finished_at"> & {
        started_at: number;
        finished_at: number | null;
      }
    >;
    return rows.map((r) => ({
      ...r,
      started_at: new Date(r.started_at).toISOString(),
      finished_at: r.finished_at === null ? null : new Date(r.finished_at).toISOString(),
    }));
  }
}

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
  private last = "";
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
    const key = `${kind}\u0000${message}`;
    if (!always && key === this.last) return;
    this.last = key;
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
