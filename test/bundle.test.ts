// agentctl bundle, the real binary against the real agent: a node whose WAL disk is slow, taken
// apart with the real tar as a second-line engineer would.
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import test from "ava";
import { cutTo } from "../agent/cli/archive.js";
import { csvLines, decodeCursor, encodeCursor, labelText, toWire } from "../agent/bundle/csv.js";
import { REDACTED, redactText, redactUrl, redactValue } from "../agent/bundle/redact.js";
import type { ExportRow } from "../core/history/export.js";
import {
  AGENTCTL_BIN,
  agentctl,
  hasCommand,
  isRoot,
  startAgent,
  tempDir,
} from "./helpers/agent-process.js";
import { fakeSmartctl } from "./helpers/fake-smartctl.js";
import { until } from "./helpers/faults.js";
import { makeLoopFs } from "./helpers/loop.js";
import { historyIn, sleep } from "./helpers/quiet.js";
import { slowWrites, slowWritesUnavailable } from "./helpers/throttle.js";

// ---------------------------------------------------------------- pure parts

test("redaction: URL credentials, query and fragment; secret keys; secret options in commands", (t) => {
  t.is(
    redactUrl("http://user:pw@db:18180/metrics?token=abc#x").text,
    `http://${REDACTED}@db:18180/metrics?${REDACTED}#${REDACTED}`,
  );
  t.deepEqual(redactUrl("http://localhost:18180/metrics"), {
    text: "http://localhost:18180/metrics",
    changed: false,
  });
  t.is(
    redactText("stemedb-wal-verify --password hunter2 --file {}").text,
    `stemedb-wal-verify --password ${REDACTED} --file {}`,
  );
  t.is(redactText("verify token=abc123 x").text, `verify token=${REDACTED} x`);
  t.is(redactText("curl -H 'Authorization: Bearer eyJhbGc' u").text.includes("eyJhbGc"), false);
  t.is(redactText("fetch https://u:p@h/x then").text, `fetch https://${REDACTED}@h/x then`);
  const r = redactValue({
    stemedb: { metrics_url: "http://a:b@h/m", service: "stemedb-api.service" },
    wal: { verify_command: "check --secret=s3 {}" },
    extra: { api_token: "t0k", list: ["https://h/?k=v"] },
  });
  t.deepEqual(r.value, {
    stemedb: { metrics_url: `http://${REDACTED}@h/m`, service: "stemedb-api.service" },
    wal: { verify_command: `check --secret=${REDACTED} {}` },
    extra: { api_token: REDACTED, list: [`https://h/?${REDACTED}`] },
  });
  t.deepEqual(r.redacted.sort(), [
    "extra.api_token",
    "extra.list[0]",
    "stemedb.metrics_url",
    "wal.verify_command",
  ]);
});

test("cutTo keeps the beginning, or for logs the newest lines, and says so within the limit", (t) => {
  const text = Buffer.from(Array.from({ length: 200 }, (_, i) => `line ${i}`).join("\n") + "\n");
  const head = cutTo(text, 300, "head");
  t.is(head.from, text.length);
  t.true(head.data.length <= 300);
  t.true(head.data.toString().startsWith("line 0\n"));
  t.regex(head.data.toString(), /cut to 300 of \d+ bytes, beginning kept\]\n$/);
  const tail = cutTo(text, 300, "tail");
  t.true(tail.data.length <= 300);
  t.regex(tail.data.toString(), /^\[agentctl bundle: cut to 300 of \d+ bytes, newest kept\]\n/);
  t.true(tail.data.toString().endsWith("line 199\n"));
  t.true(/\nline \d+\n/.test(tail.data.toString()), "whole lines after the note");
  t.deepEqual(cutTo(text, text.length, "head"), { data: text, from: null });
});

