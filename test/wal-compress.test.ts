import { execFileSync, spawnSync } from "node:child_process";
import {
  appendFileSync,
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { gzipSync } from "node:zlib";
import test from "ava";
import { makeTmpfs } from "./helpers/loop.js";
import {
  type CompressOptions,
  compressSegment,
  recover,
  SegmentChanged,
} from "../remediators/wal_compress/steps.js";
import { planCompression } from "../remediators/wal_compress/plan.js";
import { openSegments } from "../remediators/wal_compress/holders.js";
import { withDir } from "../core/safefs.js";
import { analyse } from "../collectors/wal/inventory.js";
import { listSegments } from "../collectors/wal/list.js";
import {
  AGENTCTL_BIN,
  agentctl,
  hasCommand,
  isRoot,
  QUIET_COLLECTORS,
  startAgent,
  tempDir,
} from "./helpers/agent-process.js";
import { sleep } from "./helpers/quiet.js";

const seg = (i: number) => `segment.${i}.wal`;

/** Compresses the file at `path` as the worker does: through its directory's descriptor, as listed now. */
function compressAt(
  path: string,
  level: number,
  bytesPerSecond: number,
  o: Partial<CompressOptions> = {},
) {
  const st = statSync(path);
  return withDir(dirname(path), (d) =>
    compressSegment(d, basename(path), st, {
      level,
      bytesPerSecond,
      maxRatio: 1,
      reserve: 0,
      ...o,
    }),
  );
}

function walDir(n: number, size = 64 * 1024, ageSeconds = 7200): string {
  const { dir } = tempDir();
  const wal = join(dir, "wal");
  mkdirSync(wal);
  const old = Date.now() / 1000 - ageSeconds;
  for (let i = 1; i <= n; i++) {
    writeFileSync(join(wal, seg(i)), Buffer.alloc(size, i));
    utimesSync(join(wal, seg(i)), old + i, old + i);
  }
  return wal;
}

test("the dry-run plan is the runbook's 'all but the newest 20', minus open, active and young segments", async (t) => {
  const wal = walDir(30);
  writeFileSync(join(wal, seg(5)), Buffer.alloc(100)); // rewritten just now: younger than min_age
  const fd = openSync(join(wal, seg(3)), "r"); // held open by a process (this one)
  t.teardown(() => closeSync(fd));
  const inv = analyse((await listSegments(wal, "segment.*.wal")) ?? [], "segment.*.wal", 0);
  const plan = planCompression({
    segments: inv.segments,
    keep: 20,
    minAgeMs: 3_600_000,
    now: Date.now(),
    open: await openSegments(wal),
  });
  t.deepEqual(
    plan.compress.map((s) => s.name),
    [1, 2, 4, 6, 7, 8, 9, 10].map(seg),
  );
  const why = new Map(plan.skipped.map((s) => [s.name, s.reason]));
  t.is(why.get(seg(30)), "active segment");
  t.is(why.get(seg(21)), "among the newest 20");
  t.is(why.get(seg(3)), "open by a process");
  t.is(why.get(seg(5)), "younger than min_age");

  const a = await startAgent({
    extraToml: `[wal]\ndir = "${wal}"\n[remediators.wal_compress]\nmode = "dry-run"\n${QUIET_COLLECTORS}`,
  });
  t.teardown(() => a.stop("SIGKILL"));
  let r: {
    remediators: Array<{
      mode: string;
      last_decision: string;
      plan: { compress: string[] } | null;
    }>;
  } = { remediators: [] };
  for (let i = 0; i < 40 && !r.remediators[0]?.plan; i++) {
    await sleep(100);
    r = JSON.parse(agentctl(["--socket", a.socket, "remediations", "--json"]).stdout) as typeof r;
  }
  t.deepEqual(r.remediators[0]?.plan?.compress, [1, 2, 4, 6, 7, 8, 9, 10].map(seg));
  t.regex(r.remediators[0]?.last_decision ?? "", /^dry-run: would compress 8 segments/);
  t.deepEqual(
    readdirSync(wal).filter((f) => f.endsWith(".gz")),
    [],
    "dry-run touches nothing",
  );
});

test("compressing keeps owner, group, mode and mtime, and the bytes", async (t) => {
  const wal = walDir(3);
  const path = join(wal, seg(1));
  chmodSync(path, 0o640);
  if (isRoot) execFileSync("chown", ["65534:65534", path]);
  const before = statSync(path);
  const r = await compressAt(path, 6, 0);
  const after = statSync(`${path}.gz`);
  t.false(existsSync(path));
  t.is(after.mode & 0o7777, 0o640);
  t.is(after.uid, before.uid);
  t.is(after.gid, before.gid);
  t.is(Math.round(after.mtimeMs), Math.round(before.mtimeMs));
  t.is(r.bytes, 64 * 1024);
});

test(
  "recovery decides from the files alone: a stray .gz.tmp goes, a verified .gz lets the plain copy go, " +
    "a bad .gz is moved aside",
  async (t) => {
    const wal = walDir(4);
    writeFileSync(join(wal, `${seg(1)}.gz.tmp`), "half written");
    writeFileSync(join(wal, `${seg(2)}.gz`), gzipSync(readFileSync(join(wal, seg(2)))));
    writeFileSync(join(wal, `${seg(3)}.gz`), gzipSync(Buffer.from("some other bytes")));
    const actions = await withDir(wal, (d) => recover(d, [seg(2), seg(3)], [`${seg(1)}.gz.tmp`]));
    t.deepEqual(
      actions.map((a) => `${a.kind}:${a.file}`),
      [
        `removed_tmp:${seg(1)}.gz.tmp`,
        `removed_plain_after_verify:${seg(2)}`,
        `moved_aside_unverifiable_gz:${seg(3)}.gz`,
      ],
    );
    const files = readdirSync(wal).sort();
    t.true(
      files.includes(seg(1)) && files.includes(`${seg(2)}.gz`) && files.includes(seg(3)),
      files.join(","),
    );
    t.false(files.includes(seg(2)));
    t.true(
      files.some((f) => f.startsWith(`${seg(3)}.gz.unverified-`)),
      "the bad .gz is kept aside, not deleted",
    );
  },
);

test("a segment modified during compression is detected and left as it was", async (t) => {
  const wal = walDir(2, 4 * 1024 * 1024);
  const path = join(wal, seg(1));
  const p = compressAt(path, 6, 8 * 1024 * 1024); // ~0.5 s
  await sleep(150);
  appendFileSync(path, "a late write");
  const e = await t.throwsAsync(p, { instanceOf: SegmentChanged });
  t.regex(e?.message ?? "", /changed while it was being compressed/);
  t.true(readFileSync(path).subarray(-12).toString() === "a late write");
  t.deepEqual(
    readdirSync(wal).filter((f) => f.includes(".gz")),
    [],
  );
});

test(
  "a nearly full filesystem: no segment is started without its size plus the reserve free, " +
    "nothing is left behind, the round stops with an event",
  async (t) => {
    if (!isRoot) return t.pass("skipped: needs root to mount a small tmpfs");
    const { dir } = tempDir();
    const mnt = makeTmpfs(dir, "walfs", "6m", t.teardown.bind(t));
    const wal = join(mnt, "wal");
    mkdirSync(wal);
    const { randomBytes } = await import("node:crypto");
    const old = Date.now() / 1000 - 7200;
    for (let i = 1; i <= 5; i++) {
      writeFileSync(join(wal, seg(i)), randomBytes(1100 * 1024)); // incompressible: a .gz needs as much room again
      utimesSync(join(wal, seg(i)), old + i, old + i);
    }
    await t.throwsAsync(compressAt(join(wal, seg(1)), 6, 0, { reserve: 64 * 1024 }), {
      code: "NoSpace",
    });
    t.deepEqual(
      readdirSync(wal).filter((f) => f.includes(".gz")),
      [],
    );
    t.is(statSync(join(wal, seg(1))).size, 1100 * 1024);

    const a = await startAgent({
      extraToml:
        `[wal]\ndir = "${wal}"\n[remediators.wal_compress]\nmode = "on"\nkeep_uncompressed = 1\n` +
        `min_age = "0"\npause_fsync_above = "10s"\ncooldown = "1h"\nreserve = "1MiB"\n` +
        `${QUIET_COLLECTORS.replace("[collectors.wal]\nenabled = false\n", "")}`,
    });
    t.teardown(() => a.stop("SIGKILL"));
    await a.waitForLog((l) => String(l["msg"]).startsWith("stopped compressing at"), 15_000);
    const r = JSON.parse(agentctl(["--socket", a.socket, "remediations", "--json"]).stdout) as {
      remediators: Array<{ breaker_open: boolean; last_decision: string }>;
      journal: Array<{ state: string; target: string }>;
    };
    t.false(r.remediators[0]?.breaker_open, "a full filesystem is not a fault of the remediator");
    t.deepEqual(
      r.journal.map((j) => j.state),
      ["aborted"],
      "one attempt, then the round stops",
    );
    t.deepEqual(
      readdirSync(wal).filter((f) => f.includes(".gz")),
      [],
      "nothing half-written left behind",
    );
    t.regex(
      agentctl(["--socket", a.socket, "status"]).stdout,
      /^WARN\s+remediation\s+wal_compress: stopped, free space short on the WAL filesystem at segment\.1\.wal/m,
    );
    let diag = "";
    for (let i = 0; i < 30 && !/wal_compress stopped: free space short/.test(diag); i++) {
      await sleep(200); // the WAL inventory comes with the collector's first run
      diag = agentctl(["--socket", a.socket, "diagnose"]).stdout;
    }
    t.regex(
      diag,
      /5\. ls wal\/: what can be compressed\n\s+.*wal_compress stopped: free space short/,
    );
    const events =
      agentctl(["--socket", a.socket, "events", "--class", "agent", "--json"]).stdout +
      agentctl(["--socket", a.socket, "events", "--json"]).stdout;
    t.regex(events, /no_space/);
  },
);

test("three real failures open the breaker, which holds until reset", async (t) => {
  if (!isRoot) return t.pass("skipped: needs root to mount a tmpfs");
  const { dir } = tempDir();
  const mnt = makeTmpfs(dir, "walfs", "16m", t.teardown.bind(t));
  const wal = join(mnt, "wal");
  mkdirSync(wal);
  const old = Date.now() / 1000 - 7200;
  for (let i = 1; i <= 5; i++) {
    writeFileSync(join(wal, seg(i)), Buffer.alloc(100 * 1024, i));
    utimesSync(join(wal, seg(i)), old + i, old + i);
  }
  execFileSync("mount", ["-o", "remount,ro", mnt]); // EROFS on the temporary: a real failure
  const a = await startAgent({
    extraToml:
      `[wal]\ndir = "${wal}"\n[remediators.wal_compress]\nmode = "on"\nkeep_uncompressed = 1\n` +
      `min_age = "0"\npause_fsync_above = "10s"\ncooldown = "200ms"\nbreaker_after = 3\nreserve = "0"\n` +
      `${QUIET_COLLECTORS}`,
  });
  t.teardown(() => a.stop("SIGKILL"));
  await a.waitForLog(
    (l) => String(l["msg"]).startsWith("circuit breaker opened after 3 failures"),
    15_000,
  );
  const r = JSON.parse(agentctl(["--socket", a.socket, "remediations", "--json"]).stdout) as {
    remediators: Array<{ breaker_open: boolean }>;
    journal: Array<{ state: string }>;
  };
  t.true(r.remediators[0]?.breaker_open);
  t.deepEqual(
    r.journal.slice(0, 3).map((j) => j.state),
    ["failed", "failed", "failed"],
  );
  t.regex(
    agentctl(["--socket", a.socket, "status"]).stdout,
    /^WARN\s+remediation\s+wal_compress: circuit breaker open/m,
  );
  await sleep(1500);
  t.is(
    (
      JSON.parse(agentctl(["--socket", a.socket, "remediations", "--json"]).stdout) as {
        journal: unknown[];
      }
    ).journal.length,
    3,
    "no attempt while the breaker is open",
  );
  t.is(agentctl(["--socket", a.socket, "remediations", "reset-breaker", "wal_compress"]).code, 0);
  t.false(
    (
      JSON.parse(agentctl(["--socket", a.socket, "remediations", "--json"]).stdout) as {
        remediators: Array<{ breaker_open: boolean }>;
      }
    ).remediators[0]?.breaker_open,
  );
});

test("a symlink named like a segment is never touched, nor its target", async (t) => {
  const wal = walDir(25);
  const target = join(wal, "..", "precious");
  writeFileSync(target, "not a segment");
  symlinkSync(target, join(wal, seg(0)));
  const a = await startAgent({
    extraToml:
      `[wal]\ndir = "${wal}"\n[remediators.wal_compress]\nmode = "on"\nmin_age = "0"\n` +
      `pause_fsync_above = "10s"\n${QUIET_COLLECTORS}`,
  });
  t.teardown(() => a.stop("SIGKILL"));
  // 25 segments, the newest 20 kept (the active one among them): 5 to compress.
  for (let i = 0; i < 50 && readdirSync(wal).filter((f) => f.endsWith(".gz")).length < 5; i++)
    await sleep(100);
  await sleep(300);
  t.deepEqual(
    readdirSync(wal)
      .filter((f) => f.endsWith(".gz"))
      .sort(),
    [1, 2, 3, 4, 5].map((i) => `${seg(i)}.gz`).sort(),
  );
  t.true(existsSync(join(wal, seg(0))));
  t.is(readFileSync(target, "utf8"), "not a segment");
});

test("reset-breaker is an action: root may, anyone else is refused with exit 77", async (t) => {
  const a = await startAgent({ extraToml: QUIET_COLLECTORS });
  t.teardown(() => a.stop("SIGKILL"));
  const ok = agentctl(["--socket", a.socket, "remediations", "reset-breaker", "wal_compress"]);
  t.is(ok.code, isRoot ? 0 : 77, ok.stderr);
  if (!isRoot || !hasCommand("runuser")) return;
  chmodSync(a.dir, 0o755);
  chmodSync(a.socket, 0o666); // even with the read socket open to everyone, the action socket is not
  const nobody = spawnSync(
    "runuser",
    [
      "-u",
      "nobody",
      "--",
      process.execPath,
      AGENTCTL_BIN,
      "--socket",
      a.socket,
      "remediations",
      "reset-breaker",
      "wal_compress",
    ],
    { encoding: "utf8" },
  );
  t.is(nobody.status, 77);
  t.regex(
    nobody.stderr,
    /refused: .*agentctl-admin\.sock: permission denied: actions are for root only/,
  );
  const read = spawnSync(
    "runuser",
    ["-u", "nobody", "--", process.execPath, AGENTCTL_BIN, "--socket", a.socket, "remediations"],
    { encoding: "utf8" },
  );
  t.is(read.status, 0, "reading is allowed to whoever may open the read socket");
});

test("undo puts a compressed segment back, byte for byte, through the root-only action, journalled", async (t) => {
  if (!isRoot) return t.pass("skipped: actions need root");
  const wal = walDir(25, 256 * 1024);
  const original = readFileSync(join(wal, seg(1)));
  const before = statSync(join(wal, seg(1)));
  const a = await startAgent({
    extraToml:
      `[wal]\ndir = "${wal}"\n[remediators.wal_compress]\nmode = "on"\nmin_age = "0"\n` +
      `pause_fsync_above = "10s"\n${QUIET_COLLECTORS}`,
  });
  t.teardown(() => a.stop("SIGKILL"));
  // The whole round first (all but the newest 20 of 25): an undo while it still runs would not
  // be the newest journal row (CI saw segment 5's compress land after it).
  const done = () => [1, 2, 3, 4, 5].every((i) => existsSync(join(wal, `${seg(i)}.gz`)));
  for (let i = 0; i < 100 && !done(); i++) await sleep(100);
  t.false(existsSync(join(wal, seg(1))));
  const r = agentctl(["--socket", a.socket, "remediations", "undo", "wal_compress", seg(1)]);
  t.is(r.code, 0, r.stderr);
  t.true(existsSync(join(wal, seg(1))));
  t.false(existsSync(join(wal, `${seg(1)}.gz`)));
  t.true(readFileSync(join(wal, seg(1))).equals(original), "the same bytes");
  const after = statSync(join(wal, seg(1)));
  t.is(after.mode & 0o7777, before.mode & 0o7777);
  t.is(Math.round(after.mtimeMs), Math.round(before.mtimeMs));
  const journal = (
    JSON.parse(agentctl(["--socket", a.socket, "remediations", "--json"]).stdout) as {
      journal: Array<{ action: string; target: string; state: string }>;
    }
  ).journal;
  t.like(journal[0], { action: "decompress", target: seg(1), state: "done" });
  await sleep(1500); // ticks pass: the undone segment is not compressed again
  t.true(
    existsSync(join(wal, seg(1))) && !existsSync(join(wal, `${seg(1)}.gz`)),
    "held out of future plans",
  );
  const bad = agentctl([
    "--socket",
    a.socket,
    "remediations",
    "undo",
    "wal_compress",
    "../../etc/passwd",
  ]);
  t.is(bad.code, 64);
  t.regex(bad.stderr, /is not a segment of/);
});
