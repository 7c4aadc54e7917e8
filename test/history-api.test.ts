// History has an API: nothing outside core/history reaches the SQLite connection, and the
// remediation journal's writes go through the store's write-state handling. A journal row that
// cannot be made durable (a full filesystem, the in-memory fallback) is a HistoryWriteError to
// the caller, and a remediator whose journal failed is able to act again once it can be written.
import { spawnSync } from "node:child_process";
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import test from "ava";
import { buildRemediator } from "./helpers/remediators.js";
import Database from "better-sqlite3";
import { loadConfig } from "../core/config/load.js";
import { Journal } from "../core/history/journal.js";
import { HistoryStore, HistoryWriteError } from "../core/history/store.js";
import { ActionRefused } from "../remediators/framework.js";
import type { Duration } from "../core/config/units.js";
import {
  BackupPauseRemediator,
  backupPauseOptions,
} from "../remediators/backup_pause/remediator.js";
import {
  WalCompressRemediator,
  walCompressOptions,
} from "../remediators/wal_compress/remediator.js";
import { isRoot, tempDir } from "./helpers/agent-process.js";
import { REPO_ROOT } from "./helpers/container.js";
import { fakeSystemd } from "./helpers/fake-systemd.js";
import { withHistoryFile } from "./helpers/history-file.js";
import { makeTmpfs } from "./helpers/loop.js";
import { historyIn, sleep } from "./helpers/quiet.js";

const store = historyIn;

/** Every .ts file under `dir`, repository-relative. */
function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(REPO_ROOT, dir), { withFileTypes: true })) {
    const rel = join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(rel));
    else if (e.name.endsWith(".ts")) out.push(rel);
  }
  return out;
}

