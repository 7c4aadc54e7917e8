// Forward-only schema migrations, applied in order at start. PRAGMA user_version holds the
// number of the last one applied. Never edit a released migration: add the next one.
import type { Database } from "better-sqlite3";

export interface Migration {
  readonly version: number;
  readonly description: string;
  up(db: Database): void;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "series, raw samples, rollups, events, key-value state",
    up(db) {
      db.exec(`
        CREATE TABLE series (
          id     INTEGER PRIMARY KEY,
          metric TEXT NOT NULL,
          labels TEXT NOT NULL,          -- canonical JSON object, keys sorted
          UNIQUE (metric, labels)
        );
        CREATE TABLE samples (
          series_id INTEGER NOT NULL REFERENCES series(id),
          ts        INTEGER NOT NULL,    -- unix ms
          value     REAL NOT NULL,
          PRIMARY KEY (series_id, ts)
        ) WITHOUT ROWID;
        CREATE TABLE rollups (
          series_id  INTEGER NOT NULL REFERENCES series(id),
          resolution INTEGER NOT NULL,   -- seconds: 60 or 3600
          ts         INTEGER NOT NULL,   -- bucket start, unix ms
          count      INTEGER NOT NULL,
          sum        REAL NOT NULL,
          min        REAL NOT NULL,
          max        REAL NOT NULL,
          p50        REAL NOT NULL,
          p99        REAL NOT NULL,
          PRIMARY KEY (series_id, resolution, ts)
        ) WITHOUT ROWID;
        CREATE TABLE events (
          id       INTEGER PRIMARY KEY,
          ts       INTEGER NOT NULL,     -- unix ms
          class    TEXT NOT NULL,        -- area: agent, disk, smart, kernel, mount, wal, remediation
          kind     TEXT NOT NULL,        -- what happened, e.g. history.recovered
          severity TEXT NOT NULL CHECK (severity IN ('info', 'warn', 'crit')),
          subject  TEXT,                 -- device, mountpoint, unit or file the event is about
          message  TEXT NOT NULL,
          data     TEXT                  -- JSON details
        );
        CREATE INDEX events_ts ON events (ts);
        CREATE INDEX events_class_ts ON events (class, ts);
        CREATE TABLE state (
          key     TEXT PRIMARY KEY,
          value   TEXT NOT NULL,
          updated INTEGER NOT NULL
        ) WITHOUT ROWID;
      `);
    },
  },
  {
    version: 2,
    description: "top I/O consumers per interval (iotop -o, kept for incident review)",
    up(db) {
      db.exec(`
        CREATE TABLE io_top (
          ts        INTEGER NOT NULL,    -- unix ms, end of the interval
          pid       INTEGER NOT NULL,
          comm      TEXT NOT NULL,
          unit      TEXT,                -- systemd unit, when known
          read_bps  REAL NOT NULL,       -- bytes per second from storage
          write_bps REAL NOT NULL        -- bytes per second dirtied (minus cancelled)
        );
        CREATE INDEX io_top_ts ON io_top (ts);
      `);
    },
  },
  {
    version: 3,
    description: "remediation journal: a row before every action, completed after",
    up(db) {
      db.exec(`
        CREATE TABLE remediation_journal (
          id          INTEGER PRIMARY KEY,
          remediator  TEXT NOT NULL,
          action      TEXT NOT NULL,
          target      TEXT NOT NULL,
          state       TEXT NOT NULL CHECK (state IN ('started', 'done', 'failed', 'aborted', 'recovered')),
          started_at  INTEGER NOT NULL,
          finished_at INTEGER,
          detail      TEXT
        );
        CREATE INDEX remediation_journal_state ON remediation_journal (remediator, state);
      `);
    },
  },
];

export const SCHEMA_VERSION = MIGRATIONS.reduce((v, m) => Math.max(v, m.version), 0);

export type MigrationOutcome =
  | { kind: "current"; version: number }
  | { kind: "migrated"; from: number; to: number }
  | { kind: "too-new"; version: number };

/** Bring `db` to SCHEMA_VERSION; each migration in its own transaction with its version bump. */
export function migrate(
  db: Database,
  migrations: readonly Migration[] = MIGRATIONS,
): MigrationOutcome {
  const target = migrations.reduce((v, m) => Math.max(v, m.version), 0);
  const from = db.pragma("user_version", { simple: true }) as number;
  if (from > target) return { kind: "too-new", version: from };
  if (from === target) return { kind: "current", version: from };
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (m.version <= from) continue;
    db.transaction(() => {
      m.up(db);
      db.pragma(`user_version = ${m.version}`);
    })();
  }
  return { kind: "migrated", from, to: target };
}
