// Stalls seen while they last, on real parts: an ext4 loop device frozen with fsfreeze under the
// fsync probe and a real "database" process (a small C program named stemedb-walw writing and
// fdatasyncing a WAL file from a second thread), a loop device whose backing file sits on a
// frozen filesystem (requests in flight, no completions), the agent's own history file on a
// frozen filesystem, and a device slowed by cgroup io.max under the same database process.
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";
import { Registry } from "prom-client";
import { FsyncProbeCollector } from "../collectors/fsync_probe/collector.js";
import { fsyncProbeSinks } from "../collectors/fsync_probe/sink.js";
import { StallsCollector } from "../collectors/stalls/collector.js";
import type { StallsObservation } from "../collectors/stalls/observation.js";
import { stallsSinks } from "../collectors/stalls/sink.js";
import type { HistoryStore } from "../core/history/store.js";
import type { StallLimits } from "../core/stalls.js";
import { isStemedbDatabase } from "../judge/index.js";
import {
  agentctl,
  hasCommand,
  isRoot,
  QUIET_COLLECTORS,
  startAgent,
  tempDir,
} from "./helpers/agent-process.js";
import { compileC } from "./helpers/cc.js";
import { makeLoopFs } from "./helpers/loop.js";
import { buildAreas } from "../agent/status/areas.js";
import { diagnose, stepOf } from "../agent/status/diagnose.js";
import type { Observations } from "../collectors/observations.js";
import { loadConfig } from "../core/config/load.js";
import { Latest } from "../core/latest.js";
import { historyIn, quietLog, routed, sleep } from "./helpers/quiet.js";
import { slowWrites, slowWritesUnavailable } from "./helpers/throttle.js";

const LIMITS: StallLimits = { slow_seconds: 1, stall_seconds: 2.5 };

/** The configuration the agent would load from this TOML (the embedded defaults besides). */
function configWith(toml: string) {
  const { dir, cleanup } = tempDir("sa-stalls-cfg-");
  try {
    const file = join(dir, "agent.toml");
    writeFileSync(file, toml);
    const r = loadConfig({ env: {}, file });
    if (!r.ok) throw new Error(r.problems.join("\n"));
    return r.loaded.config;
  } finally {
    cleanup();
  }
}

/**
 * The stand-in database: its comm is the file name (stemedb-walw, which the judge calls the
 * database); a second thread overwrites 4 KiB blocks of argv[1] and fdatasyncs each, printing
 * "ready" after the first, so the thread stuck in the kernel is not the process's main thread.
 */
const WALW_C = `
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static const char *path;
static void *writer(void *arg) {
  (void)arg;
  int fd = open(path, O_WRONLY | O_CREAT, 0600);
  if (fd < 0) { perror("open"); _exit(1); }
  char block[4096];
  memset(block, 'w', sizeof block);
  for (long i = 0;; i++) {
    block[0] = (char)i;
    if (pwrite(fd, block, sizeof block, (i % 256) * 4096) != sizeof block) { perror("pwrite"); _exit(1); }
    if (fdatasync(fd) != 0) { perror("fdatasync"); _exit(1); }
    if (i == 0) { printf("ready\\n"); fflush(stdout); }
    usleep(20000);
  }
  return 0;
}
int main(int argc, char **argv) {
  if (argc < 2) return 2;
  path = argv[1];
  pthread_t t;
  pthread_create(&t, 0, writer, 0);
  for (;;) pause();
}
`;

let walw: string | null = null;
let removeBin = () => {};
test.before(() => {
  if (!isRoot || !hasCommand("gcc") || !hasCommand("fsfreeze")) return;
  const { dir, cleanup } = tempDir("sa-stalls-bin-");
  removeBin = cleanup;
  chmodSync(dir, 0o755);
  walw = compileC(dir, "stemedb-walw", WALW_C);
});
test.after.always(() => removeBin());

/** Starts the stand-in database on `file`; resolves once its first fdatasync is done. */
async function database(
  t: ExecutionContext,
  file: string,
  wrap: readonly string[] = [],
): Promise<ChildProcess> {
  const cmd = [...wrap, walw as string, file];
  const child = spawn(cmd[0] as string, cmd.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
  t.teardown(() => {
    child.kill("SIGKILL");
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on("data", (d: Buffer) => {
      if (d.toString().includes("ready")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`stemedb-walw exited (${code})`)));
  });
  return child;
}

function stallsOn(walDir: string, registry: Registry, history: HistoryStore | null) {
  return routed(stallsSinks(registry, quietLog, walDir, LIMITS), history, () => {
    return new StallsCollector({
      procPath: "/proc",
      sysPath: "/sys",
      walDir,
      isDatabase: isStemedbDatabase,
    });
  });
}

/** A metric's value for the labels (in prom-client's order), or NaN. */
async function value(registry: Registry, name: string, labels: string): Promise<number> {
  const text = await registry.metrics();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(" ") + 1));
}

