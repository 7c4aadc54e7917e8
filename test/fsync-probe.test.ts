// The fsync probe on real filesystems: a working probe, each failure errno for real, a real
// stall (fsfreeze) and a real slow device (fio's writeback flood on a loop device).
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import { Registry } from "prom-client";
import { FsyncProbeCollector } from "../collectors/fsync_probe/collector.js";
import { fsyncProbeSinks } from "../collectors/fsync_probe/sink.js";
import type { FsyncProbeObservation, ProbeOutcome } from "../collectors/fsync_probe/observation.js";
import { PROBE_FILE } from "../collectors/fsync_probe/protocol.js";
import { HistoryStore } from "../core/history/store.js";
import { CoreMetrics } from "../core/metrics/registry.js";
import { hasCommand, isRoot, tempDir } from "./helpers/agent-process.js";
import { makeLoopFs, makeTmpfs } from "./helpers/loop.js";
import { defaultRetention, quietLog, routed, sleep } from "./helpers/quiet.js";
import { withHistoryFile } from "./helpers/history-file.js";

function probe(dirs: string[], extra: { deadlineMs?: number; history?: HistoryStore } = {}) {
  const registry = new Registry();
  const { col, once } = routed(
    fsyncProbeSinks(registry, quietLog),
    extra.history ?? null,
    (emit) =>
      new FsyncProbeCollector({
        dirs,
        blockSize: 4096,
        deadlineMs: extra.deadlineMs ?? 5000,
        procPath: "/proc",
        emit,
      }),
  );
  return { col, registry, once };
}

async function metricText(r: Registry): Promise<string> {
  return r.metrics();
}

function first(o: FsyncProbeObservation): ProbeOutcome {
  const p = o.probes[0];
  if (!p) throw new Error("no probe outcome");
  return p;
}