test("no product code outside core/history opens SQLite or issues SQL; the store hands out no connection", (t) => {
  const offenders: string[] = [];
  for (const top of ["core", "collectors", "judge", "remediators", "agent"]) {
    let files: string[];
    try {
      files = sources(top);
    } catch {
      continue; // a layer not present (yet)
    }
    for (const f of files) {
      if (f.startsWith("core/history/")) continue;
      const text = readFileSync(join(REPO_ROOT, f), "utf8");
      for (const [what, re] of [
        ["imports better-sqlite3", /from\s+["']better-sqlite3["']/],
        ["prepares SQL", /\.prepare\(/],
        ["runs a pragma", /\.pragma\(/],
        ["uses the store's connection", /\b(history|h|store)\??\.(database|db)\b/],
      ] as const)
        if (re.test(text)) offenders.push(`${f} ${what}`);
    }
  }
  t.deepEqual(offenders, []);

  const { dir } = tempDir();
  const s = store(dir);
  t.teardown(() => s.close());
  t.false("database" in s, "no accessor for the connection");
  // Not even by a cast: the connection is an ES private field, invisible to property access.
  const reachable: unknown[] = [
    ...Object.values(s as unknown as Record<string, unknown>),
    ...Object.getOwnPropertyNames(HistoryStore.prototype).map((k): unknown => {
      const d = Object.getOwnPropertyDescriptor(HistoryStore.prototype, k);
      return d?.get ? (d.get.call(s) as unknown) : undefined;
    }),
  ];
  t.false(
    reachable.some((v) => v instanceof Database),
    "no property of the store holds a connection",
  );
});

test("the journal: begin, finish, unfinished and recent, durable in the file at once", (t) => {
  const { dir } = tempDir();
  const s = store(dir);
  t.teardown(() => s.close());
  const j = new Journal(s);
  const a = j.begin("wal_compress", "compress", "segment.1.wal", { why: "test" });
  const b = j.begin("backup_pause", "pause", "backup.service", {});
  t.deepEqual(j.unfinished("wal_compress"), [
    { id: a, action: "compress", target: "segment.1.wal" },
  ]);
  // Not buffered: another connection sees the row before any flush.
  t.is(
    withHistoryFile(s, (db) =>
      db.prepare("SELECT state FROM remediation_journal WHERE id = ?").pluck().get(a),
    ),
    "started",
  );
  j.finish(a, "done", { bytes: 1 });
  t.deepEqual(j.unfinished("wal_compress"), []);
  t.like(j.recent(10)[1], { id: a, state: "done", detail: '{"bytes":1}' });
  t.like(j.recent(10)[0], { id: b, state: "started", finished_at: null });
  t.regex(j.recent(10)[1]?.finished_at ?? "", /^\d{4}-\d\d-\d\dT/);
  t.notThrows(() => j.finish(-1, "done", {}), "a row never begun (journal was down) is no write");
});

test("in memory (no usable history file) a journal row is refused with a typed error: it would not survive", (t) => {
  const { dir } = tempDir();
  const blocked = join(dir, "not-a-dir");
  writeFileSync(blocked, "x");
  const s = store(blocked);
  t.teardown(() => s.close());
  t.is(s.stats().mode, "memory");
  const e = t.throws(() => new Journal(s).begin("wal_compress", "compress", "x", {}), {
    instanceOf: HistoryWriteError,
  });
  t.is(e?.reason, "memory");
  t.regex(e?.message ?? "", /^history in memory only: cannot use /);
});

test("the history file moved aside: the journal row goes into the fresh file, never the moved one", (t) => {
  const { dir } = tempDir();
  const s = store(dir);
  t.teardown(() => s.close());
  const j = new Journal(s);
  j.begin("wal_compress", "compress", "before", {});
  renameSync(join(dir, "history.db"), join(dir, "elsewhere.db"));
  for (const sfx of ["-wal", "-shm"]) rmSync(join(dir, `history.db${sfx}`), { force: true });
  const id = j.begin("wal_compress", "compress", "after", {});
  t.deepEqual(
    withHistoryFile(s, (db) => db.prepare("SELECT id, target FROM remediation_journal").all()),
    [{ id, target: "after" }],
  );
  t.is(s.stats().write_state, "ok");
});

test(
  "a full filesystem: the journal write throws HistoryWriteError (full), the store says so, " +
    "and the journal works again when space returns",
  (t) => {
    if (!isRoot) return t.pass("skipped: needs root to mount a small tmpfs");
    const { dir } = tempDir();
    const mnt = makeTmpfs(dir, "mnt", "3m", t.teardown.bind(t));
    const s = store(mnt);
    t.teardown(() => s.close());
    const j = new Journal(s);
    const first = j.begin("wal_compress", "compress", "segment.1.wal", {});
    spawnSync("dd", ["if=/dev/zero", `of=${join(mnt, "filler")}`, "bs=64k"], { stdio: "ignore" });
    // Rows enough to need new pages: a small row may still fit in the WAL's last block.
    const big = { pad: "x".repeat(256 * 1024) };
    const e = t.throws(() => j.begin("wal_compress", "compress", "segment.2.wal", big), {
      instanceOf: HistoryWriteError,
    });
    t.is(e?.reason, "full");
    t.regex(e?.message ?? "", /^history full: SQLITE_FULL/);
    t.is(s.stats().write_state, "full");
    t.throws(() => j.finish(first, "done", big), { instanceOf: HistoryWriteError });
    t.deepEqual(
      j.unfinished("wal_compress").map((r) => r.target),
      ["segment.1.wal"],
      "nothing half-written",
    );
    rmSync(join(mnt, "filler"));
    const again = j.begin("wal_compress", "compress", "segment.2.wal", big);
    j.finish(first, "done", {});
    j.finish(again, "done", {});
    t.deepEqual(j.unfinished("wal_compress"), []);
  },
);

test(
  "wal_compress on a full history filesystem: no compression unjournalled, not left busy, " +
    "and it compresses once the journal can be written",
  async (t) => {
    if (!isRoot) return t.pass("skipped: needs root to mount a small tmpfs");
    const { dir } = tempDir();
    const mnt = makeTmpfs(dir, "state", "3m", t.teardown.bind(t));
    const wal = join(dir, "wal");
    mkdirSync(wal);
    const old = Date.now() / 1000 - 7200;
    for (let i = 1; i <= 3; i++) {
      writeFileSync(join(wal, `segment.${i}.wal`), Buffer.alloc(64 * 1024, i));
      utimesSync(join(wal, `segment.${i}.wal`), old + i, old + i);
    }
    const file = join(dir, "agent.toml");
    writeFileSync(
      file,
      `[agent]\nstate_dir = "${mnt}"\n[wal]\ndir = "${wal}"\n[remediators.wal_compress]\nmode = "on"\n` +
        `keep_uncompressed = 2\nmin_age = "0"\npause_fsync_above = "10s"\nreserve = "0"\n`,
    );
    const r = loadConfig({ env: {}, file });
    if (!r.ok) return t.fail(r.problems.join("\n"));
    const config = r.loaded.config;
    const { rem, history } = buildRemediator(
      t,
      config,
      (deps) => new WalCompressRemediator(walCompressOptions(config), deps),
    );
    const latest = { get: () => undefined };
    // The filler leaves no byte: the journal row cannot be written.
    spawnSync("dd", ["if=/dev/zero", `of=${join(mnt, "filler")}`, "bs=4k"], { stdio: "ignore" });
    const settle = async (pred: () => boolean) => {
      for (let i = 0; i < 100 && !pred(); i++) await sleep(50);
    };
    rem.tick(latest);
    await settle(() => /journal cannot be written/.test(rem.state().last_decision));
    t.regex(rem.state().last_decision, /journal cannot be written \(history full: SQLITE_FULL/);
    t.is(rem.state().busy, null, "not left busy: able to act again");
    t.false(rem.state().breaker_open);
    t.true(readdirSync(wal).includes("segment.1.wal"), "nothing compressed unjournalled");
    t.false(readdirSync(wal).includes("segment.1.wal.gz"));

    rmSync(join(mnt, "filler"));
    // It looks again on its own cadence (every 10 s while idle): tick as the core does.
    for (let i = 0; i < 150 && !readdirSync(wal).includes("segment.1.wal.gz"); i++) {
      rem.tick(latest);
      await sleep(100);
    }
    await settle(() => rem.state().busy === null);
    t.true(readdirSync(wal).includes("segment.1.wal.gz"), rem.state().last_decision);
    t.like(new Journal(history).recent(1)[0], { target: "segment.1.wal", state: "done" });
  },
);

test(
  "backup_pause whose journal cannot be written: no pause, nothing held, not busy, " +
    "and the next request is judged afresh",
  async (t) => {
    const { dir } = tempDir("sa-bpj-");
    const fake = fakeSystemd(dir);
    fake.setActive("backup.service", true);
    const r = loadConfig({ env: {}, defaultFile: "/nonexistent" });
    if (!r.ok) return t.fail(r.problems.join("\n"));
    const base = r.loaded.config;
    const blocked = join(dir, "not-a-dir");
    writeFileSync(blocked, "x");
    const config = {
      ...base,
      agent: { ...base.agent, state_dir: blocked },
      remediators: {
        ...base.remediators,
        backup_pause: {
          ...base.remediators.backup_pause,
          mode: "on" as const,
          units: ["backup.service"],
          for: 500 as Duration,
          systemctl: fake.systemctl,
          systemd_run: fake.systemdRun,
        },
      },
    };
    // No usable state dir: the history runs in memory, where a journal row would not survive.
    const { rem } = buildRemediator(
      t,
      config,
      (deps) => new BackupPauseRemediator(backupPauseOptions(config), deps),
    );
    for (let i = 0; i < 2; i++) {
      const e = await t.throwsAsync(rem.operatorPause("backup.service", 60_000), {
        instanceOf: ActionRefused,
      });
      // The second time too: the first refusal left no hold behind ("already paused") and no busy flag.
      t.regex(e?.message ?? "", /cannot write the journal: history in memory only/);
      t.is(rem.state().busy, null);
      t.false(rem.state().breaker_open);
    }
    t.is(fake.freezer("backup.service"), "running");
    t.false(
      fake.calls().some((l) => /freeze|kill|systemd-run/.test(l)),
      fake.calls().join("\n"),
    );
  },
);
