import { execFileSync, spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import { Registry } from "prom-client";
import { HistoryStore } from "../core/history/store.js";
import { CoreMetrics } from "../core/metrics/registry.js";
import { MountsCollector } from "../collectors/mounts/collector.js";
import { mountsSinks, usedHistory } from "../collectors/mounts/sink.js";
import type { MountsObservation } from "../collectors/mounts/observation.js";
import { estimateFill, theilSenSlope } from "../collectors/mounts/fill.js";
import { mountFor, parseMountinfo, unescapeMountPath } from "../core/host/mountinfo.js";
import { mountFindings } from "../collectors/mounts/policy.js";
import { AGENT_BIN, hasCommand, isRoot, tempDir } from "./helpers/agent-process.js";
import { makeLoopFs } from "./helpers/loop.js";
import { defaultRetention, quietLog, routed, sleep } from "./helpers/quiet.js";
import { withHistoryFile } from "./helpers/history-file.js";

const MOUNTINFO = [
  "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard",
  "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
  "45 27 7:2 / /var/lib/stemedb/wal\\040disk rw,relatime shared:5 master:2 - ext4 /dev/loop2 rw,data=journal",
  "46 27 8:17 / /srv/db ro,noatime - xfs /dev/sdb1 ro,attr2,inode64,nobarrier",
  "47 27 0:27 / /var/lib/stemedb/wal\\040disk/tmp rw - tmpfs tmp\\011fs rw",
  "garbage line",
  "48 27 0:30 /@data /data rw,noatime - btrfs /dev/nvme0n1p2 rw,ssd,subvol=/@data",
].join("\n");

test("mountinfo parses optional fields, octal escapes and super options; garbage is reported per line", (t) => {
  const { mounts, problems } = parseMountinfo(MOUNTINFO);
  t.is(mounts.length, 6);
  t.deepEqual(problems, ['line 6: malformed (expected "... - fstype source options")']);
  const wal = mounts[2];
  t.like(wal, {
    mountPoint: "/var/lib/stemedb/wal disk",
    fsType: "ext4",
    source: "/dev/loop2",
    major: 7,
    minor: 2,
    optionalFields: ["shared:5", "master:2"],
  });
  t.deepEqual(wal?.superOptions, ["rw", "data=journal"]);
  t.is(mounts[4]?.source, "tmp\tfs");
  t.is(mounts[5]?.root, "/@data");
  t.is(unescapeMountPath("a\\134b\\012c"), "a\\b\nc");
  t.is(
    mountFor("/var/lib/stemedb/wal disk/segment.1.wal", mounts)?.mountPoint,
    "/var/lib/stemedb/wal disk",
  );
  t.is(
    mountFor("/var/lib/stemedb/wal disk/tmp/x", mounts)?.fsType,
    "tmpfs",
    "the deeper mount wins",
  );
  t.is(
    mountFor("/var/lib/stemedb/wal diskette", mounts)?.mountPoint,
    "/",
    "a prefix of the name is not a parent",
  );
});

test("the mount policy flags each runbook option with its severity", (t) => {
  const f = (fs: string, o: string) =>
    mountFindings(fs, o.split(",")).map((x) => `${x.option}:${x.severity}`);
  t.deepEqual(f("ext4", "rw,noatime"), []);
  t.deepEqual(f("ext4", "rw,relatime"), ["atime:info"]);
  t.deepEqual(f("xfs", "ro,noatime,nobarrier"), ["ro:crit", "nobarrier:crit"]);
  t.deepEqual(f("ext4", "rw,noatime,barrier=0,errors=continue,data=journal,sync"), [
    "barrier=0:crit",
    "errors=continue:warn",
    "data=journal:warn",
    "sync:warn",
  ]);
  t.deepEqual(
    mountFindings("ext4", ["rw", "noatime"], "continue").map((x) => x.option),
    ["errors=continue"],
    "the superblock default counts when no option is shown",
  );
  t.deepEqual(
    mountFindings("ext4", ["rw", "noatime", "errors=remount-ro"], "continue"),
    [],
    "an explicit option overrides it",
  );
  t.deepEqual(f("tmpfs", "rw"), [], "no atime advice for tmpfs");
});

test("Theil-Sen ignores a one-off burst that would swing a least-squares fit", (t) => {
  const s = Array.from({ length: 50 }, (_, i) => ({ ts: i * 60_000, used: 1e9 + i * 6e6 })); // 100 kB/s
  s[25] = { ts: 25 * 60_000, used: 5e9 }; // someone wrote then deleted a 4 GB file
  t.is(Math.round(theilSenSlope(s) ?? 0), 100_000);
  t.is(Math.round(estimateFill(s, 1e9, 600_000).fullInSeconds), 10_000);
  t.is(
    estimateFill(s.slice(0, 3), 1e9, 600_000).fullInSeconds,
    Infinity,
    "too little history: no estimate",
  );
  t.is(
    estimateFill(
      s.map((p, i) => ({ ts: p.ts, used: 2e9 - i * 1000 })),
      1e9,
      600_000,
    ).fullInSeconds,
    Infinity,
    "shrinking: not filling",
  );
});

function collector(
  paths: Array<{ path: string; role: string }>,
  extra: { history?: HistoryStore; minSpanMs?: number } = {},
) {
  const registry = new Registry();
  const history = extra.history ?? null;
  const { col, once } = routed(
    mountsSinks(registry, quietLog),
    history,
    () =>
      new MountsCollector({
        paths,
        procPath: "/proc",
        fillWindowMs: 3_600_000,
        fillMinSpanMs: extra.minSpanMs ?? 0,
        usedHistory: usedHistory(history),
      }),
  );
  return { col, registry, once };
}

// ext4 made by mkfs defaults to errors=continue (flagged on its own below), so the other cases
// mount with errors=remount-ro to look at one option at a time.
for (const [fs, opts, expect] of [
  ["ext4", "data=journal,errors=remount-ro", ["data=journal:warn"]],
  ["ext4", "ro,errors=remount-ro", ["ro:crit"]],
  ["ext4", "nobarrier,errors=remount-ro", ["nobarrier:crit"]],
  ["ext4", "sync,errors=continue", ["errors=continue:warn", "sync:warn"]],
  ["ext4", "noatime", ["errors=continue:warn"]],
  ["xfs", "noatime", []],
] as const) {
  test(`a real ${fs} loop mount with ${opts} is judged ${expect.join(", ") || "clean"}`, async (t) => {
    if (!isRoot || !hasCommand("losetup")) return t.pass("skipped: needs root for a loop device");
    if (fs === "xfs" && !hasCommand("mkfs.xfs")) return t.pass("skipped: mkfs.xfs not installed");
    const { dir } = tempDir();
    const lfs = makeLoopFs(dir, { sizeMiB: 320, fs, mountOptions: opts });
    t.teardown(() => lfs.cleanup());
    const { once, registry } = collector([{ path: join(lfs.mnt, "wal"), role: "wal" }]);
    const m = (await once()).mounts[0];
    t.is(m?.mountpoint, lfs.mnt);
    t.deepEqual(
      m?.findings.filter((f) => f.severity !== "info").map((f) => `${f.option}:${f.severity}`),
      [...expect],
    );
    const ro = opts.split(",").includes("ro");
    t.is(m?.read_only, ro);
    t.true((m?.space?.size_bytes ?? 0) > 200 * 1024 * 1024);
    const text = await registry.metrics();
    t.regex(
      text,
      new RegExp(`stemedb_agent_mount_read_only\\{mountpoint="${lfs.mnt}"\\} ${ro ? 1 : 0}`),
    );
    for (const e of expect)
      t.regex(
        text,
        new RegExp(
          `stemedb_agent_mount_finding\\{mountpoint="${lfs.mnt}",option="${e.split(":")[0]}",severity` +
            `="${e.split(":")[1]}"\\} 1`,
        ),
      );
  });
}

test("a remount to read-only is an event with the old and new options", async (t) => {
  if (!isRoot || !hasCommand("losetup")) return t.pass("skipped: needs root for a loop device");
  const { dir } = tempDir();
  const lfs = makeLoopFs(dir, { sizeMiB: 64, mountOptions: "noatime,errors=remount-ro" });
  t.teardown(() => lfs.cleanup());
  const history = new HistoryStore({
    stateDir: join(dir, "state"),
    retention: defaultRetention(),
    log: quietLog,
    metrics: new CoreMetrics(),
  });
  t.teardown(() => history.close());
  const { once } = collector([{ path: lfs.mnt, role: "wal" }], { history });
  await once();
  execFileSync("mount", ["-o", "remount,ro", lfs.mnt]);
  const m = (await once()).mounts[0];
  t.true(m?.read_only);
  history.flush();
  const ev = withHistoryFile(
    history,
    (db) =>
      db
        .prepare("SELECT kind, severity, message FROM events WHERE class = 'mount' ORDER BY id")
        .all() as Array<{ kind: string; severity: string; message: string }>,
  );
  t.like(
    ev.find((e) => e.kind === "mount.remounted_ro"),
    { severity: "crit" },
  );
  t.regex(
    ev.find((e) => e.kind === "mount.remounted_ro")?.message ?? "",
    /rw,noatime.* -> ro,noatime/,
  );
  t.true(ev.some((e) => e.kind === "mount.finding" && e.message.includes(": ro: ")));
});

test("time to full on a loop filesystem being filled at a steady rate", async (t) => {
  if (!isRoot || !hasCommand("losetup")) return t.pass("skipped: needs root for a loop device");
  const { dir } = tempDir();
  const lfs = makeLoopFs(dir, { sizeMiB: 128 });
  t.teardown(() => lfs.cleanup());
  mkdirSync(join(lfs.mnt, "wal"));
  const { once, registry } = collector([{ path: join(lfs.mnt, "wal"), role: "wal" }], {
    minSpanMs: 1500,
  });
  // ~8 MiB/s of durable writes, as a WAL would.
  const filler = spawn(
    "sh",
    [
      "-c",
      `i=0; while [ $i -lt 40 ]; do dd if=/dev/zero of=${join(lfs.mnt, "wal")}/seg.$i bs=1M count=2 ` +
        `conv=fsync status=none; i=$((i+1)); sleep 0.25; done`,
    ],
    { stdio: "ignore" },
  );
  t.teardown(() => filler.kill("SIGKILL"));
  let last: MountsObservation | null = null;
  for (let i = 0; i < 12; i++) {
    last = await once();
    await sleep(250);
  }
  const m = last?.mounts[0];
  const rate = m?.fill_bytes_per_second ?? 0;
  const eta = m?.full_in_seconds ?? Infinity;
  const avail = m?.space?.avail_bytes ?? 0;
  t.log(
    `fill rate ${(rate / 1048576).toFixed(1)} MiB/s, ${(avail / 1048576).toFixed(0)} MiB available, ` +
      `full in ${eta.toFixed(0)} s`,
  );
  t.true(rate > 2 * 1048576 && rate < 20 * 1048576, `rate ${rate}`);
  t.true(Number.isFinite(eta) && Math.abs(eta - avail / rate) < 1);
  t.regex(
    await registry.metrics(),
    new RegExp(`stemedb_agent_filesystem_full_in_seconds\\{mountpoint="${lfs.mnt}"\\} \\d`),
  );
  filler.kill("SIGKILL");
});

test(
  "a read-only remount in the agent's own mount namespace (ProtectSystem=strict) is not reported: " +
    "PID 1's view decides per-mount flags",
  (t) => {
    if (!isRoot || !hasCommand("unshare")) return t.pass("skipped: needs root and unshare");
    const { dir, cleanup } = tempDir("sa-mntns-");
    const fs = makeLoopFs(dir, { sizeMiB: 64 });
    t.teardown(() => (fs.cleanup(), cleanup()));
    mkdirSync(join(fs.mnt, "wal"));
    const toml = join(dir, "agent.toml");
    execFileSync("sh", [
      "-c",
      `printf '[agent]\\nstate_dir = "%s"\\n[wal]\\ndir = "%s"\\n[stemedb]\\ndata_dir = "%s"\\n' ` +
        `"${join(dir, "state")}" "${join(fs.mnt, "wal")}" "${fs.mnt}" > ${toml}`,
    ]);
    for (const c of [
      "diskstats",
      "fsync_probe",
      "smart",
      "kmsg",
      "wal",
      "procio",
      "process",
      "netstat",
    ])
      execFileSync("sh", ["-c", `printf '[collectors.${c}]\\nenabled = false\\n' >> ${toml}`]);
    const once = (remount: boolean) => {
      // unshare -m makes private mounts: the remount is seen by the agent only, as systemd's sandbox does.
      const script =
        `${remount ? `mount -o remount,bind,ro ${fs.mnt} && ` : ""}exec ${process.execPath} ${AGENT_BIN} ` +
        `--once --config ${toml}`;
      const out = execFileSync("unshare", ["-m", "sh", "-c", script], { encoding: "utf8" });
      const obs = (JSON.parse(out) as { mounts: { observation: MountsObservation } }).mounts
        .observation;
      return obs.mounts.find((m) => m.mountpoint === fs.mnt);
    };
    const sandboxed = once(true);
    t.truthy(sandboxed);
    t.false(sandboxed?.options.includes("ro"), `options ${sandboxed?.options.join(",")}`);
    t.false(sandboxed?.findings.some((f) => f.option === "ro"));
    // Remounted read-only for everyone: reported.
    execFileSync("mount", ["-o", "remount,ro", fs.mnt]);
    t.teardown(() => execFileSync("mount", ["-o", "remount,rw", fs.mnt]));
    t.true(once(false)?.findings.some((f) => f.option === "ro" && f.severity === "crit"));
  },
);