test("a probe writes one block into a reused 1 MiB file and fdatasyncs it", async (t) => {
  const { dir } = tempDir();
  const { col, registry, once } = probe([dir]);
  t.teardown(() => col.close());
  for (let i = 0; i < 5; i++) {
    const p = first(await once());
    t.is(p.state, "ok", JSON.stringify(p));
    if (p.state === "ok") t.true(p.seconds > 0 && p.seconds < 5);
  }
  const st = statSync(join(dir, PROBE_FILE));
  t.is(st.size, 1024 * 1024, "never extended");
  t.is(st.mode & 0o777, 0o600);
  const text = await metricText(registry);
  t.regex(text, /stemedb_agent_fsync_probe_duration_seconds_count\{mountpoint="[^"]+"\} 5/);
  t.regex(text, /stemedb_agent_fsync_probe_stalled_seconds\{mountpoint="[^"]+"\} 0/);
});

test("a missing directory is an ENOENT probe error, with an event, and never created", async (t) => {
  const { dir } = tempDir();
  const missing = join(dir, "wal-not-here");
  const metrics = new CoreMetrics();
  const history = new HistoryStore({
    stateDir: join(dir, "state"),
    retention: defaultRetention(),
    log: quietLog,
    metrics,
  });
  const { col, registry, once } = probe([missing], { history });
  t.teardown(() => col.close());
  const p = first(await once());
  t.like(p, { state: "error", errno: "ENOENT" });
  await once();
  t.regex(
    await metricText(registry),
    /stemedb_agent_fsync_probe_errors_total\{mountpoint="[^"]+",errno="ENOENT"\} 2/,
  );
  t.throws(() => statSync(missing));
  history.flush();
  const ev = withHistoryFile(history, (db) =>
    db.prepare("SELECT kind, severity FROM events WHERE class = 'disk'").all(),
  );
  t.deepEqual(
    ev,
    [{ kind: "fsync_probe.failed", severity: "warn" }],
    "one event for the transition, not one per probe",
  );
  history.close();
});

test("a read-only filesystem gives EROFS", async (t) => {
  if (!isRoot || !hasCommand("losetup")) return t.pass("skipped: needs root for a loop device");
  const { dir } = tempDir();
  const lfs = makeLoopFs(dir, { sizeMiB: 64, mountOptions: "ro" });
  t.teardown(() => lfs.cleanup());
  const { col, registry, once } = probe([lfs.mnt]);
  t.teardown(() => col.close());
  t.like(first(await once()), { state: "error", errno: "EROFS", mountpoint: lfs.mnt });
  t.regex(
    await metricText(registry),
    new RegExp(
      `stemedb_agent_fsync_probe_errors_total\\{mountpoint="${lfs.mnt}",errno="EROFS"\\} 1`,
    ),
  );
});

test("a full filesystem gives ENOSPC, and the probe works again once space returns", async (t) => {
  if (!isRoot) return t.pass("skipped: needs root to mount a tmpfs");
  const { dir } = tempDir();
  const mnt = makeTmpfs(dir, "mnt", "2m", t.teardown.bind(t));
  spawnSync("dd", ["if=/dev/zero", `of=${join(mnt, "filler")}`, "bs=64k"], { stdio: "ignore" });
  const { col, once } = probe([mnt]);
  t.teardown(() => col.close());
  t.like(first(await once()), { state: "error", errno: "ENOSPC", mountpoint: mnt });
  execFileSync("rm", [join(mnt, "filler")]);
  t.like(first(await once()), { state: "ok", mountpoint: mnt });
});

test(
  "a frozen filesystem stalls the probe; the agent is told at the deadline and the real duration is " +
    "recorded when it thaws",
  async (t) => {
    if (!isRoot || !hasCommand("fsfreeze"))
      return t.pass("skipped: needs root and fsfreeze for a loop device");
    const { dir } = tempDir();
    const lfs = makeLoopFs(dir, { sizeMiB: 64 });
    t.teardown(() => lfs.cleanup());
    const { col, registry, once } = probe([lfs.mnt], { deadlineMs: 300 });
    t.teardown(() => col.close());
    // Registered last, so it runs first: thaw before anything waits on the frozen filesystem.
    t.teardown(() => spawnSync("fsfreeze", ["-u", lfs.mnt]));
    // Healthy first. Its very first probe (worker start, file creation) may outlast the 300 ms
    // deadline when another test floods the same disk: then wait for it to come back.
    let ok = false;
    for (let i = 0; i < 40 && !ok; i++) {
      ok = first(await once()).state === "ok";
      if (!ok) await sleep(250);
    }
    t.true(ok, "a healthy probe before the freeze");
    const counts = async () => {
      const text = await metricText(registry);
      const n = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
      return {
        all: n(/stemedb_agent_fsync_probe_duration_seconds_count\{mountpoint="[^"]+"\} (\d+)/),
        fast: n(
          /stemedb_agent_fsync_probe_duration_seconds_bucket\{le="0\.5",mountpoint="[^"]+"\} (\d+)/,
        ),
      };
    };
    const before = await counts();
    execFileSync("fsfreeze", ["-f", lfs.mnt]);
    const t0 = performance.now();
    const stalled = first(await once());
    t.is(stalled.state, "stalled");
    t.true(
      performance.now() - t0 < 2000,
      "collect returned at its deadline, not when the disk did",
    );
    await sleep(700);
    const again = first(await once());
    t.is(again.state, "stalled", "no second probe is started while one is stuck");
    if (again.state === "stalled")
      t.true(again.stalled_seconds >= 0.9, `stalled ${again.stalled_seconds}s`);
    t.regex(
      await metricText(registry),
      /stemedb_agent_fsync_probe_stalled_seconds\{mountpoint="[^"]+"\} (0\.9|1\.|[2-9])/,
    );
    execFileSync("fsfreeze", ["-u", lfs.mnt]);
    await sleep(300);
    const after = await counts();
    t.is(after.all, before.all + 1, "the late probe was observed");
    t.is(after.fast, before.fast, "and it took over 0.5 s");
    t.is(first(await once()).state, "ok");
  },
);

test("the probe shows the latency when a writeback flood saturates the device", async (t) => {
  if (!isRoot || !hasCommand("fio")) return t.pass("skipped: needs root and fio for a loop device");
  const { dir } = tempDir();
  const lfs = makeLoopFs(dir, { sizeMiB: 512 });
  t.teardown(() => lfs.cleanup());
  const { col, once } = probe([lfs.mnt]);
  t.teardown(() => col.close());
  const sample = async (n: number): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const p = first(await once());
      if (p.state === "ok") out.push(p.seconds);
      await sleep(150);
    }
    return out.sort((a, b) => a - b);
  };
  const median = (v: number[]) => v[Math.floor(v.length / 2)] ?? 0;
  const idle = await sample(10);
  const fio = spawn(
    "fio",
    [
      "--name=flood",
      `--directory=${lfs.mnt}`,
      "--rw=write",
      "--bs=1M",
      "--size=300M",
      "--ioengine=psync",
      "--runtime=8",
      "--time_based",
      "--fsync=64",
    ],
    { stdio: "ignore" },
  );
  t.teardown(() => fio.kill("SIGKILL"));
  await sleep(1500);
  const loaded = await sample(15);
  fio.kill("SIGTERM");
  t.log(
    `fsync probe median idle ${(median(idle) * 1000).toFixed(2)} ms, ` +
      `under the flood ${(median(loaded) * 1000).toFixed(2)} ms (max ` +
      `${((loaded.at(-1) ?? 0) * 1000).toFixed(2)} ms)`,
  );
  t.true(median(loaded) > 2 * median(idle), "the flood shows in the probe");
});
