import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import test from "ava";
import { makeTmpfs } from "./helpers/loop.js";
import Database from "better-sqlite3";
import { ms } from "../core/config/units.js";
import { MIGRATIONS, migrate, SCHEMA_VERSION } from "../core/history/migrations.js";
import { HistoryStore, type Retention } from "../core/history/store.js";
import { CoreMetrics } from "../core/metrics/registry.js";
import { isRoot, tempDir } from "./helpers/agent-process.js";
import { defaultRetention, historyIn, quietLog } from "./helpers/quiet.js";

const RETENTION: Retention = defaultRetention();

function store(
  dir: string,
  extra: Partial<{ now: () => number; retention: Retention; metrics: CoreMetrics }> = {},
): HistoryStore {
  return new HistoryStore({
    stateDir: dir,
    retention: extra.retention ?? RETENTION,
    log: quietLog,
    metrics: extra.metrics ?? new CoreMetrics(),
    ...(extra.now ? { now: extra.now } : {}),
  });
}

function events(dir: string): Array<{ kind: string; message: string }> {
  const db = new Database(join(dir, "history.db"), { readonly: true });
  try {
    return db.prepare("SELECT kind, message FROM events ORDER BY id").all() as Array<{
      kind: string;
      message: string;
    }>;
  } finally {
    db.close();
  }
}

async function counterValue(m: CoreMetrics, labels: Record<string, string>): Promise<number> {
  const v = (await m.historyWriteErrors.get()).values.find((x) =>
    Object.entries(labels).every(([k, val]) => x.labels[k as "reason"] === val),
  );
  return v?.value ?? 0;
}

test("a fresh file gets the current schema in WAL mode with incremental vacuum", (t) => {
  const { dir } = tempDir();
  const s = store(dir);
  s.close();
  const db = new Database(join(dir, "history.db"), { readonly: true });
  t.is(db.pragma("user_version", { simple: true }), SCHEMA_VERSION);
  t.is(db.pragma("journal_mode", { simple: true }), "wal");
  t.is(db.pragma("auto_vacuum", { simple: true }), 2);
  const tables = (
    db
      .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
      .pluck()
      .all() as string[]
  ).join(",");
  t.is(tables, "events,io_top,remediation_journal,rollups,samples,series,state");
  db.close();
});

test("migrations run forward once, in order, keeping data", (t) => {
  const { dir } = tempDir();
  const file = join(dir, "m.db");
  const db = new Database(file);
  // A file made by the first release, then brought forward.
  t.deepEqual(migrate(db, MIGRATIONS.slice(0, 1)), { kind: "migrated", from: 0, to: 1 });
  db.prepare("INSERT INTO state (key, value, updated) VALUES ('k', 'v', 1)").run();
  t.deepEqual(migrate(db), { kind: "migrated", from: 1, to: SCHEMA_VERSION });
  let applied = 0;
  const next = [
    ...MIGRATIONS,
    {
      version: SCHEMA_VERSION + 1,
      description: "test: add a column",
      up: (d: Database.Database) => {
        applied++;
        d.exec("ALTER TABLE state ADD COLUMN note TEXT");
      },
    },
  ];
  t.deepEqual(migrate(db, next), {
    kind: "migrated",
    from: SCHEMA_VERSION,
    to: SCHEMA_VERSION + 1,
  });
  t.deepEqual(migrate(db, next), { kind: "current", version: SCHEMA_VERSION + 1 });
  t.is(applied, 1);
  t.deepEqual(db.prepare("SELECT key, value, note FROM state").get(), {
    key: "k",
    value: "v",
    note: null,
  });
  t.deepEqual(migrate(db, MIGRATIONS), { kind: "too-new", version: SCHEMA_VERSION + 1 });
  db.close();
});

test("a failing migration leaves the file at the previous version", (t) => {
  const { dir } = tempDir();
  const db = new Database(join(dir, "m.db"));
  migrate(db);
  const bad = [
    ...MIGRATIONS,
    {
      version: SCHEMA_VERSION + 1,
      description: "broken",
      up: (d: Database.Database) => d.exec("CREATE TABLE x (a); THIS IS NOT SQL"),
    },
  ];
  t.throws(() => migrate(db, bad), { any: true });
  t.is(db.pragma("user_version", { simple: true }), SCHEMA_VERSION);
  t.is(db.prepare("SELECT count(*) FROM sqlite_schema WHERE name = 'x'").pluck().get(), 0);
  db.close();
});

