// The emergency ballast's plan (remediators/ballast/plan.ts), pure: its size, when it is given
// back, when it is taken, the hysteresis between the two; and the configuration rule that puts
// its lines before WAL compression's.
import test from "ava";
import fc from "fast-check";
import { loadConfig } from "../core/config/load.js";
import {
  type BallastLines,
  EMPTY_MEMORY,
  type Memory,
  type PlanInput,
  planBallast,
  STEP_BYTES,
  targetBytes,
  usedWithBallast,
} from "../remediators/ballast/plan.js";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const H = 3_600_000;
const LINES: BallastLines = {
  releaseUsedPercent: 75,
  releaseFullHorizonMs: 48 * H,
  createUsedPercent: 65,
  recreateAfterMs: H,
  fillWindowMs: 6 * H,
};
const NOW = Date.parse("2026-12-03T12:00:00Z");

function input(over: Partial<PlanInput> = {}): PlanInput {
  return {
    now: NOW,
    sizeBytes: 100 * GiB,
    usedRatio: 0.5,
    fullInSeconds: Infinity,
    exists: false,
    heldBytes: 0,
    target: GiB,
    memory: EMPTY_MEMORY,
    lines: LINES,
    ...over,
  };
}

test("size: the smaller of 1 % of the filesystem and 1 GiB, in whole 4 KiB blocks; or as configured", (t) => {
  t.is(targetBytes("auto", 256 * MiB), Math.floor((256 * MiB) / 100 / 4096) * 4096);
  t.is(targetBytes("auto", 50 * GiB), Math.floor((50 * GiB) / 100 / 4096) * 4096);
  t.is(targetBytes("auto", 100 * GiB), GiB);
  t.is(targetBytes("auto", 10 * 1024 * GiB), GiB);
  t.is(targetBytes(64 * MiB, 100 * GiB), 64 * MiB);
  t.is(targetBytes(64 * MiB + 100, 100 * GiB), 64 * MiB);
});

test("taken in 64 MiB steps while there is room, held once whole", (t) => {
  const p = planBallast(input());
  t.like(p.decision, { kind: "grow", bytes: STEP_BYTES });
  t.is(p.memory.grewAt, NOW);
  const last = planBallast(input({ exists: true, heldBytes: GiB - 10 * MiB }));
  t.like(last.decision, { kind: "grow", bytes: 10 * MiB });
  t.like(planBallast(input({ exists: true, heldBytes: GiB })).decision, { kind: "hold" });
});

test("given back at the used line, or when full within the horizon", (t) => {
  const held = { exists: true, heldBytes: GiB };
  const used = planBallast(input({ ...held, usedRatio: 0.75 }));
  t.is(used.decision.kind, "release");
  t.regex(used.decision.reason, /75\.0% used \(>= release_used_percent 75%\)/);
  const soon = planBallast(input({ ...held, fullInSeconds: 47 * 3600 }));
  t.is(soon.decision.kind, "release");
  t.regex(soon.decision.reason, /full in 47\.0 h .*< release_full_horizon 48\.0 h/);
  t.is(planBallast(input({ ...held, fullInSeconds: 49 * 3600 })).decision.kind, "hold");
  t.is(planBallast(input({ ...held, usedRatio: 0.749 })).decision.kind, "hold");
});

test("time-to-full is not believed for one fill window after the ballast grew", (t) => {
  const grew: Memory = { ...EMPTY_MEMORY, grewAt: NOW - 2 * H };
  const held = { exists: true, heldBytes: GiB, fullInSeconds: 3600, memory: grew };
  t.is(planBallast(input(held)).decision.kind, "hold", "its own growth looks like filling");
  t.is(
    planBallast(input({ ...held, usedRatio: 0.8 })).decision.kind,
    "release",
    "used still counts",
  );
  t.is(
    planBallast(input({ ...held, now: NOW + 5 * H })).decision.kind,
    "release",
    "after the window",
  );
});

test("not taken when the whole ballast would push past the create line; a half-made one is given back", (t) => {
  // 64.5 % used + 1 % of ballast = 65.5 % > 65 %
  const w = planBallast(input({ usedRatio: 0.645 }));
  t.is(w.decision.kind, "wait");
  t.regex(
    w.decision.reason,
    /65\.5% used with the whole ballast counted \(> create_used_percent 65%\)/,
  );
  const half = planBallast(input({ usedRatio: 0.648, exists: true, heldBytes: GiB / 2 }));
  t.is(half.decision.kind, "release");
  t.regex(half.decision.reason, /cannot be finished/);
  t.is(planBallast(input({ usedRatio: 0.63 })).decision.kind, "grow");
});

