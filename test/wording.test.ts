// What a new user reads first: phrases that used to come out wrong ("1 disks", "full in never",
// a diagnosis verdict with nothing after it).
import test from "ava";
import { fullIn, plural, walDirHint } from "../agent/status/areas.js";
import { diagnosisSummary } from "../agent/cli/render.js";
import type { Diagnosis, Step } from "../agent/status/diagnose.js";
import { RUNBOOKS, type RunbookId } from "../agent/status/runbooks.js";

test("counts agree with their nouns", (t) => {
  t.is(plural(1, "disk"), "1 disk");
  t.is(plural(0, "disk"), "0 disks");
  t.is(plural(12, "disk"), "12 disks");
});

test("a filesystem that is not filling says so, not 'full in never'", (t) => {
  t.is(fullIn(Infinity), "not filling");
  t.is(fullIn(3600), "full in 60 min");
});

const step = (n: number, verdict: Step["verdict"]): Step => ({
  n,
  step: `step ${n}`,
  verdict,
  evidence: "",
  action: null,
});

/** A diagnosis of the named runbooks' steps (the verdict is not what is tested). */
const d = (...books: Array<[RunbookId, Step[]]>): Diagnosis => ({
  verdict: "warn",
  runbooks: books.map(([id, steps]) => ({
    ...(RUNBOOKS.find((r) => r.runbook === id) as (typeof RUNBOOKS)[number]),
    verdict: "warn",
    steps,
  })),
});

test("the diagnosis line says what its verdict rests on, by runbook file and step number", (t) => {
  t.is(
    diagnosisSummary(
      d(["slow-fsync", [step(1, "ok")]], ["storage-errors", [step(1, "ok"), step(2, "warn")]]),
    ),
    "1 of 3 steps need a look (storage-errors.md 2. step 2)",
  );
  t.is(
    diagnosisSummary(d(["storage-errors", [step(1, "ok"), step(2, "unknown")]])),
    "1 of 2 steps ok, 1 not known",
  );
  t.regex(
    diagnosisSummary(d(["storage-errors", [step(1, "unknown")]])),
    /^nothing known yet \(1 step unknown/,
  );
  const many = [1, 2, 3, 4, 5].map((n) => step(n, "crit"));
  t.regex(
    diagnosisSummary(d(["storage-errors", many])),
    /^5 of 5 steps need a look \(.*; 2 more\)$/,
  );
  // A step that judges nothing (how to run the write test, the bundle) is not counted.
  t.is(
    diagnosisSummary(d(["replication-lag", [step(1, "ok"), step(2, "info")]])),
    "1 of 1 step ok",
  );
});

test("a missing WAL directory says what to set and where", (t) => {
  t.is(
    walDirHint(null),
    "if the WAL lives elsewhere, set [wal] dir, [stemedb] data_dir and [stemedb] service in " +
      "/etc/stemedb/agent.toml (not present: running on the embedded defaults), " +
      "then reload (systemctl reload stemedb-agent)",
  );
  t.regex(walDirHint("/srv/agent.toml"), /in \/srv\/agent\.toml, then reload/);
});