test("history CSV lines and page cursors", (t) => {
  const ts = Date.UTC(2026, 0, 1);
  const rows: ExportRow[] = [
    { series: 1, ts, resolution: 0, value: 0.25, min: 0.25, max: 0.25, p99: 0.25, count: 1 },
    { series: 2, ts, resolution: 60, value: 2, min: 1, max: 3, p99: 3, count: 60 },
  ];
  const wire = toWire(ts, {
    series: [
      { id: 1, metric: "fsync_probe_seconds", labels: '{"mountpoint":"/var/lib/stemedb"}' },
      { id: 2, metric: "m", labels: '{"a":"x,y"}' },
    ],
    rows,
    next: null,
  });
  t.is(
    csvLines(JSON.parse(JSON.stringify(wire)) as typeof wire),
    "2026-01-01T00:00:00.000Z,fsync_probe_seconds,mountpoint=/var/lib/stemedb,raw,0.25,,,,1\n" +
      '2026-01-01T00:00:00.000Z,m,"a=x,y",1m,2,1,3,3,60\n',
  );
  t.is(labelText("not json"), "not json");
  t.deepEqual(decodeCursor(encodeCursor({ series: 12, ts: 1700000000000 })), {
    series: 12,
    ts: 1700000000000,
  });
  t.is(decodeCursor(null), null);
  t.is(decodeCursor("12:x"), undefined);
  t.is(decodeCursor("1:2:3"), undefined);
});

test("the history export pages through every point exactly once, in order, minute summaries before raw", (t) => {
  const { dir, cleanup } = tempDir("sa-bundle-export-");
  t.teardown(cleanup);
  const h = historyIn(dir);
  t.teardown(() => h.close());
  const now = Date.now();
  const from = now - 600_000;
  for (let s = 0; s < 7; s++)
    for (let i = 0; i < 130; i++) h.record(`m${s % 3}`, { device: `d${s}` }, i, from + i * 1000);
  h.flush();
  const rawFrom = from + 60_000; // the first minute before it comes from summaries, if any
  const all: ExportRow[] = [];
  const names = new Set<string>();
  let after: { series: number; ts: number } | null = null;
  let pages = 0;
  do {
    const p = h.exportPage({ from, rawFrom }, after, 37);
    t.true(p.rows.length <= 37);
    const ids = new Set(p.series.map((s) => s.id));
    t.true(
      p.rows.every((r) => ids.has(r.series)),
      "every row's series is in the page",
    );
    for (const s of p.series)
      names.add(`${s.metric}:${(JSON.parse(s.labels) as { device: string }).device}`);
    all.push(...p.rows);
    after = p.next;
    pages++;
  } while (after !== null && pages < 1000);
  const raw = all.filter((r) => r.resolution === 0);
  t.is(raw.length, 7 * (130 - 60), "every raw point from rawFrom on, once");
  const keys = raw.map((r) => `${r.series}@${r.ts}`);
  t.is(new Set(keys).size, keys.length, "no point twice");
  t.true(raw.every((r) => r.ts >= rawFrom));
  for (let i = 1; i < all.length; i++) {
    const [a, b] = [all[i - 1] as ExportRow, all[i] as ExportRow];
    if (a.series === b.series) t.true(a.ts < b.ts, "each series in time order");
    else t.true(a.series < b.series, "series after series");
  }
  t.deepEqual([...names].sort(), ["m0:d0", "m0:d3", "m0:d6", "m1:d1", "m1:d4", "m2:d2", "m2:d5"]);
});

test("systeminformation stays out of the agent and out of agentctl.cjs (loaded only by bundle)", (t) => {
  const root = join(import.meta.dirname, "../..");
  const importers: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(join(root, d), { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (
        p.endsWith(".ts") &&
        /from "systeminformation"|import\("systeminformation"\)/.test(
          readFileSync(join(root, p), "utf8"),
        )
      )
        importers.push(p);
    }
  };
  for (const d of ["core", "collectors", "judge", "remediators", "agent"]) walk(d);
  t.deepEqual(importers, ["agent/cli/inventory.ts"]);
  const ctl = readFileSync(AGENTCTL_BIN, "utf8");
  t.regex(ctl, /import\("systeminformation"\)/, "left to node_modules, not bundled");
  t.false(ctl.includes("function getStaticData"), "no systeminformation code in agentctl.cjs");
});

