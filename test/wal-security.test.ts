// The WAL directory belongs to the database's user, who is assumed hostile. Each attack here is
// made by a real unprivileged user (created and removed by the test) that owns the WAL directory
// and its parent, against the real agent running as root with wal_compress "on": planted links
// for every name the agent creates, a renameat2(RENAME_EXCHANGE) racer, appends and holds timed
// to the verification, an incompressible segment, a nearly full filesystem, a moved WAL link.
// Serial: the racers and planters are busy loops that would starve each other of the 2 cores.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import test, { type ExecutionContext } from "ava";
import { withDir } from "../core/safefs.js";
import { compressSegment } from "../remediators/wal_compress/steps.js";
import {
  agentctl,
  hasCommand,
  isRoot,
  QUIET_COLLECTORS,
  startAgent,
  tempDir,
} from "./helpers/agent-process.js";
import { makeTmpfs } from "./helpers/loop.js";
import { sleep } from "./helpers/quiet.js";
import { removeUser } from "./helpers/users.js";

const USER = `sa-wal-${process.pid}`;
const seg = (i: number) => `segment.${String(i).padStart(3, "0")}.wal`;
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const MARK = "ROOT-ONLY-SECRET-7f3a";
const SECRET_LINES = 40_000;
let uid = -1;
let gid = -1;

const ready = isRoot && hasCommand("useradd") && hasCommand("runuser") && hasCommand("cc");

test.before(() => {
  if (!ready) return;
  execFileSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER]);
  uid = Number(execFileSync("id", ["-u", USER], { encoding: "utf8" }));
  gid = Number(execFileSync("id", ["-g", USER], { encoding: "utf8" }));
});

test.after.always(() => {
  if (ready) removeUser(USER);
});

function skip(t: ExecutionContext): boolean {
  if (ready) return false;
  t.pass("skipped: needs root, useradd, runuser and cc");
  return true;
}

interface Setup {
  readonly base: string;
  readonly wal: string;
  /** A root-only file outside the directory: no byte of it may ever reach the WAL directory. */
  readonly secret: string;
  readonly originals: Map<string, string>;
}

/** A WAL directory and its parent owned by the test user; segments written as that user owns them. */
function setup(
  n: number,
  make: (i: number) => Buffer = (i) => walBytes(i),
  underDir?: string,
): Setup {
  const { dir } = tempDir();
  chmodSync(dir, 0o711);
  const base = underDir ?? join(dir, "db");
  mkdirSync(base, { recursive: true });
  const wal = join(base, "wal");
  mkdirSync(wal);
  execFileSync("chown", [`${uid}:${gid}`, base, wal]);
  chmodSync(wal, 0o750);
  const secret = join(dir, "secret");
  // Larger than any segment here: a read that followed a link would fill a whole segment's length.
  writeFileSync(secret, `${MARK}\n`.repeat(SECRET_LINES), { mode: 0o600 });
  const originals = new Map<string, string>();
  const old = Date.now() / 1000 - 7200;
  for (let i = 1; i <= n; i++) {
    const b = make(i);
    const p = join(wal, seg(i));
    writeFileSync(p, b, { mode: 0o640 });
    execFileSync("chown", [`${uid}:${gid}`, p]);
    utimesSync(p, old + i, old + i);
    originals.set(seg(i), sha(b));
  }
  return { base, wal, secret, originals };
}

/** Compressible, WAL-like bytes. */
function walBytes(i: number, size = 256 * 1024): Buffer {
  const row = Buffer.from(`put key-${i} value-${"v".repeat(50)}\n`);
  return Buffer.concat([randomBytes(16 * 1024), Buffer.alloc(size - 16 * 1024, row)]).subarray(
    0,
    size,
  );
}

function toml(wal: string, over: Record<string, string> = {}): string {
  const keys = {
    mode: '"on"',
    min_age: '"0"',
    keep_uncompressed: "1",
    pause_fsync_above: '"10s"',
    cooldown: '"100ms"',
    reserve: '"0"',
    ...over,
  };
  const table = Object.entries(keys)
    .map(([k, v]) => `${k} = ${v}`)
    .join("\n");
  return `[wal]\ndir = "${wal}"\n[remediators.wal_compress]\n${table}\n${QUIET_COLLECTORS}`;
}