test("after a release, taken again only once space has been back for recreate_after", (t) => {
  const released: Memory = {
    grewAt: null,
    released: { at: NOW, by: "operator" },
    spaceBackSince: null,
  };
  let p = planBallast(input({ memory: released }));
  t.is(p.decision.kind, "wait");
  t.is(p.memory.spaceBackSince, NOW);
  t.regex(p.decision.reason, /released by operator .* for 0 min of the 1.0 h recreate_after asks/);
  p = planBallast(input({ now: NOW + 30 * 60_000, memory: p.memory }));
  t.is(p.decision.kind, "wait");
  // Space short again: the clock starts over.
  p = planBallast(input({ now: NOW + 40 * 60_000, usedRatio: 0.7, memory: p.memory }));
  t.is(p.decision.kind, "wait");
  t.is(p.memory.spaceBackSince, null);
  p = planBallast(input({ now: NOW + 50 * 60_000, memory: p.memory }));
  t.is(p.memory.spaceBackSince, NOW + 50 * 60_000);
  p = planBallast(input({ now: NOW + 109 * 60_000, memory: p.memory }));
  t.is(p.decision.kind, "wait");
  p = planBallast(input({ now: NOW + 110 * 60_000, memory: p.memory }));
  t.is(p.decision.kind, "grow");
  t.is(p.memory.released, null);
});

test("config: the ballast's lines come before wal_compress's, and create before release", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "sa-bcfg-"));
  const problems = (toml: string) => {
    const file = join(dir, "agent.toml");
    writeFileSync(file, toml);
    const r = loadConfig({ env: {}, file });
    return r.ok ? [] : r.problems;
  };
  const d = loadConfig({ env: {}, defaultFile: "/nonexistent" });
  if (!d.ok) return t.fail(d.problems.join("\n"));
  const b = d.loaded.config.remediators.ballast;
  t.like(b, { mode: "dry-run", size: "auto", release_used_percent: 75, create_used_percent: 65 });
  t.is<number, number>(b.release_full_horizon, 48 * H);
  t.is<number, number>(b.recreate_after, H);
  t.deepEqual(problems('[remediators.ballast]\nsize = "256MiB"\n'), []);
  const on = '[remediators.ballast]\nmode = "on"\n';
  t.regex(
    problems(`${on}release_used_percent = 80\n`).join("\n"),
    /release_used_percent: must be below remediators\.wal_compress\.trigger_used_percent \(80\)/,
  );
  t.regex(
    problems(`[remediators.wal_compress]\ntrigger_used_percent = 70\n${on}`).join("\n"),
    /release_used_percent: must be below/,
  );
  // A config from before the ballast (compression at 70 %) still loads: the ballast only plans.
  t.deepEqual(problems("[remediators.wal_compress]\ntrigger_used_percent = 70\n"), []);
  t.regex(
    problems(`${on}release_full_horizon = "24h"\n`).join("\n"),
    /release_full_horizon: must be longer than remediators\.wal_compress\.full_horizon \(1d\)/,
  );
  t.regex(
    problems("[remediators.ballast]\ncreate_used_percent = 75\n").join("\n"),
    /create_used_percent: must be below release_used_percent/,
  );
  t.regex(problems('[remediators.ballast]\nsize = "1KiB"\n').join("\n"), /size/);
});

// ------------------------------------------------------------------ properties

const lines = fc
  .record({
    create: fc.integer({ min: 1, max: 90 }),
    gap: fc.integer({ min: 1, max: 9 }),
    horizonH: fc.integer({ min: 1, max: 96 }),
    recreateMin: fc.integer({ min: 1, max: 240 }),
    fillH: fc.integer({ min: 1, max: 12 }),
  })
  .map((l): BallastLines => ({
    createUsedPercent: l.create,
    releaseUsedPercent: l.create + l.gap,
    releaseFullHorizonMs: l.horizonH * H,
    recreateAfterMs: l.recreateMin * 60_000,
    fillWindowMs: l.fillH * H,
  }));

/** A filesystem state one tick sees: size, use, time-to-full, the ballast's file. */
const fsState = fc.record({
  sizeBytes: fc.integer({ min: 64 * MiB, max: 2 ** 44 }),
  usedRatio: fc.double({ min: 0, max: 1, noNaN: true }),
  fullInSeconds: fc.oneof(
    fc.constant(Infinity),
    fc.double({ min: 0, max: 10 * 86400, noNaN: true }),
  ),
  heldShare: fc.oneof(
    fc.constant(-1),
    fc.constant(0),
    fc.double({ min: 0, max: 1.2, noNaN: true }),
  ),
  /**
   * Half the time, use just around the create line, within what the ballast still to be taken
   * would add (a share of it under the line): the inputs where counting it or not decides.
   */
  nearLine: fc.option(fc.double({ min: -0.5, max: 1.5, noNaN: true })),
});

type FsState = typeof fsState extends fc.Arbitrary<infer T> ? T : never;