for (const [what, damage] of [
  ["garbage bytes", (f: string) => writeFileSync(f, Buffer.alloc(8192, 0x5a))],
  ["a truncated file", (f: string) => truncateSync(f, 1500)],
  [
    "a file from a newer agent",
    (f: string) => {
      const d = new Database(f);
      d.pragma("user_version = 999");
      d.close();
    },
  ],
] as const) {
  test(`${what} is moved aside, never deleted, and a fresh history starts with an event`, (t) => {
    const { dir } = tempDir();
    const first = store(dir);
    for (let i = 0; i < 2000; i++) first.record("m", { device: "sda" }, i, Date.now() - 5000 + i);
    first.close();
    damage(join(dir, "history.db"));
    const metrics = new CoreMetrics();
    const s = store(dir, { metrics });
    const st = s.stats();
    t.is(st.mode, "file");
    t.is(st.write_state, "ok");
    s.close();
    const aside = readdirSync(dir).filter(
      (f) => f.startsWith("history.db.corrupt-") && !f.endsWith("-wal") && !f.endsWith("-shm"),
    );
    t.is(aside.length, 1, readdirSync(dir).join(","));
    const ev = events(dir);
    t.is(ev[0]?.kind, "history.recovered");
    t.true(ev[0]?.message.includes(aside[0] ?? "?"));
  });
}

test("an unusable state dir falls back to memory and says so", (t) => {
  const { dir } = tempDir();
  const blocked = join(dir, "not-a-dir");
  writeFileSync(blocked, "x");
  const s = store(blocked);
  const st = s.stats();
  t.is(st.mode, "memory");
  t.is(st.write_state, "memory");
  t.regex(st.last_error ?? "", /cannot use .*not-a-dir\/history\.db/);
  s.record("m", {}, 1);
  t.notThrows(() => s.flush());
  s.close();
});

test("minutes are summarised with p50/p99/max, hours from minutes, and retention prunes each resolution", (t) => {
  const { dir } = tempDir();
  let now = Date.UTC(2026, 0, 1, 10, 0, 0);
  const s = store(dir, {
    now: () => now,
    retention: {
      ...RETENTION,
      raw_retention: ms(30 * 60_000),
      minute_retention: ms(4 * 3_600_000),
    },
  });
  // Three hours at 1 Hz: value = second within the minute (0..59), so p50 = 29, p99 = 59.
  for (let i = 0; i < 3 * 3600; i++) {
    now += 1000;
    s.record("disk_w_await_seconds", { device: "sda" }, (now / 1000) % 60);
    if (i % 10 === 0) s.flush();
  }
  now += 10_000;
  s.flush();
  s.maintain();
  // A connection of the test's own: the store hands out none.
  const db = new Database(s.path, { readonly: true });
  t.teardown(() => db.close());
  const minutes = db
    .prepare("SELECT ts, count, min, max, p50, p99 FROM rollups WHERE resolution = 60 ORDER BY ts")
    .all() as Array<Record<string, number>>;
  t.is(minutes.length, 180);
  t.like(minutes[5], { count: 60, min: 0, max: 59, p50: 29, p99: 59 });
  const hours = db
    .prepare("SELECT ts, count, max, p99 FROM rollups WHERE resolution = 3600 ORDER BY ts")
    .all() as Array<Record<string, number>>;
  t.true(hours.length >= 2, `hours: ${hours.length}`);
  t.like(hours[0], { count: 3599, max: 59, p99: 59 }); // the first sample came at +1 s
  t.like(hours[1], { count: 3600, max: 59, p99: 59 });
  const oldestRaw = db.prepare("SELECT min(ts) FROM samples").pluck().get() as number;
  t.true(now - oldestRaw <= 30 * 60_000, "raw samples older than raw_retention are pruned");

  // A day later every minute row has aged out; hours remain.
  now += 86_400_000;
  s.maintain();
  t.is(db.prepare("SELECT count(*) FROM rollups WHERE resolution = 60").pluck().get(), 0);
  t.true(
    (db.prepare("SELECT count(*) FROM rollups WHERE resolution = 3600").pluck().get() as number) >=
      2,
  );
  t.is(db.prepare("SELECT count(*) FROM samples").pluck().get(), 0);
  s.close();
});

test("a minute seen across a restart is merged, not overwritten", (t) => {
  const { dir } = tempDir();
  const base = Date.UTC(2026, 0, 1, 10, 0, 0);
  let now = base;
  const a = store(dir, { now: () => now });
  for (let i = 0; i < 20; i++) a.record("x", {}, 1, base + i * 1000);
  a.close();
  now = base + 30_000;
  const b = store(dir, { now: () => now });
  for (let i = 30; i < 60; i++) b.record("x", {}, 5, base + i * 1000);
  now = base + 120_000;
  b.flush();
  const db = new Database(b.path, { readonly: true });
  const row = db.prepare("SELECT count, sum, min, max FROM rollups WHERE resolution = 60").get();
  db.close();
  t.deepEqual(row, { count: 50, sum: 170, min: 1, max: 5 });
  b.close();
});

test("the file removed while running is noticed and replaced", (t) => {
  const { dir } = tempDir();
  const s = store(dir);
  s.record("x", {}, 1);
  s.flush();
  for (const f of readdirSync(dir)) unlinkSync(join(dir, f));
  s.maintain();
  s.record("x", {}, 2);
  s.flush();
  t.is(s.stats().write_state, "ok");
  s.close();
  t.true(
    events(dir).some(
      (e) => e.kind === "history.recovered" && /removed while running/.test(e.message),
    ),
  );
});

