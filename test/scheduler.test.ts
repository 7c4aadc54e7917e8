import { readFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import type { Collector } from "../core/collector.js";
import { ms } from "../core/config/units.js";
import { run } from "../core/exec.js";
import { CoreMetrics } from "../core/metrics/registry.js";
import { phases, Scheduler } from "../core/scheduler.js";
import { tempDir } from "./helpers/agent-process.js";
import { alive, quietLog, sleep } from "./helpers/quiet.js";

async function counter(m: CoreMetrics, collector: string, reason: string): Promise<number> {
  const v = (await m.collectorErrors.get()).values.find(
    (x) => x.labels.collector === collector && x.labels.reason === reason,
  );
  return v?.value ?? 0;
}

test("a throwing, a hanging and a never-settling collector do not delay a steady one", async (t) => {
  const metrics = new CoreMetrics();
  const sched = new Scheduler(metrics, quietLog);
  const { dir } = tempDir();
  const pidFile = join(dir, "grandchild.pid");

  const steadyTimes: number[] = [];
  const steady: Collector = {
    name: "steady",
    collect: () => (steadyTimes.push(performance.now()), Promise.resolve(1)),
  };
  const thrower: Collector = { name: "thrower", collect: () => Promise.reject(new Error("boom")) };
  let childPid = 0;
  const hanger: Collector = {
    name: "hanger",
    // A shell that starts a grandchild and waits: the whole process group must die on timeout.
    collect: async ({ signal }) => {
      const p = run("sh", ["-c", `sleep 600 & echo $! > ${pidFile}; wait`], {
        signal,
        killGrace: 200,
      });
      await sleep(50);
      return p.then((r) => {
        childPid = r.pid;
        return r;
      });
    },
  };
  let concurrent = 0;
  let maxConcurrent = 0;
  let ignorerCalls = 0;
  const ignorer: Collector = {
    name: "ignorer",
    collect: () => {
      ignorerCalls++;
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      return new Promise(() => undefined); // ignores its signal and never settles
    },
  };

  sched.add(steady, { interval: ms(100), timeout: ms(1000), jitter: ms(0) });
  sched.add(thrower, { interval: ms(100), timeout: ms(1000), jitter: ms(0) });
  sched.add(hanger, { interval: ms(5000), timeout: ms(600), jitter: ms(0) });
  sched.add(ignorer, { interval: ms(100), timeout: ms(150), jitter: ms(0) });
  sched.start();
  await sleep(1600);
  const grandchild = Number(readFileSync(pidFile, "utf8"));
  await sched.stop(100);

  // The steady collector kept its 100 ms cadence throughout.
  // Bounds are loose for a loaded CI machine; a serial scheduler would fail them by far
  // (the ignorer never settles, the hanger holds 600 ms).
  t.true(
    steadyTimes.length >= 10 && steadyTimes.length <= 18,
    `steady ran ${steadyTimes.length} times in 1.6 s`,
  );
  const gaps = steadyTimes.slice(1).map((v, i) => v - (steadyTimes[i] ?? v));
  t.true(Math.max(...gaps) < 450, `largest gap ${Math.max(...gaps).toFixed(0)} ms`);

  t.true((await counter(metrics, "thrower", "error")) >= 10);
  t.is(await counter(metrics, "hanger", "timeout"), 1);
  t.is(await counter(metrics, "ignorer", "timeout"), 1);
  t.true(
    (await counter(metrics, "ignorer", "overlap")) >= 8,
    "each due slot while hung counts as overlap",
  );
  t.is(ignorerCalls, 1, "a hung run is never started again");
  t.is(maxConcurrent, 1);
  t.is(await counter(metrics, "steady", "error"), 0);

  // The timed-out command and its grandchild were killed (TERM to the process group).
  t.false(alive(grandchild), "grandchild of the hung command is gone");
  t.is(childPid, 0, "the hung command never produced a result");

  const st = new Map(sched.status().map((s) => [s.name, s]));
  t.is(st.get("thrower")?.last_error?.reason, "error");
  t.is(st.get("thrower")?.last_error?.message, "boom");
  t.is(st.get("hanger")?.last_error?.reason, "timeout");
  t.is(st.get("steady")?.consecutive_failures, 0);
  t.truthy(st.get("steady")?.last_success);

  const up = (await metrics.collectorUp.get()).values;
  t.is(up.find((v) => v.labels.collector === "steady")?.value, 1);
  t.is(up.find((v) => v.labels.collector === "thrower")?.value, 0);
  const durations = (await metrics.collectorDuration.get()).values.filter(
    (v) => v.labels.collector === "steady" && v.metricName?.endsWith("_count"),
  );
  t.true((durations[0]?.value ?? 0) >= 10);
});

test("a collector's published observation is the one it returned, and publish errors are counted", async (t) => {
  const metrics = new CoreMetrics();
  const sched = new Scheduler(metrics, quietLog);
  const seen: number[] = [];
  let n = 0;
  sched.add(
    { name: "pub", collect: () => Promise.resolve(++n) },
    { interval: ms(50), timeout: ms(500), jitter: ms(0) },
    (o) => seen.push(o),
  );
  sched.add(
    { name: "badpub", collect: () => Promise.resolve(1) },
    { interval: ms(50), timeout: ms(500), jitter: ms(0) },
    () => {
      throw new Error("sink broke");
    },
  );
  sched.start();
  await sleep(280);
  await sched.stop();
  t.deepEqual(
    seen,
    seen.map((_, i) => i + 1),
  );
  t.true(seen.length >= 4);
  t.true((await counter(metrics, "badpub", "error")) >= 4);
});

test("stop() aborts runs in flight and returns within its grace", async (t) => {
  const sched = new Scheduler(new CoreMetrics(), quietLog);
  let aborted = false;
  sched.add(
    {
      name: "slow",
      collect: ({ signal }) =>
        new Promise((resolve) =>
          signal.addEventListener("abort", () => {
            aborted = true;
            resolve(0);
          }),
        ),
    },
    { interval: ms(1000), timeout: ms(60_000), jitter: ms(0) },
  );
  sched.start();
  await sleep(50);
  const t0 = performance.now();
  await sched.stop(2000);
  t.true(aborted);
  t.true(performance.now() - t0 < 500);
});

test("jitter spreads first runs and a changed interval takes effect on update", async (t) => {
  let r = 0;
  const sched = new Scheduler(new CoreMetrics(), quietLog, () => (r = (r + 0.37) % 1));
  const times: number[] = [];
  sched.add(
    { name: "j", collect: () => (times.push(performance.now()), Promise.resolve(0)) },
    { interval: ms(1000), timeout: ms(500), jitter: ms(200) },
  );
  const t0 = performance.now();
  sched.start();
  await sleep(300);
  t.is(times.length, 1);
  t.true((times[0] ?? 0) - t0 >= 60, "first run delayed by its jitter");
  sched.update("j", { interval: ms(50), timeout: ms(500), jitter: ms(0) });
  await sleep(300);
  await sched.stop();
  t.true(times.length >= 5, `ran ${times.length} times after the interval dropped to 50 ms`);
});

test(
  "slower collectors start at phases of their own, on turns the fast ones wake for: " +
    "at the defaults no two ever run together",
  (t) => {
    // diskstats, fsync_probe, smart, mounts, kmsg, wal, procio at their default intervals.
    const intervals = [1000, 5000, 600_000, 30_000, 500, 30_000, 5000];
    const p = phases(intervals);
    t.deepEqual(p, [0, 500, 1000, 1500, 0, 2000, 2500]);
    // Over an hour, the second each slow collector runs in: never shared with another slow one.
    const seen = new Map<number, string>();
    intervals.forEach((iv, k) => {
      if (iv <= 1000) return;
      for (let at = p[k] ?? 0; at < 3_600_000; at += iv) {
        t.false(seen.has(at), `collector ${k} runs at ${at} ms together with ${seen.get(at)}`);
        seen.set(at, String(k));
        t.is(at % 500, 0, "on a turn the 500 ms collector wakes for anyway");
      }
    });
  },
);

test("collectors on the same slower cadence run in turns of their own, not in one burst", async (t) => {
  const sched = new Scheduler(new CoreMetrics(), quietLog);
  const slow: number[] = [];
  sched.add(
    { name: "fast", collect: () => Promise.resolve(0) },
    { interval: ms(500), timeout: ms(500), jitter: ms(0) },
  );
  for (let i = 0; i < 3; i++)
    sched.add(
      { name: `slow${i}`, collect: () => (slow.push(performance.now()), Promise.resolve(0)) },
      { interval: ms(2000), timeout: ms(500), jitter: ms(0) },
    );
  sched.start();
  await sleep(4200);
  await sched.stop();
  t.true(slow.length >= 6, `slow collectors ran ${slow.length} times`);
  // Phases 500, 1000, 1500 ms: 500 ms apart. In one phase they would run within a millisecond.
  const gaps = slow
    .slice(1)
    .map((v, i) => v - (slow[i] ?? v))
    .sort((a, b) => a - b);
  const median = gaps[Math.floor(gaps.length / 2)] ?? 0;
  t.true(median >= 250, `median gap between slow runs ${median.toFixed(1)} ms (expected ~500)`);
});

test("run() keeps maxOutput bytes and says truncated, also when one chunk crosses the limit", async (t) => {
  // One write of 64 bytes arrives as one chunk: cut at 10, truncated; at exactly 64, not.
  const cut = await run("sh", ["-c", "printf '%064d' 0"], { maxOutput: 10 });
  t.is(cut.stdout, "0000000000");
  t.true(cut.truncated);
  const whole = await run("sh", ["-c", "printf '%064d' 0"], { maxOutput: 64 });
  t.is(whole.stdout.length, 64);
  t.false(whole.truncated);
});
