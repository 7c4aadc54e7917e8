// A test's own connection to a history store's file, to look at what the store wrote: the store
// hands out none (only core/history touches its connection). Flush the store first.
import Database from "better-sqlite3";
import type { HistoryStore } from "../../core/history/store.js";

/** Runs `fn` on a connection of its own to the store's file (read-only unless `write`), closed after. */
export function withHistoryFile<T>(
  h: HistoryStore | string,
  fn: (db: Database.Database) => T,
  opts: { readonly write?: boolean } = {},
): T {
  const db = new Database(typeof h === "string" ? h : h.path, {
    readonly: opts.write !== true,
    fileMustExist: true,
  });
  try {
    db.pragma("busy_timeout = 2000");
    return fn(db);
  } finally {
    db.close();
  }
}