/** Every segment is there in exactly one complete form, and nothing in the directory holds the secret. */
function intact(t: ExecutionContext, s: Setup): void {
  t.is(
    readFileSync(s.secret, "utf8"),
    `${MARK}\n`.repeat(SECRET_LINES),
    "the root-only file is unchanged",
  );
  t.is(statSync(s.secret).uid, 0, "and still root's");
  const files = readdirSync(s.wal);
  for (const [name, digest] of s.originals) {
    const plain =
      files.includes(name) &&
      (lstatSync(join(s.wal, name), { throwIfNoEntry: false })?.isFile() ?? false);
    const gz = files.includes(`${name}.gz`);
    t.true(plain || gz, `${name}: some form exists (${files.join(" ")})`);
    if (gz) {
      t.true(
        lstatSync(join(s.wal, `${name}.gz`)).isFile(),
        `${name}.gz is a regular file, not a link`,
      );
      t.is(
        sha(gunzipSync(readFileSync(join(s.wal, `${name}.gz`)))),
        digest,
        `${name}.gz holds the segment's bytes`,
      );
    }
    if (plain) t.is(sha(readFileSync(join(s.wal, name))), digest, `${name}: bytes intact`);
  }
  for (const f of readdirSync(s.wal)) {
    const p = join(s.wal, f);
    if (!(lstatSync(p, { throwIfNoEntry: false })?.isFile() ?? false)) continue;
    const raw = readFileSync(p);
    const text = f.endsWith(".gz") ? gunzipSync(raw, { finishFlush: 2 }) : raw;
    t.false(text.includes(MARK), `${f} holds no byte of the root-only file`);
  }
}

/** Runs a shell command as the test user, in the background; returns a stopper. */
function asUser(script: string): () => Promise<void> {
  // spawn's own uid/gid (no runuser in between: killing it would leave the shell running).
  const p = spawn("sh", ["-c", script], { stdio: "ignore", uid, gid });
  return () =>
    new Promise((resolve) => {
      if (p.exitCode !== null || p.signalCode !== null) return resolve();
      p.once("exit", () => resolve());
      p.kill("SIGKILL");
    });
}

function runAsUser(args: string[]): string {
  return execFileSync("runuser", ["-u", USER, "--", ...args], { encoding: "utf8" });
}

const gzCount = (wal: string) => readdirSync(wal).filter((f) => /\.wal\.gz$/.test(f)).length;

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(50);
  }
  return cond();
}

/**
 * The real agent compressing segment 1, held right after `step` (the worker's test-only pause)
 * until `release()`: what the test does meanwhile lands at that step, deliberately.
 */
async function heldAfter(t: ExecutionContext, s: Setup, step: string) {
  const { dir } = tempDir();
  const pauseFile = join(dir, "pause");
  writeFileSync(pauseFile, "");
  const env = {
    STEMEDB_AGENT_TEST_PAUSE_AFTER_STEP: step,
    STEMEDB_AGENT_TEST_PAUSE_FILE: pauseFile,
  };
  const a = await startAgent({ extraToml: toml(s.wal, { cooldown: '"1h"' }), env });
  t.teardown(() => a.stop("SIGKILL"));
  await a.waitForLog((l) => l["msg"] === "wal_compress step" && l["step"] === step, 15_000);
  const release = async () => {
    unlinkSync(pauseFile);
    const l = await a.waitForLog(
      (x) => String(x["msg"]).startsWith("aborted compressing segment.001.wal"),
      15_000,
    );
    return String(l["msg"]);
  };
  return { a, release };
}

