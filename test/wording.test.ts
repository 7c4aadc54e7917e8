// What a new user reads first: phrases that used to come out wrong ("1 disks", "full in never",
// a diagnosis verdict with nothing after it).
import test from "ava";
import { fullIn, plural, walDirHint } from "../agent/status/areas.js";
import { diagnosisSummary } from "../agent/cli/render.js";
import type { Diagnosis, Step } from "../agent/status/diagnose.js";

test("counts agree with their nouns", (t) => {
  t.is(plural(1, "disk"), "1 disk");
  t.is(plural(0, "disk"), "0 disks");
  t.is(plural(12, "disk"), "12 disks");
});

test("a filesystem that is not filling says so, not 'full in never'", (t) => {
  t.is(fullIn(Infinity), "not filling");
  t.is(fullIn(3600), "full in 60 min");
});

const step = (runbook: Step["runbook"], name: string, verdict: Step["verdict"]): Step => ({
  runbook,
  step: name,
  verdict,
  evidence: "",
  action: null,
});

test("the diagnosis line says what its verdict rests on", (t) => {
  const d = (steps: Step[]): Diagnosis => ({ verdict: "warn", steps });
  t.is(
    diagnosisSummary(
      d([step("slow-wal-fsync", "1. fsync", "ok"), step("disk-full", "1. df", "warn")]),
    ),
    "1 of 2 steps need a look (disk-full 1. df)",
  );
  t.is(
    diagnosisSummary(d([step("disk-full", "1", "ok"), step("disk-full", "2", "unknown")])),
    "1 of 2 steps ok, 1 not known",
  );
  t.regex(diagnosisSummary(d([step("disk-full", "1", "unknown")])), /^nothing known yet/);
  const many = ["1", "2", "3", "4", "5"].map((n) => step("storage-errors", n, "crit"));
  t.regex(diagnosisSummary(d(many)), /^5 of 5 steps need a look \(.*; 2 more\)$/);
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