// ---------------------------------------------------------------- the real thing

const USER = `sa-bundle-${process.pid % 100000}`;

/**
 * agentctl to its end, without blocking this process (it serves the database's /metrics the agent
 * fetches); a bundle runs at idle I/O priority, so it gets longer than status.
 */
function ctl(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
  as: { uid: number; gid: number } | null = null,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [AGENTCTL_BIN, ...args], {
      env: { ...process.env, ...env },
      cwd: "/",
      ...(as ?? {}),
    });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    p.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => p.kill("SIGKILL"), 110_000);
    p.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function untar(file: string, into: string): string {
  mkdirSync(into, { recursive: true });
  const r = spawnSync("tar", ["-xzf", file, "-C", into], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`tar: ${r.stderr}`);
  const [top] = readdirSync(into);
  return join(into, top ?? "");
}

function manifestLines(
  dir: string,
): Map<string, { status: string; bytes: number; detail: string }> {
  const out = new Map<string, { status: string; bytes: number; detail: string }>();
  for (const l of readFileSync(join(dir, "MANIFEST.txt"), "utf8").split("\n")) {
    const m = /^(collected|cut|missing)\s+(\S+)\s+(\d+)\s+(.*)$/.exec(l);
    if (m)
      out.set(m[2] as string, { status: m[1] as string, bytes: Number(m[3]), detail: m[4] ?? "" });
  }
  return out;
}

