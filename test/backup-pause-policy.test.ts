// The pure parts of backup_pause: systemctl output, the decision to pause and how, the judgement
// of a pause, the budget. The real systemd path is in backup-pause-systemd.test.ts.
import test from "ava";
import {
  budgetLeft,
  choosePause,
  DAY_MS,
  judgeHeld,
  LatencyWindow,
  pausedInLastDay,
  type PolicyConfig,
  Streak,
  type UnitFacts,
} from "../remediators/backup_pause/policy.js";
import {
  deadmanName,
  parseShow,
  parseTimespanUsec,
  unitState,
} from "../remediators/backup_pause/systemd.js";

const cfg: PolicyConfig = {
  threshold: 0.1,
  resumeBelow: 0.05,
  forMs: 600_000,
  windowMs: 60_000,
  resumeAfterMs: 120_000,
  improveWithinMs: 180_000,
  maxPauseMs: 1_800_000,
  dailyBudgetMs: 7_200_000,
  minIoBytesPerSecond: 1 << 20,
};
const svc: UnitFacts = {
  unit: "backup.service",
  kind: "service",
  active: true,
  load: "loaded",
  watchdog: false,
  canFreeze: true,
  ioBytesPerSecond: 50 << 20,
};

test("systemctl show output becomes a unit state; WatchdogUSec is a time span", (t) => {
  const p = parseShow(
    "LoadState=loaded\nActiveState=active\nSubState=running\nFreezerState=frozen\nCanFreeze=yes\n" +
      "WatchdogUSec=3s\nMainPID=412\nDescription=a=b\n",
  );
  t.is(p.get("Description"), "a=b");
  t.deepEqual(unitState("backup.service", p), {
    unit: "backup.service",
    kind: "service",
    load: "loaded",
    active: "active",
    sub: "running",
    freezer: "frozen",
    canFreeze: true,
    watchdogUsec: 3e6,
    mainPid: 412,
  });
  t.is(parseTimespanUsec("0"), 0);
  t.is(parseTimespanUsec("1min 30s"), 90e6);
  t.is(parseTimespanUsec("500ms"), 500e3);
  t.is(parseTimespanUsec("infinity"), Infinity);
  t.is(
    parseTimespanUsec("garbage"),
    Infinity,
    "unknown text counts as a watchdog: never freeze on a guess",
  );
  t.is(unitState("log-archiver.timer", new Map()).kind, "timer");
  t.is(deadmanName("backup@nightly.service"), "stemedb-agent-resume-backup_nightly_service");
});

test("how to pause: freeze; SIGSTOP with a watchdog or where freezing is not possible; a timer is stopped", (t) => {
  const m = (f: Partial<UnitFacts>) => {
    const c = choosePause(cfg, { ...svc, ...f }, cfg.dailyBudgetMs);
    return c.kind === "pause" ? c.method : c.kind;
  };
  t.is(m({}), "freeze");
  t.is(m({ watchdog: true }), "sigstop");
  t.is(m({ canFreeze: false }), "sigstop");
  t.is(m({ unit: "log-archiver.timer", kind: "timer", ioBytesPerSecond: null }), "stop-timer");
});

test("what is never paused: inactive, idle, not loaded, budget spent", (t) => {
  t.is(choosePause(cfg, { ...svc, active: false }, cfg.dailyBudgetMs).kind, "skip");
  const idle = choosePause(cfg, { ...svc, ioBytesPerSecond: 1000 }, cfg.dailyBudgetMs);
  t.is(idle.kind, "skip");
  t.regex(idle.kind === "skip" ? idle.reason : "", /not doing I\/O/);
  t.is(choosePause(cfg, { ...svc, ioBytesPerSecond: null }, cfg.dailyBudgetMs).kind, "skip");
  t.is(choosePause(cfg, { ...svc, load: "not-found" }, cfg.dailyBudgetMs).kind, "refuse");
  const spent = choosePause(cfg, svc, 0);
  t.is(spent.kind, "refuse");
  t.regex(spent.kind === "refuse" ? spent.reason : "", /budget .* spent/);
  // An operator's pause needs no I/O, but it is bounded like any other.
  const manual = choosePause(cfg, { ...svc, ioBytesPerSecond: 0 }, 600_000, {
    manual: { forMs: 3_600_000 },
  });
  t.deepEqual(manual.kind === "pause" ? manual.forMs : null, 600_000, "capped by the budget left");
  const manual2 = choosePause(cfg, svc, cfg.dailyBudgetMs, { manual: { forMs: 7_000_000 } });
  t.is(manual2.kind === "pause" ? manual2.forMs : null, cfg.maxPauseMs, "capped by max_pause");
});