test("state is durable at once and survives reopening", (t) => {
  const { dir } = tempDir();
  const a = store(dir);
  t.true(a.setState("kmsg.resume", "boot-1:42"));
  a.close();
  const b = store(dir);
  t.is(b.getState("kmsg.resume"), "boot-1:42");
  t.is(b.getState("nothing"), undefined);
  b.close();
});

test("a full filesystem stops history writes, keeps the rows bounded and resumes when space returns", (t) => {
  if (!isRoot) return t.pass("skipped: needs root to mount a small tmpfs");
  const { dir } = tempDir();
  const mnt = makeTmpfs(dir, "mnt", "3m", t.teardown.bind(t));
  const metrics = new CoreMetrics();
  const s = store(mnt, { metrics, retention: { ...RETENTION, max_pending_rows: 20_000 } });
  s.record("x", { device: "sda" }, 1);
  s.flush();
  // Fill the filesystem to the last byte.
  spawnSync("dd", ["if=/dev/zero", `of=${join(mnt, "filler")}`, "bs=64k"], { stdio: "ignore" });
  let now = Date.now();
  for (let i = 0; i < 30_000; i++) s.record("x", { device: `d${i % 50}` }, i, now + i);
  t.notThrows(() => s.flush());
  const full = s.stats();
  t.is(full.write_state, "full", full.last_error ?? "");
  t.true(full.pending_rows <= 20_000, `pending ${full.pending_rows}`);
  t.true(full.dropped_rows > 0);
  return counterValue(metrics, { reason: "full" }).then((n) => {
    t.true(n >= 1);
    rmSync(join(mnt, "filler"));
    now += 1;
    s.flush();
    const after = s.stats();
    t.is(after.write_state, "ok", after.last_error ?? "");
    t.is(after.pending_rows, 0);
    s.close();
  });
});

test(
  "a corrupt history file is moved aside with every byte, kept 0600; " +
    "the fresh file and the state dir are private whatever the umask",
  (t) => {
    const old = process.umask(0o022);
    t.teardown(() => process.umask(old));
    const { dir } = tempDir();
    const state = join(dir, "state");
    const first = store(state);
    first.record("m", {}, 1);
    first.close();
    t.is(statSync(state).mode & 0o777, 0o700, "the state dir is created 0700");
    t.is(statSync(join(state, "history.db")).mode & 0o777, 0o600);
    // A good file left 0644 by an older agent is tightened when opened.
    chmodSync(join(state, "history.db"), 0o644);
    store(state).close();
    t.is(
      statSync(join(state, "history.db")).mode & 0o777,
      0o600,
      "an existing 0644 file is made 0600",
    );
    // Damaged, and 0644 again: garbage after a valid-looking header.
    const bytes = Buffer.concat([Buffer.from("SQLite format 3\0"), randomBytes(8192)]);
    writeFileSync(join(state, "history.db"), bytes, { mode: 0o644 });
    chmodSync(join(state, "history.db"), 0o644);
    const s = store(state);
    t.is(s.stats().mode, "file");
    s.record("m", {}, 2);
    s.flush();
    s.close();
    const aside = readdirSync(state).filter(
      (f) => f.startsWith("history.db.corrupt-") && !/-(wal|shm)$/.test(f),
    );
    t.is(aside.length, 1, readdirSync(state).join(","));
    const kept = join(state, aside[0] ?? "?");
    t.deepEqual(readFileSync(kept), bytes, "every byte of the corrupt file is still there");
    t.is(statSync(kept).mode & 0o777, 0o600, "moved aside 0600");
    for (const f of readdirSync(state).filter((n) => n.startsWith("history.db")))
      t.is(statSync(join(state, f)).mode & 0o777, 0o600, f);
  },
);

test("the row counts move with every flush, not only at the 15-minute recount, and survive a restart", (t) => {
  const { dir } = tempDir("sa-hist-rows-");
  const ts = Date.now() - 5_000;
  const h1 = historyIn(dir);
  t.deepEqual(h1.stats().rows, { series: 0, samples: 0, rollups: 0, events: 0 });
  for (let i = 0; i < 3; i++) {
    h1.record("disk_w_await_seconds", { device: "sda" }, 0.001 * i, ts + i);
    h1.record("disk_w_await_seconds", { device: "sdb" }, 0.002 * i, ts + i);
  }
  h1.event({ class: "agent", kind: "test", severity: "info", message: "one" });
  h1.flush();
  t.like(h1.stats().rows, { series: 2, samples: 6, events: 1 });
  h1.close();
  // A restart: the series exist already; writing to them again adds samples, not series.
  const h2 = historyIn(dir);
  t.like(h2.stats().rows, { series: 2, samples: 6, events: 1 }, "counted at open");
  h2.record("disk_w_await_seconds", { device: "sda" }, 0.5, ts + 10);
  h2.flush();
  t.like(h2.stats().rows, { series: 2, samples: 7 });
  h2.close();
});
