// agentctl, the real binary, against a running agent with real history.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import {
  AGENTCTL_BIN,
  agentctl,
  hasCommand,
  isRoot,
  startAgent,
  tempDir,
} from "./helpers/agent-process.js";
import { makeLoopFs, makeTmpfs } from "./helpers/loop.js";
import { sleep } from "./helpers/quiet.js";
import { type Diagnosis, stepOf } from "../agent/status/diagnose.js";
import { ApiError, get } from "../agent/cli/client.js";

/**
 * A node where every area can be known and healthy: WAL and data on tmpfs, no disk or kernel
 * noise from other tests. Even a write to tmpfs can stall for tens of ms while another test's
 * storm has the machine reclaiming memory (52 ms seen in CI), so what counts as a slow fsync
 * here is set far above that: these tests are about the output, not this machine's latency.
 */
function calmNode(extra = "") {
  const shm = mkdtempSync("/dev/shm/sa-");
  const wal = join(shm, "wal");
  mkdirSync(wal);
  const toml =
    `[wal]\ndir = "${wal}"\n[stemedb]\ndata_dir = "${shm}"\n[collectors.diskstats]\ninclude = "^none$"\n` +
    `[collectors.smart]\nenabled = false\n[collectors.kmsg]\nenabled = false\n[collectors.mounts]\n` +
    `interval = "1s"\n[collectors.wal]\ninterval = "1s"\n[collectors.fsync_probe]\ninterval = "500ms"\n` +
    `[thresholds]\nfsync_p99_warn = "1s"\nfsync_p99_crit = "2s"\n${extra}`;
  return { shm, wal, toml };
}

async function settle(
  socket: string,
  until: (s: { verdict: string; areas: Array<{ area: string; verdict: string }> }) => boolean,
) {
  for (let i = 0; i < 60; i++) {
    const r = agentctl(["--socket", socket, "status", "--json"]);
    if (r.code !== 3) {
      const s = JSON.parse(r.stdout) as {
        verdict: string;
        areas: Array<{ area: string; verdict: string }>;
      };
      if (until(s)) return s;
    }
    await sleep(250);
  }
  throw new Error("status never settled");
}

const AREAS = [
  "disks",
  "fsync",
  "stalls",
  "smart",
  "mounts",
  "filesystems",
  "ballast",
  "kernel",
  "wal",
  "competing_io",
  "remediation",
  "agent",
];

test(
  "status: one line per area in a fixed order, plain when piped, exit 0 when everything known is ok; " +
    "stable JSON schema",
  async (t) => {
    const n = calmNode();
    const a = await startAgent({ extraToml: n.toml });
    t.teardown(() => a.stop("SIGKILL"));
    const s = await settle(a.socket, (x) =>
      x.areas.every((y) => y.area === "smart" || y.area === "disks" || y.verdict !== "unknown"),
    );
    t.deepEqual(
      s.areas.map((x) => x.area),
      AREAS,
    );
    const text = agentctl(["--socket", a.socket, "status"]);
    t.is(text.code, 0, text.stdout);
    t.false(text.stdout.includes("\u001b["), "no colour when piped");
    const lines = text.stdout.trim().split("\n");
    t.regex(lines[0] ?? "", /^storage OK\s+stemedb-agent \d+\.\d+\.\d+, pid \d+/);
    t.is(lines.length, 1 + AREAS.length);
    t.regex(text.stdout, /^OK\s+fsync\s+fsync p99 [\d.]+ ms over 1 min on \/dev\/shm/m);
    t.regex(text.stdout, /^OK\s+WAL\s+0 segments \(0\.0 MiB\), 0 compressed$/m);
    t.regex(text.stdout, /^UNKNOWN\s+SMART\s+/m);
    const js = JSON.parse(agentctl(["--socket", a.socket, "status", "--json"]).stdout) as Record<
      string,
      unknown
    > & { areas: Array<Record<string, unknown>> };
    t.deepEqual(Object.keys(js).sort(), [
      "agent",
      "areas",
      "collectors",
      "health",
      "history",
      "schema",
      "verdict",
    ]);
    t.is(js["schema"], 1);
    for (const area of js.areas) {
      t.deepEqual(Object.keys(area).sort(), ["area", "details", "summary", "verdict"]);
      t.true(["ok", "warn", "crit", "unknown"].includes(String(area["verdict"])));
    }
    const verbose = agentctl(["--socket", a.socket, "status", "-v"]);
    t.regex(verbose.stdout, /^collectors$/m);
  },
);

