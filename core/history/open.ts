// Opening the history file, and what to do when it cannot be trusted: a corrupt, unreadable
// or too-new file is moved aside (never deleted) and a fresh one is started.
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  fchmodSync,
  mkdirSync,
  openSync,
  renameSync,
} from "node:fs";
import Database from "better-sqlite3";
import { errorCode, errorMessage } from "../errors.js";
import { migrate, type MigrationOutcome } from "./migrations.js";

export type Db = Database.Database;

export interface Opened {
  readonly db: Db;
  readonly migration: MigrationOutcome;
  /** Set when the previous file was moved aside. */
  readonly recovered?: { readonly reason: string; readonly movedTo: string };
}

/** Problems that mean "this file is not a usable database", as opposed to "cannot write here". */
class Untrusted extends Error {}

const UNTRUSTED_CODES = new Set([
  "SQLITE_CORRUPT",
  "SQLITE_NOTADB",
  "SQLITE_CANTOPEN",
  "SQLITE_IOERR_SHORT_READ",
  "SQLITE_PERM",
  "SQLITE_AUTH",
]);

function openOnce(path: string): { db: Db; migration: MigrationOutcome } {
  let db: Db | undefined;
  try {
    db = new Database(path);
    // Reading the schema is also the first real read: garbage fails here with SQLITE_NOTADB.
    const objects = (db.prepare("SELECT count(*) AS n FROM sqlite_schema").get() as { n: number })
      .n;
    // Must be chosen before the first table exists; lets pruning give pages back to the filesystem.
    if (objects === 0) db.pragma("auto_vacuum = INCREMENTAL");
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.pragma("busy_timeout = 2000");
    db.pragma("journal_size_limit = 67108864");
    const check = db.pragma("quick_check", { simple: true });
    if (check !== "ok") throw new Untrusted(`integrity check failed: ${String(check)}`);
    const migration = migrate(db);
    if (migration.kind === "too-new")
      throw new Untrusted(
        `schema version ${migration.version} is newer than this agent understands`,
      );
    return { db, migration };
  } catch (e) {
    db?.close();
    if (e instanceof Untrusted) throw e;
    const code = errorCode(e);
    if (code !== undefined && UNTRUSTED_CODES.has(code))
      throw new Untrusted(`${code}: ${errorMessage(e)}`);
    throw e;
  }
}

/** Moves `path` and its -wal/-shm companions to `<path>.<tag>-<time>`; returns the new main name. */
export function moveAside(path: string, tag: string): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const target = `${path}.${tag}-${stamp}`;
  for (const suffix of ["", "-wal", "-shm"]) {
    if (!existsSync(path + suffix)) continue;
    renameSync(path + suffix, target + suffix);
    // Kept for an operator to inspect: as private as the live file, whatever it had before.
    chmodSync(target + suffix, FILE_MODE);
  }
  return target;
}

/** The history holds what the agent saw and did: root's, nobody else's. */
export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

/**
 * Creates `path` 0600 before SQLite opens it (SQLite gives -wal/-shm the main file's mode) and
 * tightens an existing file and its companions (older agents created them 0644 under umask 022).
 */
function ensurePrivate(path: string): void {
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, FILE_MODE);
  try {
    fchmodSync(fd, FILE_MODE); // the mode given to open is masked by the umask; this is not
  } finally {
    closeSync(fd);
  }
  for (const suffix of ["-wal", "-shm"]) {
    if (existsSync(path + suffix)) chmodSync(path + suffix, FILE_MODE);
  }
}

/**
 * Opens (creating if needed) the history database at `path`. Throws only when even a fresh
 * file cannot be created there (the caller then runs without a history file).
 */
export function openHistory(path: string, dir: string): Opened {
  mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  try {
    ensurePrivate(path);
    return openOnce(path);
  } catch (e) {
    if (!(e instanceof Untrusted) || !existsSync(path)) throw e;
    const movedTo = moveAside(path, "corrupt");
    ensurePrivate(path);
    const { db, migration } = openOnce(path);
    return { db, migration, recovered: { reason: e.message, movedTo } };
  }
}

const statements = new WeakMap<Db, Map<string, Database.Statement>>();

/**
 * A statement prepared once per connection: the hot paths (every flush, every state read, the
 * WAL collector's used-bytes series) ran `prepare` on each call. Plucking is a mode of the
 * statement object, so it is part of the key: one text can serve both ways.
 */
export function prepared(db: Db, sql: string, pluck = false): Database.Statement {
  let byText = statements.get(db);
  if (!byText) statements.set(db, (byText = new Map<string, Database.Statement>()));
  const key = `${pluck ? "pluck" : "rows"}\u0000${sql}`;
  let s = byText.get(key);
  if (!s) byText.set(key, (s = pluck ? db.prepare(sql).pluck() : db.prepare(sql)));
  return s;
}