test.serial(
  "a planted link at the fsync probe's name is replaced, never written through",
  async (t) => {
    if (skip(t)) return;
    const s = setup(2);
    runAsUser(["ln", "-s", s.secret, join(s.wal, ".stemedb-agent-fsync-probe")]);
    const probeCollectors = QUIET_COLLECTORS.replace(
      "[collectors.fsync_probe]\nenabled = false\n",
      '[collectors.fsync_probe]\ninterval = "1s"\n',
    );
    const probeToml = `[wal]\ndir = "${s.wal}"\n${probeCollectors}`;
    const a = await startAgent({ extraToml: probeToml });
    t.teardown(() => a.stop("SIGKILL"));
    const probe = join(s.wal, ".stemedb-agent-fsync-probe");
    t.true(
      await until(() => lstatSync(probe).isFile(), 10_000),
      "the agent made its own probe file",
    );
    await sleep(1500);
    const st = lstatSync(probe);
    t.true(st.isFile(), "the link was replaced by the agent's own file");
    t.is(st.size, 1024 * 1024);
    t.is(st.mode & 0o777, 0o600);
    intact(t, s);
    const m = await (await fetch(`${a.url}/metrics`)).text();
    t.regex(
      m,
      /stemedb_agent_fsync_probe_duration_seconds_count\{[^}]*\} [1-9]/,
      "and the probe works",
    );
  },
);

test.serial(
  "a link planted at every temporary name, again and again while compression runs, reaches nothing",
  async (t) => {
    if (skip(t)) return;
    const s = setup(8);
    // The user keeps replacing each .gz.tmp and .restore.tmp name with a link to the root-only file.
    const names = [...s.originals.keys()].flatMap((n) => [`${n}.gz.tmp`, `${n}.restore.tmp`]);
    const stop = asUser(
      `cd ${s.wal} && while true; do for n in ${names.join(" ")}; do ln -sfn ${s.secret} $n; done; done`,
    );
    t.teardown(stop);
    const a = await startAgent({ extraToml: toml(s.wal) });
    t.teardown(() => a.stop("SIGKILL"));
    await sleep(4000);
    await stop();
    intact(t, s);
    // Without the planter, the same agent finishes the job: the links are no obstacle for long.
    for (const n of names) rmSync(join(s.wal, n), { force: true });
    t.true(
      await until(() => gzCount(s.wal) === 7, 30_000),
      `compressed: ${readdirSync(s.wal).join(" ")}`,
    );
    intact(t, s);
    // The undo's temporary: a link planted before root runs `agentctl remediations undo`.
    runAsUser(["ln", "-s", s.secret, join(s.wal, `${seg(1)}.restore.tmp`)]);
    const r = agentctl(["--socket", a.socket, "remediations", "undo", "wal_compress", seg(1)]);
    t.is(r.code, 0, r.stderr);
    t.true(lstatSync(join(s.wal, seg(1))).isFile());
    t.is(statSync(join(s.wal, seg(1))).uid, uid, "the undone segment belongs to its owner again");
    intact(t, s);
  },
);

const RACER = `
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
/* racer DIR A B SECONDS: swaps names A and B (RENAME_EXCHANGE) as fast as it can. */
int main(int argc, char **argv) {
  if (argc != 5) return 2;
  int d = open(argv[1], O_RDONLY | O_DIRECTORY);
  if (d < 0) { perror("open"); return 1; }
  struct timespec s, n;
  clock_gettime(CLOCK_MONOTONIC, &s);
  long swaps = 0;
  for (long tries = 1;; tries++) {
    if (syscall(SYS_renameat2, d, argv[2], d, argv[3], 2 /* RENAME_EXCHANGE */) == 0) swaps++;
    /* By attempts, not swaps: once a name is gone every swap fails, and the clock must still end it. */
    if ((tries & 255) == 0) {
      clock_gettime(CLOCK_MONOTONIC, &n);
      if (n.tv_sec - s.tv_sec >= atol(argv[4])) break;
    }
  }
  if (swaps & 1) syscall(SYS_renameat2, d, argv[2], d, argv[3], 2);
  printf("%ld\\n", swaps);
  return 0;
}
`;

function buildRacer(dir: string): string {
  writeFileSync(join(dir, "racer.c"), RACER);
  execFileSync("cc", ["-O2", "-o", join(dir, "racer"), join(dir, "racer.c")]);
  chmodSync(join(dir, "racer"), 0o755);
  return join(dir, "racer");
}