const memory: fc.Arbitrary<Memory> = fc.record({
  grewAt: fc.option(fc.integer({ min: NOW - 24 * H, max: NOW })),
  released: fc.option(
    fc.record({
      at: fc.integer({ min: NOW - 24 * H, max: NOW }),
      by: fc.constantFrom("agent", "operator"),
    }),
  ),
  spaceBackSince: fc.option(fc.integer({ min: NOW - 24 * H, max: NOW })),
});

function tickInput(s: FsState, l: BallastLines, m: Memory, now: number): PlanInput {
  const target = targetBytes("auto", s.sizeBytes);
  const exists = s.heldShare >= 0;
  const held = exists ? Math.floor(target * s.heldShare) : 0;
  const missing = Math.max(0, target - held) / s.sizeBytes;
  return {
    now,
    sizeBytes: s.sizeBytes,
    usedRatio:
      s.nearLine === null
        ? s.usedRatio
        : Math.min(1, Math.max(0, l.createUsedPercent / 100 - s.nearLine * missing)),
    fullInSeconds: s.fullInSeconds,
    exists,
    heldBytes: held,
    target,
    memory: m,
    lines: l,
  };
}

test("property: a growth step never pushes use past the create line, nor past the ballast's size", (t) => {
  fc.assert(
    fc.property(fsState, lines, memory, (s, l, m) => {
      const i = tickInput(s, l, m, NOW);
      const d = planBallast(i).decision;
      if (d.kind !== "grow") return true;
      const afterStep = i.usedRatio + d.bytes / i.sizeBytes;
      return (
        usedWithBallast(i) * 100 <= l.createUsedPercent &&
        afterStep * 100 <= l.createUsedPercent + 1e-9 &&
        d.bytes > 0 &&
        d.bytes <= STEP_BYTES &&
        i.heldBytes + d.bytes <= i.target
      );
    }),
    { numRuns: 5000 },
  );
  t.pass();
});

test("property: never grown while a release is called for; a release is not followed by growth at once", (t) => {
  fc.assert(
    fc.property(fsState, lines, memory, (s, l, m) => {
      const i = tickInput(s, l, m, NOW);
      const p = planBallast(i);
      const calledFor =
        i.usedRatio * 100 >= l.releaseUsedPercent ||
        (i.fullInSeconds * 1000 < l.releaseFullHorizonMs &&
          !(m.grewAt !== null && NOW - m.grewAt < l.fillWindowMs));
      if (calledFor && p.decision.kind === "grow") return false;
      if (p.decision.kind !== "release") return true;
      // The release done: the file is gone, remembered as released; the same tick again must wait.
      const next = planBallast({
        ...i,
        exists: false,
        heldBytes: 0,
        memory: { ...p.memory, released: { at: NOW, by: "agent" } },
      });
      return next.decision.kind !== "grow";
    }),
    { numRuns: 5000 },
  );
  t.pass();
});

test("property: hysteresis: after a release, growth only once space was back for recreate_after", (t) => {
  fc.assert(
    fc.property(
      lines,
      fc.integer({ min: 64 * MiB, max: 2 ** 44 }),
      fc.array(
        fc.record({
          dt: fc.integer({ min: 1000, max: 30 * 60_000 }),
          usedRatio: fc.double({ min: 0, max: 1, noNaN: true }),
          fullInSeconds: fc.oneof(
            fc.constant(Infinity),
            fc.double({ min: 0, max: 5 * 86400, noNaN: true }),
          ),
        }),
        { minLength: 1, maxLength: 60 },
      ),
      (l, sizeBytes, ticks) => {
        let m: Memory = { grewAt: null, released: { at: NOW, by: "agent" }, spaceBackSince: null };
        let now = NOW;
        /** Since when every tick has seen space back (null: the last one did not). */
        let backSince: number | null = null;
        for (const k of ticks) {
          now += k.dt;
          const i: PlanInput = {
            now,
            sizeBytes,
            usedRatio: k.usedRatio,
            fullInSeconds: k.fullInSeconds,
            exists: false,
            heldBytes: 0,
            target: targetBytes("auto", sizeBytes),
            memory: m,
            lines: l,
          };
          const back =
            usedWithBallast(i) * 100 <= l.createUsedPercent &&
            k.usedRatio * 100 < l.releaseUsedPercent &&
            k.fullInSeconds * 1000 >= l.releaseFullHorizonMs;
          backSince = back ? (backSince ?? now) : null;
          const p = planBallast(i);
          if (p.decision.kind === "grow") {
            if (backSince === null || now - backSince < l.recreateAfterMs) return false;
            return true; // taken again: the hysteresis is over
          }
          m = p.memory;
        }
        return true;
      },
    ),
    { numRuns: 3000 },
  );
  t.pass();
});