test("status on a terminal is coloured, and NO_COLOR turns it off", async (t) => {
  if (!hasCommand("script")) return t.pass("skipped: script(1) not installed");
  const n = calmNode();
  const a = await startAgent({ extraToml: n.toml });
  t.teardown(() => a.stop("SIGKILL"));
  await settle(a.socket, () => true);
  const tty = spawnSync(
    "script",
    ["-qec", `${process.execPath} ${AGENTCTL_BIN} --socket ${a.socket} status`, "/dev/null"],
    { encoding: "utf8" },
  );
  t.true(tty.stdout.includes("\u001b[32m"), "green on a terminal");
  const nocolor = spawnSync(
    "script",
    [
      "-qec",
      `NO_COLOR=1 ${process.execPath} ${AGENTCTL_BIN} --socket ${a.socket} status`,
      "/dev/null",
    ],
    { encoding: "utf8" },
  );
  t.false(nocolor.stdout.includes("\u001b["));
});

test("exit codes follow the verdict: 1 for a warning, 2 for a critical finding", async (t) => {
  const warnNode = calmNode();
  writeFileSync(join(warnNode.wal, "segment.1.wal"), Buffer.alloc(4096));
  writeFileSync(join(warnNode.wal, "segment.2.wal"), ""); // a zero-length sealed segment: warn
  writeFileSync(join(warnNode.wal, "segment.3.wal"), Buffer.alloc(4096));
  const a = await startAgent({ extraToml: warnNode.toml });
  t.teardown(() => a.stop("SIGKILL"));
  await settle(a.socket, (s) => s.areas.find((x) => x.area === "wal")?.verdict === "warn");
  const w = agentctl(["--socket", a.socket, "status"]);
  t.is(w.code, 1, w.stdout);
  t.regex(w.stdout, /^WARN\s+WAL\s+sealed segments of zero length: segment\.2\.wal$/m);

  const critNode = calmNode();
  for (const i of [1, 2, 4])
    writeFileSync(join(critNode.wal, `segment.${i}.wal`), Buffer.alloc(4096)); // #3 missing: a gap
  const b = await startAgent({ extraToml: critNode.toml });
  t.teardown(() => b.stop("SIGKILL"));
  await settle(b.socket, (s) => s.verdict === "crit");
  const c = agentctl(["--socket", b.socket, "status"]);
  t.is(c.code, 2);
  t.regex(c.stdout, /^CRIT\s+WAL\s+segments missing from the sequence: #3$/m);
});

test("history, events and top-io answer from the history file; a bad --since is a usage error", async (t) => {
  const n = calmNode(`[history]\nflush_interval = "1s"\n[collectors.procio]\ninterval = "1s"\n`);
  const a = await startAgent({ extraToml: n.toml });
  t.teardown(() => a.stop("SIGKILL"));
  // On a disk-backed directory (tmpfs writes are not storage I/O).
  const onDisk = tempDir().dir;
  const writer = spawn(
    "sh",
    [
      "-c",
      `for i in $(seq 1 30); do dd if=/dev/zero of=${join(onDisk, "blob")} bs=1M count=8 conv=fsync ` +
        `status=none; sleep 0.1; done`,
    ],
    { stdio: "ignore" },
  );
  t.teardown(() => writer.kill("SIGKILL"));
  await sleep(4000);
  const h = agentctl(["--socket", a.socket, "history", "fsync_probe_seconds", "--since", "5m"]);
  t.is(h.code, 0, h.stderr);
  t.regex(h.stdout, /^fsync_probe_seconds\{mountpoint=\/dev\/shm\} over 5m00s \(raw samples\)$/m);
  t.regex(h.stdout, /^ {2}p99 [▁▂▃▄▅▆▇█]+$/m);
  const hj = JSON.parse(
    agentctl(["--socket", a.socket, "history", "fsync_probe_seconds", "--json"]).stdout,
  ) as { series: Array<{ buckets: unknown[] }> };
  t.true((hj.series[0]?.buckets.length ?? 0) > 0);
  const none = agentctl(["--socket", a.socket, "history", "no_such_metric"]);
  t.regex(none.stdout, /no history for "no_such_metric"; recorded metrics: .*fsync_probe_seconds/);
  const ev = agentctl(["--socket", a.socket, "events", "--class", "agent"]);
  t.regex(ev.stdout, /info\s+agent\s+stemedb-agent \d+\.\d+\.\d+ started/);
  const top = agentctl(["--socket", a.socket, "top-io", "--since", "1m", "--json"]);
  t.true(
    (JSON.parse(top.stdout) as { top: Array<{ comm: string }> }).top.some(
      (r) => r.comm === "dd" || r.comm === "sh",
    ),
    top.stdout,
  );
  const bad = agentctl(["--socket", a.socket, "events", "--since", "yesterday"]);
  t.is(bad.code, 64);
  t.regex(bad.stderr, /bad request: --since: invalid duration "yesterday"/);
});

test(
  "diagnose on a disk-full WAL filesystem: the disk-full steps are critical and suggest compressing all " +
    "but the newest 20",
  async (t) => {
    if (!isRoot) return t.pass("skipped: needs root to mount a small tmpfs");
    const { dir } = tempDir();
    const mnt = makeTmpfs(dir, "walfs", "8m", t.teardown.bind(t));
    const wal = join(mnt, "wal");
    mkdirSync(wal);
    for (let i = 1; i <= 30; i++)
      writeFileSync(join(wal, `segment.${i}.wal`), Buffer.alloc(256 * 1024, i));
    const a = await startAgent({
      extraToml:
        `[wal]\ndir = "${wal}"\n[stemedb]\ndata_dir = "${mnt}"\n[collectors.diskstats]\ninclude = ` +
        `"^none$"\n[collectors.smart]\nenabled = false\n[collectors.kmsg]\nenabled = false\n` +
        `[collectors.mounts]\ninterval = "1s"\n[collectors.wal]\ninterval = "1s"\n`,
    });
    t.teardown(() => a.stop("SIGKILL"));
    await settle(
      a.socket,
      (s) => s.areas.find((x) => x.area === "filesystems")?.verdict === "crit",
    );
    const d = agentctl(["--socket", a.socket, "diagnose"]);
    t.is(d.code, 2, d.stdout);
    t.regex(
      d.stdout,
      new RegExp(
        String.raw`\n {2}CRIT\s+3\. df -h on the WAL filesystem\n\s+.*walfs: (9[5-9]\.\d|100)% used`,
      ),
    );
    t.regex(d.stdout, /-> compress all but the newest 20 segments \(10 segments;/);
    t.regex(
      d.stdout,
      /wal_compress is dry-run, it only plans; mode = "on" lets it act\): gzip \$\(ls -t /,
    );
    t.regex(
      d.stdout,
      /^CRIT\s+storage-errors\.md \(alert StorageErrors\): storage errors, disk full/m,
    );
    const js = JSON.parse(
      agentctl(["--socket", a.socket, "diagnose", "--json"]).stdout,
    ) as Diagnosis & {
      schema: number;
    };
    t.is(js.schema, 2);
    t.deepEqual(
      js.runbooks.map((r) => `${r.file} ${r.alert}`),
      [
        "slow-fsync.md WALFsyncSlow",
        "replication-lag.md ReplicationLagCritical",
        "wal-fsync-failure.md WALFsyncFailure",
        "storage-errors.md StorageErrors",
        "api-error-rate.md HighAPIErrorRate",
      ],
      "runbook order",
    );
    t.is(stepOf(js, "storage-errors", 3)?.verdict, "crit");
    t.is(stepOf(js, "storage-errors", 3)?.step, "df -h on the WAL filesystem");
    // One runbook, by id, file name or alert, any case; an unknown one is a usage error.
    for (const name of ["storage-errors", "STORAGE-ERRORS.md", "storageerrors"]) {
      const one = agentctl(["--socket", a.socket, "diagnose", name, "--json"]);
      t.is(one.code, 2, `${name}: ${one.stderr}`);
      const only = JSON.parse(one.stdout) as Diagnosis;
      t.deepEqual(
        only.runbooks.map((r) => r.runbook),
        ["storage-errors"],
        name,
      );
    }
    const bad = agentctl(["--socket", a.socket, "diagnose", "disk-full"]);
    t.is(bad.code, 64);
    t.regex(
      bad.stderr,
      new RegExp(
        String.raw`no runbook "disk-full"; the five: slow-fsync\.md \(WALFsyncSlow\), ` +
          String.raw`replication-lag\.md \(Replicat.*api-error-rate\.md \(HighAPIErrorRate\)`,
      ),
    );
    // The socket API says the same to a client that skips agentctl's check.
    const api = await t.throwsAsync(get([a.socket], "/v1/diagnose?runbook=disk-full"));
    t.true(api instanceof ApiError && api.status === 400, String(api));
  },
);

// Serial: ava runs it before this file's other tests, so its storm does not land on their calm nodes.
test.serial(
  "diagnose during a write storm on the WAL's loop device tells the slow-fsync story, naming the competing writer",
  async (t) => {
    if (!isRoot || !hasCommand("fio"))
      return t.pass("skipped: needs root and fio for a loop device");
    const { dir } = tempDir();
    const lfs = makeLoopFs(dir, { sizeMiB: 512, mountOptions: "noatime,errors=remount-ro" });
    t.teardown(() => lfs.cleanup());
    const wal = join(lfs.mnt, "wal");
    mkdirSync(wal);
    // On this machine a loop device is fast: the threshold is set where this storm crosses it.
    const a = await startAgent({
      extraToml:
        `[wal]\ndir = "${wal}"\n[stemedb]\ndata_dir = "${lfs.mnt}"\n[thresholds]\nfsync_p99_warn = ` +
        `"1ms"\nfsync_p99_crit = "2ms"\n[collectors.diskstats]\ninclude = "^${lfs.device}$"\nexclude = ` +
        `""\n[collectors.smart]\nenabled = false\n[collectors.kmsg]\nenabled = false\n` +
        `[collectors.fsync_probe]\ninterval = "250ms"\n[collectors.procio]\ninterval = "1s"\n[history]\n` +
        `flush_interval = "1s"\n`,
    });
    t.teardown(() => a.stop("SIGKILL"));
    const fio = spawn(
      "fio",
      [
        "--name=backup",
        `--directory=${lfs.mnt}`,
        "--rw=write",
        "--bs=1M",
        "--size=300M",
        "--ioengine=psync",
        "--runtime=12",
        "--time_based",
        "--fsync=64",
      ],
      { stdio: "ignore" },
    );
    t.teardown(() => fio.kill("SIGKILL"));
    await sleep(6000);
    const d = agentctl(["--socket", a.socket, "diagnose"]);
    const s = agentctl(["--socket", a.socket, "status"]);
    t.log(`\n$ agentctl status\n${s.stdout}\n$ agentctl diagnose\n${d.stdout}`);
    t.regex(
      d.stdout,
      new RegExp(
        String.raw`slow-fsync\.md \(alert WALFsyncSlow\): slow WAL fsync\n {2}CRIT\s+1\. WAL fsync ` +
          String.raw`latency\n\s+agent probe p99 [\d.]+ m?s over 10 min`,
      ),
    );
    t.regex(
      d.stdout,
      new RegExp(`2\\. iostat -x on the WAL device\\n\\s+${lfs.device}: w_await p99`),
    );
    t.regex(d.stdout, /3\. iotop -o: competing I\/O\n\s+fio\[\d+\]/);
    t.regex(s.stdout, /^CRIT\s+fsync\s+fsync p99/m);
    t.regex(
      s.stdout,
      /^WARN\s+other I\/O\s+top: fio\[\d+\]/m,
      "a heavy writer while fsync is slow is a warning",
    );
  },
);

test("a full connection queue (EAGAIN) is waited out: answered once the agent accepts again", async (t) => {
  const { dir } = tempDir();
  const sock = join(dir, "busy.sock");
  // A stand-in agent: a queue of one, and a loop blocked for 1.5 s right after it listens.
  const child = spawn(
    process.execPath,
    [
      "-e",
      `const s = require("node:http").createServer((q, r) => r.end('{"ok":true}'));
       s.listen({ path: ${JSON.stringify(sock)}, backlog: 1 }, () => {
         process.stdout.write("ready\\n");
         Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500);
       });`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  t.teardown(() => child.kill("SIGKILL"));
  await new Promise<void>((r) => child.stdout?.once("data", () => r()));
  const { connect } = await import("node:net");
  const tryConnect = () =>
    new Promise<string>((r) => {
      const c = connect(sock);
      c.on("connect", () => r("connected"));
      c.on("error", (e: NodeJS.ErrnoException) => r(e.code ?? "error"));
      t.teardown(() => c.destroy());
    });
  const filled: string[] = [];
  for (let i = 0; i < 4; i++) filled.push(await tryConnect());
  t.is(filled.at(-1), "EAGAIN", `the queue is full: ${filled.join(" ")}`);
  const t0 = performance.now();
  const r = await get([sock], "/v1/anything", 5_000);
  t.deepEqual(r.body, { ok: true });
  t.log(`answered after ${(performance.now() - t0).toFixed(0)} ms of a full queue`);
});