test.serial(
  "a bundle from a node whose WAL disk is slow carries the evidence; capped, 0600, redacted, root only",
  async (t) => {
    const skip = !isRoot
      ? "needs root"
      : (slowWritesUnavailable() ??
        (["losetup", "tar", "useradd"].find((c) => !hasCommand(c))
          ? "needs losetup, tar, useradd"
          : null));
    if (skip) return t.pass(`skipped: ${skip}`);
    // Three bundles at nice 19 and idle I/O: on a machine busy with other suites they wait.
    t.timeout(360_000);
    const { dir } = tempDir("sa-bundle-");
    chmodSync(dir, 0o711); // the unprivileged user below may reach the sockets, not read the dir
    const lfs = makeLoopFs(dir, { sizeMiB: 128 });
    t.teardown(() => lfs.cleanup());
    const wal = join(lfs.mnt, "wal");
    mkdirSync(wal);
    // The database's own /metrics, behind a password the bundle must use but never show.
    const db = createServer((req, res) => {
      const ok =
        req.headers.authorization === `Basic ${Buffer.from("stemedb:s3cret").toString("base64")}`;
      res.writeHead(ok ? 200 : 401, { "content-type": "text/plain" });
      res.end(ok ? "# database metrics\nstemedb_wal_fsync_duration_seconds_count 42\n" : "no\n");
    });
    await new Promise<void>((r) => db.listen(0, "127.0.0.1", r));
    t.teardown(() => db.close());
    const port = (db.address() as { port: number }).port;
    const smartDir = join(dir, "smart");
    mkdirSync(smartDir);
    const smartctl = fakeSmartctl(smartDir, {
      "/dev/sdz": "nvme-healthy_samsung-mzql21t9hcjr_exporter.json",
    });
    // An event from an older agent that still named the credentials in its message.
    const old = historyIn(join(dir, "state"));
    old.event({
      class: "wal",
      kind: "wal.db_metrics_failed",
      severity: "warn",
      message: `cannot scrape http://stemedb:s3cret@127.0.0.1:${port}/metrics?key=qu3ry: 401`,
      ts: Date.now() - 60_000,
    });
    old.flush();
    old.close();
    const a = await startAgent({
      dir,
      extraToml:
        `[wal]\ndir = "${wal}"\nverify_command = "stemedb-wal-verify --token=t0psecret {}"\n` +
        `[stemedb]\ndata_dir = "${lfs.mnt}"\n` +
        `metrics_url = "http://stemedb:s3cret@127.0.0.1:${port}/metrics?key=qu3ry"\n` +
        `[collectors.diskstats]\ninclude = "^${lfs.device}$"\nexclude = ""\n` +
        `[collectors.fsync_probe]\ninterval = "250ms"\n[collectors.kmsg]\nenabled = false\n` +
        `[collectors.smart]\nsmartctl = "${smartctl.path}"\nisolate = "never"\n` +
        `devices = ["/dev/sdz"]\n[history]\nflush_interval = "1s"\n`,
    });
    t.teardown(() => a.stop("SIGKILL"));
    // Two writes a second to the WAL's disk for the agent: each probe fdatasync waits ~0.5 s.
    const slow = slowWrites(`sa-bundle-${process.pid}`, lfs.device, 2);
    t.teardown(() => slow.cleanup());
    slow.add(a.proc.pid ?? 0);
    await until(
      "the fsync area goes crit",
      () => {
        const r = agentctl(["--socket", a.socket, "status", "--json"]);
        const s =
          r.code === 3
            ? null
            : (JSON.parse(r.stdout) as { areas: Array<{ area: string; verdict: string }> });
        return s?.areas.find((x) => x.area === "fsync")?.verdict === "crit";
      },
      60_000,
      500,
    );
    await sleep(2000); // a few more slow probes into history

    // --list: what it would hold, and nothing written.
    const listed = join(dir, "listed.tar.gz");
    const l = agentctl(["--socket", a.socket, "bundle", "--list", "--output", listed]);
    t.is(l.code, 0, l.stderr);
    t.regex(l.stdout, /history\.csv/);
    t.regex(l.stdout, /who may take one: root only/);
    t.regex(l.stdout, /included as logged, NOT redacted/);
    t.false(existsSync(listed), "--list writes nothing");

    // A smartctl first in agentctl's PATH that leaves a mark: a bundle must never run one (it
    // would wake a sleeping disk); systeminformation's diskLayout() would.
    const trip = join(dir, "trip");
    mkdirSync(trip);
    writeFileSync(join(trip, "smartctl"), `#!/bin/sh\necho "$*" >> ${join(trip, "ran")}\n`, {
      mode: 0o755,
    });
    const out = join(dir, "bundle.tar.gz");
    const b = await ctl(["--socket", a.socket, "bundle", "--since", "10m", "--output", out], {
      PATH: `${trip}:${process.env["PATH"] ?? ""}`,
    });
    t.is(b.code, 0, b.stderr);
    t.regex(b.stdout, /^bundle written: /);
    t.is(statSync(out).mode & 0o777, 0o600);
    t.false(existsSync(join(trip, "ran")), "the bundle never ran smartctl");
    const x = untar(out, join(dir, "x"));
    const read = (p: string) => readFileSync(join(x, p), "utf8");
    t.log(`\n${read("MANIFEST.txt")}`);
    t.regex(read("status.txt"), /^CRIT\s+fsync\s+fsync p99 \d+/m);
    t.regex(
      read("diagnose.txt"),
      /^CRIT +slow-fsync\.md \(alert WALFsyncSlow\).*\n {2}CRIT\s+1\. WAL fsync latency/m,
    );
    const slowRows = read("history.csv")
      .split("\n")
      .filter((r) => r.startsWith("20") && r.includes(",fsync_probe_seconds,"))
      .filter((r) => Number(r.split(",")[4]) > 0.1);
    t.true(slowRows.length >= 3, `slow probes in history.csv: ${slowRows.length}`);
    t.regex(read("events.txt"), /agent\.started|stemedb-agent .* started/);
    t.regex(read("events.txt"), new RegExp(`cannot scrape http://${REDACTED}@127\\.0\\.0\\.1`));
    t.regex(read("metrics/agent.prom"), /stemedb_agent_fsync_probe_duration_seconds_bucket/);
    t.regex(read("metrics/database.prom"), /stemedb_wal_fsync_duration_seconds_count 42/);
    t.regex(read("smart/sdz.json"), /"smartctl"/);
    t.regex(read("host/inventory.json"), /"block_devices"/);
    t.regex(read("host/diskstats"), new RegExp(`\\b${lfs.device}\\b`));
    t.regex(read("host/mountinfo"), new RegExp(lfs.mnt));
    // Redaction: the URL's password and query, the command's token; nowhere in the bundle.
    const config = read("config.toml");
    t.regex(
      config,
      new RegExp(`metrics_url = "http://${REDACTED}@127.0.0.1:${port}/metrics\\?${REDACTED}"`),
    );
    t.regex(config, new RegExp(`verify_command = "stemedb-wal-verify --token=${REDACTED} \\{\\}"`));
    const everything = spawnSync("grep", ["-rlE", "s3cret|qu3ry|t0psecret", x], {
      encoding: "utf8",
    });
    t.is(everything.stdout, "", "no secret anywhere in the bundle");
    const m = manifestLines(x);
    t.regex(read("MANIFEST.txt"), /gathered at: nice 19, I\/O idle/);
    t.is(m.get("history.csv")?.status, "collected");
    if (!existsSync("/run/systemd/system")) {
      // No systemd on this machine: the journal and unit items are missing with the reason.
      for (const p of [`journal/stemedb-api.service.log`, `systemd/stemedb-api.service.status.txt`])
        t.regex(m.get(p)?.detail ?? "", /does not run systemd/, p);
    }
    // Never overwritten.
    const again = await ctl(["--socket", a.socket, "bundle", "--output", out]);
    t.is(again.code, 73);
    t.regex(again.stderr, /exists; refusing to overwrite it/);

    // The cap: the archive stays under it, and the MANIFEST names what was cut and at what size.
    const small = join(dir, "small.tar.gz");
    const c = await ctl([
      "--socket",
      a.socket,
      "bundle",
      "--since",
      "10m",
      "--max-size",
      "256KiB",
      "--output",
      small,
    ]);
    t.is(c.code, 0, c.stderr);
    t.true(statSync(small).size <= 256 * 1024, `${statSync(small).size} bytes`);
    const y = untar(small, join(dir, "y"));
    const cut = [...manifestLines(y)].filter(([, v]) => v.status === "cut");
    t.true(cut.length > 0, "something was cut");
    for (const [p, v] of cut) {
      t.regex(v.detail, /^cut at \d+/);
      t.is(statSync(join(y, p)).size, v.bytes, `${p}: the MANIFEST gives its size`);
    }

    // Root only: a real unprivileged user is refused on the admin socket; nothing is written.
    spawnSync("userdel", [USER]);
    const ua = spawnSync("useradd", [
      "--system",
      "--no-create-home",
      "--shell",
      "/usr/sbin/nologin",
      USER,
    ]);
    t.is(ua.status, 0);
    t.teardown(() => spawnSync("userdel", [USER]));
    const uid = Number(spawnSync("id", ["-u", USER], { encoding: "utf8" }).stdout.trim());
    const gid = Number(spawnSync("id", ["-g", USER], { encoding: "utf8" }).stdout.trim());
    const outDir = join(dir, "user-out");
    mkdirSync(outDir);
    chmodSync(outDir, 0o777);
    const nope = join(outDir, "b.tar.gz");
    const u = await ctl(["--socket", a.socket, "bundle", "--output", nope], {}, { uid, gid });
    t.is(u.code, 77, u.stderr);
    t.regex(u.stderr, /refused: .*root only/);
    t.false(existsSync(nope));
  },
);