test.serial(
  "a segment swapped with a link to a root-only file (renameat2 exchange) while it is compressed: no " +
    "root-only byte ever reaches a .gz",
  async (t) => {
    if (skip(t)) return;
    const s = setup(6);
    const racer = buildRacer(join(s.base, ".."));
    // Two segments race against a link (outside the pattern) to the root-only file (one racer a
    // core: more would only starve the agent of CPU and the race of attempts).
    const racers = [1, 2].map((i) => {
      runAsUser(["ln", "-s", s.secret, join(s.wal, `decoy-${i}`)]);
      return asUser(`${racer} ${s.wal} ${seg(i)} decoy-${i} 6`);
    });
    t.teardown(() => Promise.all(racers.map((r) => r())));
    // The race itself, as often as possible: each segment as listed, read and gzipped while the
    // racer swaps it; the temporary is inspected at 'hashed' and the attempt then stopped, so the
    // segment stays for the next round.
    let attempts = 0;
    let refused = 0;
    const leaks: string[] = [];
    const end = Date.now() + 5000;
    while (Date.now() < end) {
      for (let i = 1; i <= 2; i++) {
        let listed;
        try {
          listed = lstatSync(join(s.wal, seg(i)));
        } catch {
          continue;
        }
        if (!listed.isFile()) continue;
        attempts++;
        await withDir(s.wal, (d) =>
          compressSegment(
            d,
            seg(i),
            listed,
            { level: 1, bytesPerSecond: 0, maxRatio: 1, reserve: 0 },
            (step) => {
              if (step !== "hashed") return;
              const tmp = gunzipSync(readFileSync(join(s.wal, `${seg(i)}.gz.tmp`)), {
                finishFlush: 2,
              });
              if (tmp.includes(MARK)) leaks.push(seg(i));
              throw new Error("stopped after the read");
            },
          ),
        ).catch((e: Error) => {
          if (e.message !== "stopped after the read") refused++;
        });
      }
    }
    t.deepEqual(leaks, [], "no temporary ever held a root-only byte");
    // And the agent, in the same race.
    const a = await startAgent({ extraToml: toml(s.wal) });
    t.teardown(() => a.stop("SIGKILL"));
    await sleep(2000);
    await Promise.all(racers.map((r) => r()));
    await sleep(500);
    for (let i = 1; i <= 2; i++) {
      // The race may end with the link under the segment's name: put the names back for the check.
      if (existsSync(join(s.wal, `decoy-${i}`)) && lstatSync(join(s.wal, `decoy-${i}`)).isFile()) {
        execFileSync("mv", ["-T", join(s.wal, `decoy-${i}`), join(s.wal, `${seg(i)}.tmpname`)]);
        unlinkSync(join(s.wal, seg(i)));
        execFileSync("mv", ["-T", join(s.wal, `${seg(i)}.tmpname`), join(s.wal, seg(i))]);
      }
    }
    t.log(`${attempts} compressions raced by hand (${refused} refused), plus the agent's`);
    t.true(attempts > 50, `${attempts} attempts`);
    t.true(refused > 0, "the race was really run: some reads were refused");
    intact(t, s);
  },
);

test.serial(
  "bytes appended after verification: the original is kept, whole, and no .gz is left",
  async (t) => {
    if (skip(t)) return;
    const s = setup(3);
    const { release } = await heldAfter(t, s, "verified");
    runAsUser(["sh", "-c", `printf 'late record\\n' >> ${join(s.wal, seg(1))}`]);
    t.regex(
      await release(),
      /changed after it was hashed; kept/,
      "caught by the last look before the unlink",
    );
    const bytes = readFileSync(join(s.wal, seg(1)));
    t.true(bytes.subarray(-12).toString() === "late record\n", "the appended bytes are there");
    t.false(existsSync(join(s.wal, `${seg(1)}.gz`)), "no compressed copy of the old bytes");
    t.deepEqual(
      readdirSync(s.wal).filter((f) => f.includes(".tmp")),
      [],
    );
  },
);