const kinds = (h: HistoryStore) => {
  h.flush();
  return h.events({ since: 0, limit: 1000 }).map((e) => e.kind);
};

/** The duration a cleared event's message gives ("... done after 3.2 s (was stall)"). */
const duration = (message: string | undefined): number =>
  Number(/done after ([\d.]+) s/.exec(message ?? "")?.[1] ?? NaN);

const argv = (cmd: string[]): [string, string[]] => [cmd[0] as string, cmd.slice(1)];

function skip(t: ExecutionContext): boolean {
  if (walw !== null) return false;
  t.pass("skipped: needs root, gcc and fsfreeze");
  return true;
}

test.serial(
  "a frozen WAL filesystem: the probe and a database thread stuck in a write on segment.1.wal are " +
    "reported while the freeze lasts (events, gauges rising) and cleared with their duration after thaw",
  async (t) => {
    if (skip(t)) return;
    const { dir, cleanup } = tempDir("sa-stalls-");
    t.teardown(cleanup);
    const lfs = makeLoopFs(dir, { sizeMiB: 64 });
    t.teardown(() => lfs.cleanup());
    const wal = join(lfs.mnt, "wal");
    mkdirSync(wal);
    mkdirSync(join(dir, "state"));
    const history = historyIn(join(dir, "state"));
    t.teardown(() => history.close());
    const registry = new Registry();
    const stalls = stallsOn(wal, registry, history);
    const probe = routed(fsyncProbeSinks(registry, quietLog, LIMITS), history, (emit) => {
      return new FsyncProbeCollector({
        dirs: [wal],
        blockSize: 4096,
        deadlineMs: 300,
        procPath: "/proc",
        emit,
      });
    });
    t.teardown(() => probe.close());
    const db = await database(t, join(wal, "segment.1.wal"));
    // Registered last, so it runs first: thaw before anything waits on the frozen filesystem.
    t.teardown(() => spawnSync("fsfreeze", ["-u", lfs.mnt]));
    for (let i = 0; i < 40 && (await probe.once()).probes[0]?.state !== "ok"; i++) await sleep(250);
    const healthy = await stalls.once();
    t.true(healthy.db.processes >= 1, "the stand-in is found as the database");
    t.is(healthy.db.unknown, null, "root may read its syscall file");

    execFileSync("fsfreeze", ["-f", lfs.mnt]);
    let o: StallsObservation | null = null;
    for (let i = 0; i < 60; i++) {
      await probe.once();
      o = await stalls.once();
      const dbAge = await value(
        registry,
        "stemedb_agent_stall_ongoing_seconds",
        `source="db",target="${wal}"`,
      );
      const probeAge = await value(
        registry,
        "stemedb_agent_stall_ongoing_seconds",
        `source="probe",target="${lfs.mnt}"`,
      );
      if (dbAge >= 3 && probeAge >= 3) break;
      await sleep(250);
    }
    const stuck = o?.db.threads[0];
    t.truthy(stuck, JSON.stringify(o));
    t.is(stuck?.file, "segment.1.wal");
    t.is(stuck?.pid, db.pid);
    t.not(stuck?.tid, db.pid, "the writer thread, not the main one");
    t.true(["write", "pwrite64", "fdatasync", "fsync"].includes(stuck?.call ?? ""), stuck?.call);
    t.true(
      (await value(
        registry,
        "stemedb_agent_stall_ongoing_seconds",
        `source="db",target="${wal}"`,
      )) >= 2.5,
    );
    t.true(
      (await value(
        registry,
        "stemedb_agent_stall_ongoing_seconds",
        `source="probe",target="${lfs.mnt}"`,
      )) >= 2.5,
    );
    for (const s of ["db", "probe"])
      for (const level of ["slow", "stall"])
        t.is(
          await value(
            registry,
            "stemedb_agent_stall_episodes_total",
            `source="${s}",level="${level}"`,
          ),
          1,
          `${s} ${level}`,
        );
    // agentctl status and diagnose read the same observation: the area names the file and thread.
    const latest = new Latest<Observations>();
    if (o) latest.set("stalls", o);
    const cfg = configWith(
      `[wal]\ndir = "${wal}"\n[stalls]\nslow_after = "1s"\nstall_after = "2500ms"\n`,
    );
    const area = buildAreas(cfg, latest, history, { verdict: "healthy", reasons: [] }).find(
      (a) => a.area === "stalls",
    );
    t.is(area?.verdict, "crit", JSON.stringify(area));
    t.regex(
      area?.summary ?? "",
      /^database (write|pwrite64|fdatasync|fsync) on segment\.1\.wal in flight/,
    );
    const step1 = stepOf(diagnose(cfg, latest, null), "slow-fsync", 1);
    t.is(step1?.verdict, "crit");
    t.regex(step1?.evidence ?? "", /in flight now: the database's \w+ on segment\.1\.wal/);
    const during = kinds(history);
    for (const k of ["stall.db.slow", "stall.db.stall", "stall.probe.slow", "stall.probe.stall"])
      t.true(during.includes(k), `${k} while frozen: ${during.join(",")}`);
    t.false(during.includes("stall.db.cleared"), "not cleared while frozen");

    execFileSync("fsfreeze", ["-u", lfs.mnt]);
    for (let i = 0; i < 40; i++) {
      await probe.once();
      await stalls.once();
      const k = kinds(history);
      if (k.includes("stall.db.cleared") && k.includes("stall.probe.cleared")) break;
      await sleep(250);
    }
    const events = history.events({ since: 0, limit: 1000 });
    for (const source of ["db", "probe"]) {
      const cleared = events.find((e) => e.kind === `stall.${source}.cleared`);
      t.truthy(cleared, `${source} cleared after thaw`);
      t.true(duration(cleared?.message) >= 2.5, cleared?.message);
      t.regex(cleared?.message ?? "", /was stall/);
    }
    t.regex(
      events.find((e) => e.kind === "stall.db.stall")?.message ?? "",
      /segment\.1\.wal/,
      "the WAL file is named",
    );
    t.is(
      await value(registry, "stemedb_agent_stall_ongoing_seconds", `source="db",target="${wal}"`),
      0,
    );
  },
);

test.serial(
  "without CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH, another user's database thread stuck in a WAL write " +
    "reads as unknown, never as no stall",
  async (t) => {
    if (skip(t)) return;
    if (!hasCommand("setpriv")) return t.pass("skipped: no setpriv");
    const { dir, cleanup } = tempDir("sa-stalls-perm-");
    t.teardown(cleanup);
    chmodSync(dir, 0o755); // the database's user reaches its WAL directory through it
    const lfs = makeLoopFs(dir, { sizeMiB: 64 });
    t.teardown(() => lfs.cleanup());
    const wal = join(lfs.mnt, "wal");
    mkdirSync(wal);
    chmodSync(wal, 0o777);
    const db = await database(t, join(wal, "segment.3.wal"), [
      "setpriv",
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
    ]);
    t.teardown(() => spawnSync("fsfreeze", ["-u", lfs.mnt]));
    execFileSync("fsfreeze", ["-f", lfs.mnt]);
    // Wait for the writer thread to block in the frozen filesystem.
    const inD = () =>
      readdirSync(`/proc/${db.pid}/task`).some((tid) => {
        const s = readFileSync(`/proc/${db.pid}/task/${tid}/stat`, "utf8");
        return s.slice(s.lastIndexOf(")") + 2, s.lastIndexOf(")") + 3) === "D";
      });
    for (let i = 0; i < 50 && !inD(); i++) await sleep(100);
    t.true(inD(), "the writer thread is in D");
    const once = fileURLToPath(new URL("./helpers/stalls-once.js", import.meta.url));
    const run = (wrap: string[]) => {
      const r = spawnSync(...argv([...wrap, process.execPath, once, wal]), { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`stalls-once: ${r.stderr}`);
      return JSON.parse(r.stdout) as StallsObservation["db"];
    };
    const blind = run(["setpriv", "--bounding-set=-sys_ptrace,-dac_read_search,-dac_override"]);
    t.log(JSON.stringify(blind));
    t.is(blind.processes, 1, "the database process is still seen (its stat is world-readable)");
    t.deepEqual(blind.threads, []);
    t.regex(
      blind.unknown ?? "",
      /syscall: EACCES \(needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH\)/,
    );
    const seeing = run([]);
    t.is(seeing.unknown, null);
    t.is(seeing.threads[0]?.file, "segment.3.wal", "with the capabilities, the stall is seen");
  },
);

test.serial(
  "database processes exiting while the scan reads them are skipped, never an error",
  async (t) => {
    if (skip(t)) return;
    const { dir, cleanup } = tempDir("sa-stalls-churn-");
    t.teardown(cleanup);
    // A stand-in "database" (comm stemedb-churn) that exits at once, started over and over.
    const bin = join(dir, "stemedb-churn");
    copyFileSync("/bin/true", bin);
    const churn = spawn("sh", ["-c", `while :; do "${bin}"; "${bin}" & done`], { stdio: "ignore" });
    t.teardown(() => {
      churn.kill("SIGKILL");
    });
    const stalls = stallsOn(join(dir, "wal"), new Registry(), null);
    let seen = 0;
    for (let i = 0; i < 60; i++) {
      // A full /proc walk every 5 s: the short-lived ones are found only at those walks.
      const o = await stalls.once();
      seen += o.db.processes;
      t.deepEqual(o.db.threads, []);
      await sleep(100);
    }
    t.log(`${seen} database processes counted in 60 samples, most gone before being read`);
  },
);

test.serial(
  "a loop device whose backing file is on a frozen filesystem keeps an O_DIRECT write in flight with " +
    "no completions: its age grows while frozen and clears after thaw",
  async (t) => {
    if (skip(t)) return;
    const { dir, cleanup } = tempDir("sa-stalls-dev-");
    t.teardown(cleanup);
    const outer = makeLoopFs(dir, { sizeMiB: 64 });
    t.teardown(() => outer.cleanup());
    const image = join(outer.mnt, "inner.img");
    execFileSync("truncate", ["-s", "16M", image]);
    const inner = execFileSync("losetup", ["--find", "--show", image], { encoding: "utf8" }).trim();
    const device = inner.replace("/dev/", "");
    t.teardown(() => spawnSync("losetup", ["-d", inner]));
    mkdirSync(join(dir, "state"));
    const history = historyIn(join(dir, "state"));
    t.teardown(() => history.close());
    const registry = new Registry();
    const stalls = stallsOn(join(dir, "no-wal"), registry, history);
    let writer: ChildProcess | null = null;
    t.teardown(() => writer?.kill("SIGKILL"));
    t.teardown(() => spawnSync("fsfreeze", ["-u", outer.mnt]));
    await stalls.once();
    execFileSync("fsfreeze", ["-f", outer.mnt]);
    writer = spawn("dd", ["if=/dev/zero", `of=${inner}`, "bs=4k", "count=1", "oflag=direct"], {
      stdio: "ignore",
    });
    const ages: number[] = [];
    for (let i = 0; i < 40; i++) {
      const o = await stalls.once();
      ages.push(o.devices.find((d) => d.device === device)?.age_seconds ?? 0);
      if ((ages.at(-1) ?? 0) >= 3) break;
      await sleep(250);
    }
    t.log(`ages while frozen: ${ages.map((a) => a.toFixed(1)).join(" ")}`);
    t.true((ages.at(-1) ?? 0) >= 3, "the oldest request's age grew past the stall threshold");
    t.true(
      (await value(
        registry,
        "stemedb_agent_stall_ongoing_seconds",
        `source="device",target="${device}"`,
      )) >= 2.5,
    );
    const during = kinds(history);
    t.true(
      during.includes("stall.device.slow") && during.includes("stall.device.stall"),
      during.join(),
    );
    execFileSync("fsfreeze", ["-u", outer.mnt]);
    await new Promise<void>((r) => writer?.once("exit", () => r()));
    for (let i = 0; i < 20; i++) {
      const o = await stalls.once();
      if (
        !o.devices.some((d) => d.device === device) &&
        kinds(history).includes("stall.device.cleared")
      )
        break;
      await sleep(250);
    }
    const cleared = history
      .events({ since: 0, limit: 100 })
      .find((e) => e.kind === "stall.device.cleared" && e.subject === device);
    t.truthy(cleared, "cleared after thaw");
    t.true(
      Number.isNaN(
        await value(
          registry,
          "stemedb_agent_stall_ongoing_seconds",
          `source="device",target="${device}"`,
        ),
      ),
      "no series once nothing waits",
    );
  },
);

test.serial(
  "a slowed device (cgroup io.max): the database thread in D inside fdatasync is named with its WAL file",
  async (t) => {
    if (skip(t)) return;
    const why = slowWritesUnavailable();
    if (why) return t.pass(`skipped: ${why}`);
    const { dir, cleanup } = tempDir("sa-stalls-slow-");
    t.teardown(cleanup);
    const lfs = makeLoopFs(dir, { sizeMiB: 64 });
    t.teardown(() => lfs.cleanup());
    const wal = join(lfs.mnt, "wal");
    mkdirSync(wal);
    const registry = new Registry();
    const stalls = stallsOn(wal, registry, null);
    const slow = slowWrites(`sa-stalls-${process.pid}`, lfs.device, 2);
    t.teardown(() => slow.cleanup());
    const db = await database(t, join(wal, "segment.9.wal"));
    slow.add(db.pid as number);
    // Each fdatasync waits for throttled writes: sampled for a few seconds, the thread is found in
    // D inside it, on its WAL file, again and again (the age is how long one sample after another).
    const seen = new Map<string, number>();
    for (let i = 0; i < 50; i++) {
      const o = await stalls.once();
      for (const th of o.db.threads)
        seen.set(
          `${th.call} ${th.file}`,
          Math.max(seen.get(`${th.call} ${th.file}`) ?? 0, th.age_seconds),
        );
      await sleep(100);
    }
    t.log([...seen].map(([k, a]) => `${k}: longest seen ${a.toFixed(2)} s`).join("; "));
    t.true(
      [...seen.keys()].some((k) => /^(fdatasync|fsync|pwrite64|write) segment\.9\.wal$/.test(k)),
      [...seen.keys()].join(),
    );
  },
);

test.serial(
  "a history file on a frozen filesystem: the watchdog thread logs while the agent's write is stuck, " +
    "and the event with the real duration lands after thaw",
  async (t) => {
    if (skip(t)) return;
    const { dir, cleanup } = tempDir("sa-stalls-hist-");
    t.teardown(cleanup);
    const lfs = makeLoopFs(dir, { sizeMiB: 64 });
    t.teardown(() => lfs.cleanup());
    const agentDir = join(lfs.mnt, "agent");
    mkdirSync(agentDir, { mode: 0o755 });
    const agent = await startAgent({
      dir: agentDir,
      socket: join(dir, "ctl.sock"),
      extraToml:
        QUIET_COLLECTORS.replace("[collectors.netstat]\nenabled = false\n", "") +
        `[collectors.netstat]\ninterval = "1s"\n` +
        `[history]\nflush_interval = "1s"\n[stalls]\nslow_after = "1s"\nstall_after = "2s"\n`,
    });
    t.teardown(() => agent.stop("SIGKILL").then(() => undefined));
    t.teardown(() => spawnSync("fsfreeze", ["-u", lfs.mnt]));
    await sleep(1500); // a first flush while healthy
    execFileSync("fsfreeze", ["-f", lfs.mnt]);
    const slowLine = await agent.waitForLog(
      (l) => l["watchdog"] === "history" && l["stall_level"] === "slow",
      20_000,
    );
    const stallLine = await agent.waitForLog(
      (l) => l["watchdog"] === "history" && l["stall_level"] === "stall",
      20_000,
    );
    t.log(String(slowLine["msg"]), "/", String(stallLine["msg"]));
    t.true(Number(stallLine["seconds"]) >= 2);
    await sleep(1000);
    execFileSync("fsfreeze", ["-u", lfs.mnt]);
    const back = await agent.waitForLog(
      (l) => typeof l["msg"] === "string" && /^history: \w+ took/.test(l["msg"]),
      20_000,
    );
    t.true(Number(back["seconds"]) >= 3, `the real duration: ${String(back["seconds"])} s`);
    let events: Array<{ kind: string; message: string }> = [];
    for (let i = 0; i < 20; i++) {
      const r = agentctl(["--socket", agent.socket, "events", "--json"]);
      events = (JSON.parse(r.stdout || "{}") as { events?: typeof events }).events ?? [];
      if (events.some((e) => e.kind === "stall.history.cleared")) break;
      await sleep(500);
    }
    const cleared = events.find((e) => e.kind === "stall.history.cleared");
    t.truthy(cleared, JSON.stringify(events.map((e) => e.kind)));
    t.true(duration(cleared?.message) >= 3, cleared?.message);
    t.true(events.some((e) => e.kind === "stall.history.stall"));
    const metrics = await fetch(`${agent.url}/metrics`).then((r) => r.text());
    t.regex(metrics, /stemedb_agent_stall_episodes_total\{source="history",level="stall"\} [1-9]/);
  },
);
