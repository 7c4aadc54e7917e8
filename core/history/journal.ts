// The remediation journal: a row written before a remediator acts and completed after, so work
// interrupted by a crash is found at the next start. Owned by the history layer: its writes go
// through the store's write-state handling (a full disk, a file moved aside, the in-memory
// fallback), and a write that cannot be made durable throws HistoryWriteError to the caller.
import type { Db } from "./open.js";
import type { HistoryStore } from "./store.js";

export type JournalState = "done" | "failed" | "aborted" | "recovered";

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

  /** Durable at once (not batched): the row exists before the action starts. Throws HistoryWriteError. */
  begin(remediator: string, action: string, target: string, detail: unknown): number {
    return this.history.journalBegin(remediator, action, target, detail);
  }

  /** Throws HistoryWriteError; a row that was never begun (id < 0, the journal was down) is no write. */
  finish(id: number, state: JournalState, detail: unknown): void {
    this.history.journalFinish(id, state, detail);
  }

  unfinished(remediator: string): Array<{ id: number; action: string; target: string }> {
    return this.history.journalUnfinished(remediator);
  }

  recent(limit: number): JournalRow[] {
    return this.history.journalRecent(limit);
  }
}

// ---------------------------------------------------------------- SQL (run by the store)

export function insertRow(
  db: Db,
  remediator: string,
  action: string,
  target: string,
  detail: unknown,
  now: number,
): number {
  const r = db
    .prepare(
      "INSERT INTO remediation_journal (remediator, action, target, state, started_at, detail) " +
        "VALUES (?, ?, ?, 'started', ?, ?)",
    )
    .run(remediator, action, target, now, JSON.stringify(detail));
  return Number(r.lastInsertRowid);
}

export function finishRow(
  db: Db,
  id: number,
  state: JournalState,
  detail: unknown,
  now: number,
): void {
  db.prepare(
    "UPDATE remediation_journal SET state = ?, finished_at = ?, detail = ? WHERE id = ?",
  ).run(state, now, JSON.stringify(detail), id);
}

export function unfinishedRows(
  db: Db,
  remediator: string,
): Array<{ id: number; action: string; target: string }> {
  return db
    .prepare(
      "SELECT id, action, target FROM remediation_journal WHERE remediator = ? AND state = 'started'",
    )
    .all(remediator) as Array<{ id: number; action: string; target: string }>;
}

export function recentRows(db: Db, limit: number): JournalRow[] {
  const rows = db
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