test.serial(
  "bytes appended after the last look, before the unlink: the segment is put back whole from the agent's descriptor",
  async (t) => {
    if (skip(t)) return;
    const s = setup(3);
    const { release } = await heldAfter(t, s, "checked");
    runAsUser(["sh", "-c", `printf 'later record\\n' >> ${join(s.wal, seg(1))}`]);
    t.regex(await release(), /written to while it was being removed; put back whole/);
    const bytes = readFileSync(join(s.wal, seg(1)));
    t.is(bytes.subarray(-13).toString(), "later record\n", "the appended bytes are there");
    t.is(bytes.length, 256 * 1024 + 13);
    t.is(statSync(join(s.wal, seg(1))).uid, uid, "owned by its owner again");
    t.false(existsSync(join(s.wal, `${seg(1)}.gz`)), "no compressed copy of the old bytes");
    t.deepEqual(
      readdirSync(s.wal).filter((f) => f.includes(".tmp")),
      [],
    );
  },
);

test.serial(
  "a segment opened by a process after the plan is kept: the final look finds the holder",
  async (t) => {
    if (skip(t)) return;
    const s = setup(3);
    const { a, release } = await heldAfter(t, s, "verified");
    // The database (the user) opens the sealed segment for writing and keeps it open.
    const stopHolder = asUser(`exec 3>>${join(s.wal, seg(1))}; sleep 60`);
    t.teardown(stopHolder);
    await sleep(300);
    t.regex(await release(), /is open in process \d+(, \d+)*; kept/);
    t.true(existsSync(join(s.wal, seg(1))));
    t.false(
      existsSync(join(s.wal, `${seg(1)}.gz`)),
      "one form only: the compressed copy was removed again",
    );
    const r = JSON.parse(agentctl(["--socket", a.socket, "remediations", "--json"]).stdout) as {
      journal: Array<{ target: string; state: string }>;
    };
    t.like(
      r.journal.find((j) => j.target === seg(1)),
      { state: "aborted" },
    );
    await stopHolder();
    intact(t, s);
  },
);

test.serial(
  "an incompressible segment: the temporary is abandoned past max_ratio, the segment left plain and " +
    "not tried again until it changes",
  async (t) => {
    if (skip(t)) return;
    const s = setup(3, (i) => (i === 1 ? randomBytes(512 * 1024) : walBytes(i)));
    const a = await startAgent({ extraToml: toml(s.wal, { max_ratio: "0.9" }) });
    t.teardown(() => a.stop("SIGKILL"));
    await a.waitForLog((l) => String(l["msg"]).includes("segment.001.wal left plain"), 15_000);
    t.true(
      await until(() => existsSync(join(s.wal, `${seg(2)}.gz`)), 10_000),
      "the round goes on to the next segment",
    );
    await sleep(1500);
    const r = JSON.parse(agentctl(["--socket", a.socket, "remediations", "--json"]).stdout) as {
      journal: Array<{ target: string; state: string }>;
    };
    t.is(r.journal.filter((j) => j.target === seg(1)).length, 1, "tried once");
    t.false(existsSync(join(s.wal, `${seg(1)}.gz`)));
    t.deepEqual(
      readdirSync(s.wal).filter((f) => f.includes(".tmp")),
      [],
    );
    const events = agentctl(["--socket", a.socket, "events", "--json"]).stdout;
    t.regex(events, /incompressible/);
    intact(t, s);
  },
);

test.serial(
  "a nearly full filesystem: free space never falls under the reserve; a writer taking the room stops the round",
  async (t) => {
    if (skip(t)) return;
    const { dir } = tempDir();
    chmodSync(dir, 0o711);
    const mnt = makeTmpfs(dir, "fs", "8m", t.teardown.bind(t));
    // Random bytes: as large again once gzipped, so a temporary could take a segment's size.
    const s = setup(6, () => randomBytes(1024 * 1024), join(mnt, "db"));
    const free = () => withDir(s.wal, (d) => d.available());
    const reserve = free() - 768 * 1024; // not room enough for a segment above the reserve
    let min = free();
    const sampler = setInterval(() => (min = Math.min(min, free())), 1);
    t.teardown(() => clearInterval(sampler));
    const a = await startAgent({
      extraToml: toml(s.wal, { reserve: `"${reserve}B"`, max_ratio: "1", cooldown: '"1h"' }),
    });
    t.teardown(() => a.stop("SIGKILL"));
    const stop = await a.waitForLog(
      (l) => String(l["msg"]).startsWith("stopped compressing at"),
      15_000,
    );
    t.regex(String(stop["msg"]), /needs \d+ plus the reserve/, "refused before a byte was written");
    await sleep(500);
    clearInterval(sampler);
    t.log(`lowest free space ${min} bytes, reserve ${reserve}`);
    t.true(min >= reserve, "the agent never took the filesystem under its reserve");
    t.deepEqual(
      readdirSync(s.wal).filter((f) => f.includes(".tmp")),
      [],
    );
    intact(t, s);
  },
);