test("a pause lasts at most max_pause and at most the budget left", (t) => {
  const c = choosePause(cfg, svc, 300_000);
  t.is(c.kind === "pause" ? c.forMs : null, 300_000);
  const d = choosePause(cfg, svc, cfg.dailyBudgetMs);
  t.is(d.kind === "pause" ? d.forMs : null, cfg.maxPauseMs);
});

test("budget: paused time in the last 24 h, rolling, an open interval counting up to now", (t) => {
  const now = 10 * DAY_MS;
  const ivs = [
    { start: now - DAY_MS - 3_600_000, end: now - DAY_MS + 1_800_000 }, // only its last 30 min are inside
    { start: now - 7_200_000, end: now - 5_400_000 }, // 30 min
    { start: now - 600_000, end: null }, // 10 min, still paused
  ];
  t.is(pausedInLastDay(ivs, now), 4_200_000);
  t.is(budgetLeft(cfg, ivs, now), 3_000_000);
  t.is(budgetLeft(cfg, [{ start: now - 8_000_000, end: now }], now), 0, "never negative");
});

test(
  "a held pause: kept while it helps, resumed on recovery (hysteresis), on its deadline, " +
    "or when it did not help",
  (t) => {
    const since = 1_000_000;
    const h = { since, deadline: since + cfg.maxPauseMs, by: "agent" as const, improvedAt: null };
    // Early on, still slow: keep.
    t.deepEqual(judgeHeld(cfg, h, since + 30_000, { p99: 0.3, n: 6 }, 0), {
      kind: "keep",
      improved: false,
    });
    // Came under the threshold (3+ samples): improved, but not yet under resume_below long enough.
    t.deepEqual(judgeHeld(cfg, h, since + 60_000, { p99: 0.07, n: 6 }, 0), {
      kind: "keep",
      improved: true,
    });
    t.deepEqual(
      judgeHeld(cfg, h, since + 60_000, { p99: 0.07, n: 2 }, 0),
      { kind: "keep", improved: false },
      "two samples are not evidence",
    );
    const improved = { ...h, improvedAt: since + 60_000 };
    t.is(judgeHeld(cfg, improved, since + 200_000, { p99: 0.01, n: 20 }, 119_000).kind, "keep");
    const rec = judgeHeld(cfg, improved, since + 200_000, { p99: 0.01, n: 20 }, 120_000);
    t.is(rec.kind === "resume" ? rec.reason : rec.kind, "recovered");
    // Never improved within improve_within: not the cure.
    const nc = judgeHeld(cfg, h, since + cfg.improveWithinMs, { p99: 0.4, n: 30 }, 0);
    t.is(nc.kind === "resume" ? nc.reason : nc.kind, "not_improving");
    t.regex(nc.kind === "resume" ? nc.message : "", /not the cure/);
    // The deadline ends every pause, an operator's too; an operator's pause ignores latency otherwise.
    const dl = judgeHeld(cfg, h, h.deadline, { p99: 0.4, n: 30 }, 0);
    t.is(dl.kind === "resume" ? dl.reason : dl.kind, "deadline");
    const op = { ...h, by: "operator" as const };
    t.is(judgeHeld(cfg, op, since + cfg.improveWithinMs + 1, { p99: 0.4, n: 30 }, 0).kind, "keep");
    t.is(judgeHeld(cfg, op, since + 500_000, { p99: 0.001, n: 30 }, 400_000).kind, "keep");
    t.is(judgeHeld(cfg, op, op.deadline, null, 0).kind, "resume");
  },
);

test("latency window: p99 over a time range; old samples dropped; a clock jump back starts over", (t) => {
  const w = new LatencyWindow(60_000);
  for (let i = 0; i < 100; i++) w.push(i * 1000, i === 50 ? 0.5 : 0.001);
  t.is(w.size, 61);
  t.is(w.p99(40_000, 99_000)?.p99, 0.5);
  t.is(w.p99(51_000, 99_000)?.p99, 0.001);
  t.is(w.p99(200_000, 300_000), null);
  w.push(5000, Number.NaN);
  t.is(w.size, 61, "NaN ignored");
  w.push(5000, 0.002);
  t.is(w.size, 1);
});

test("streak: held time, broken by false and by unknown", (t) => {
  const s = new Streak();
  s.update(0, true);
  s.update(5000, true);
  t.is(s.heldFor(6000), 6000);
  s.update(7000, null);
  t.is(s.heldFor(8000), 0);
  s.update(9000, true);
  s.update(10_000, false);
  t.is(s.heldFor(11_000), 0);
});