test.serial(
  "a writer filling the filesystem while a segment is compressed: the temporary gives way at the reserve",
  async (t) => {
    if (skip(t)) return;
    const { dir } = tempDir();
    chmodSync(dir, 0o711);
    const mnt = makeTmpfs(dir, "fs", "12m", t.teardown.bind(t));
    const s = setup(2, () => randomBytes(2 * 1024 * 1024), join(mnt, "db"));
    const reserve = 1024 * 1024;
    const a = await startAgent({
      extraToml: toml(s.wal, {
        reserve: `"${reserve}B"`,
        max_ratio: "1",
        max_bytes_per_second: '"1MiB"',
        cooldown: '"1h"',
      }),
    });
    t.teardown(() => a.stop("SIGKILL"));
    await a.waitForLog((l) => String(l["msg"]).startsWith("compressing "), 15_000);
    await sleep(500); // ~0.5 MiB into the 2 s of throttled streaming, past the start's own check
    // The database takes all but ~1.5 MiB while the throttled compression streams.
    const room = withDir(s.wal, (d) => d.available());
    runAsUser([
      "dd",
      "if=/dev/zero",
      `of=${join(s.wal, "segment.900.wal")}`,
      "bs=64k",
      `count=${Math.floor((room - 1536 * 1024) / 65536)}`,
      "status=none",
    ]);
    const l = await a.waitForLog(
      (x) => String(x["msg"]).startsWith("stopped compressing at"),
      15_000,
    );
    t.regex(
      String(l["msg"]),
      /free space would fall under the reserve/,
      "the temporary gave way before ENOSPC",
    );
    t.deepEqual(
      readdirSync(s.wal).filter((f) => f.includes(".tmp")),
      [],
      "the temporary is gone",
    );
    t.true(withDir(s.wal, (d) => d.available()) >= reserve, "and its room given back");
    rmSync(join(s.wal, "segment.900.wal"));
    intact(t, s);
  },
);

test.serial(
  "verification compares content, not only length: a same-length, different .gz.tmp is discarded",
  async (t) => {
    const { dir } = tempDir();
    const wal = join(dir, "wal");
    mkdirSync(wal);
    const b = walBytes(1);
    writeFileSync(join(wal, seg(1)), b);
    const listed = statSync(join(wal, seg(1)));
    const forged = gzipSync(Buffer.alloc(b.length, 0x41)); // decompresses to as many bytes, other ones
    const e = await t.throwsAsync(
      withDir(wal, (d) =>
        compressSegment(
          d,
          seg(1),
          listed,
          { level: 6, bytesPerSecond: 0, maxRatio: 1, reserve: 0 },
          (step) => {
            if (step === "tmp_synced") writeFileSync(join(wal, `${seg(1)}.gz.tmp`), forged);
          },
        ),
      ),
    );
    t.regex(e?.message ?? "", /does not decompress to/);
    t.true(readFileSync(join(wal, seg(1))).equals(b));
    t.deepEqual(readdirSync(wal), [seg(1)]);
  },
);

test.serial(
  "the order of the filesystem calls, as the kernel saw them: temporary fsynced, renamed, directory " +
    "fsynced, then the unlink, then the directory again",
  (t) => {
    if (!hasCommand("strace")) return t.pass("skipped: strace is not installed");
    const { dir } = tempDir();
    const wal = join(dir, "wal");
    mkdirSync(wal);
    writeFileSync(join(wal, seg(1)), walBytes(1));
    const script = join(dir, "run.mjs");
    const dist = new URL("..", import.meta.url).pathname;
    writeFileSync(
      script,
      `
import { statSync } from "node:fs";
import { withDir } from "${dist}core/safefs.js";
import { ` +
        `compressSegment } from "${dist}remediators/wal_compress/steps.js";
const p = ` +
        `"${join(wal, seg(1))}";
await withDir("${wal}", (d) => compressSegment(d, "${seg(1)}", ` +
        `statSync(p), { level: 1, bytesPerSecond: 0, maxRatio: 1, reserve: 0 }));
`,
    );
    const out = join(dir, "trace");
    const r = spawnSync(
      "strace",
      [
        "-f",
        "-qq",
        "-o",
        out,
        "-e",
        "trace=openat,rename,renameat,renameat2,unlink,unlinkat,fsync,fdatasync",
        process.execPath,
        script,
      ],
      { encoding: "utf8" },
    );
    t.is(r.status, 0, r.stderr);
    const lines = readFileSync(out, "utf8")
      .split("\n")
      .map((l) => l.replace(/^\d+\s+/, ""));
    const fdOf = (re: RegExp) => lines.find((l) => re.test(l))?.match(/= (\d+)$/)?.[1];
    const tmpFd = fdOf(/openat\(.*segment\.001\.wal\.gz\.tmp".*O_CREAT\|O_EXCL/);
    const dirFd =
      fdOf(/openat\(AT_FDCWD, "[^"]*\/wal", O_RDONLY\|O_NOFOLLOW\|O_CLOEXEC\|O_DIRECTORY/) ??
      fdOf(/openat\(AT_FDCWD, "[^"]*\/wal", .*O_DIRECTORY/);
    t.truthy(tmpFd, "the temporary is created O_CREAT|O_EXCL");
    t.truthy(dirFd, "the directory is opened once");
    const idx = (re: RegExp, from = 0) => lines.findIndex((l, i) => i >= from && re.test(l));
    const tmpSync = idx(new RegExp(`^f(data)?sync\\(${tmpFd}\\)`));
    const rename = idx(/^rename(at2?)?\(.*segment\.001\.wal\.gz\.tmp".*segment\.001\.wal\.gz"/);
    const dirSync1 = idx(new RegExp(`^fsync\\(${dirFd}\\)`), rename);
    const unlink = idx(/^unlink(at)?\(.*segment\.001\.wal"/);
    const dirSync2 = idx(new RegExp(`^fsync\\(${dirFd}\\)`), unlink);
    t.log(lines.filter((l) => /segment|fsync/.test(l)).join("\n"));
    t.true(tmpSync >= 0 && rename > tmpSync, "the temporary is durable before it is renamed");
    t.true(
      dirSync1 > rename && unlink > dirSync1,
      "the rename is durable before the original is unlinked",
    );
    t.true(dirSync2 > unlink, "and the unlink is made durable");
    t.false(
      lines.some((l) => /openat\(.*segment\.001\.wal", O_RDONLY(?!.*O_NOFOLLOW)/.test(l)),
      "the segment is never opened following links",
    );
  },
);

test.serial(
  "a symlinked WAL directory works; once the link leads elsewhere nothing is done through it until a reload",
  async (t) => {
    if (skip(t)) return;
    const s = setup(4);
    const link = join(s.base, "..", "wal-link");
    symlinkSync(s.wal, link);
    const a = await startAgent({ extraToml: toml(link) });
    t.teardown(() => a.stop("SIGKILL"));
    t.true(await until(() => gzCount(s.wal) === 3, 20_000), "compression works through the link");
    // Another directory, root's, with a segment of its own: the link now leads there.
    const other = join(s.base, "..", "other");
    mkdirSync(other);
    writeFileSync(join(other, seg(1)), walBytes(9));
    writeFileSync(join(other, seg(2)), walBytes(9));
    utimesSync(join(other, seg(1)), Date.now() / 1000 - 7200, Date.now() / 1000 - 7200);
    unlinkSync(link);
    symlinkSync(other, link);
    await a.waitForLog((l) => String(l["msg"]).includes("no longer leads to"), 20_000);
    t.false(existsSync(join(other, `${seg(1)}.gz`)), "nothing done through the changed link");
    a.proc.kill("SIGHUP");
    t.true(
      await until(() => existsSync(join(other, `${seg(1)}.gz`)), 20_000),
      "a reload accepts the new target",
    );
    intact(t, s);
  },
);
