// The emergency ballast on real small filesystems (ext4 and xfs on loop devices), with the real
// agent as root and a real unprivileged user owning the WAL directory who fills the disk: taken in
// steps, given back before WAL compression would act, taken again after space is back; released
// by an operator; refused where the WAL's owner planted something; recovered after a kill -9
// mid-creation; only described in dry-run.
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statfsSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";
import { loadConfig } from "../core/config/load.js";
import type { Config } from "../core/config/schema.js";
import { bytes } from "../core/config/units.js";
import type { HistoryStore } from "../core/history/store.js";
import { spaceOf } from "../core/host/statfs.js";
import { BallastRemediator, ballastOptions } from "../remediators/ballast/remediator.js";
import type { Latest } from "../remediators/framework.js";
import { DirHandle } from "../core/safefs.js";
import {
  BallastRefused,
  closeQuietly,
  createBallast,
  defaultRunner,
  release,
  reserve,
  type Runner,
} from "../remediators/ballast/file.js";
import type { BallastState } from "../remediators/ballast/view.js";
import {
  AGENTCTL_BIN,
  agentctl,
  fetchText,
  hasCommand,
  isRoot,
  QUIET_COLLECTORS,
  type RunningAgent,
  startAgent,
  tempDir,
} from "./helpers/agent-process.js";
import { makeLoopFs, makeTmpfs } from "./helpers/loop.js";
import { buildRemediator } from "./helpers/remediators.js";
import { sleep } from "./helpers/quiet.js";
import { testUser } from "./helpers/users.js";

const MiB = 1024 * 1024;
const SIZE = 96 * MiB; // two steps: 64 MiB, a pause, 32 MiB
const ready = isRoot && hasCommand("useradd") && hasCommand("runuser") && hasCommand("fallocate");

const user = testUser("sa-ballast", ready);

function skip(t: ExecutionContext, more = true): boolean {
  if (ready && more) return false;
  t.pass("skipped: needs root, useradd, runuser, fallocate (and mkfs for the filesystem)");
  return true;
}

/** As the database's user. */
const asUser = (cmd: string, ...args: string[]): void => user.run(cmd, ...args);

interface Node {
  readonly mnt: string;
  readonly wal: string;
  readonly place: string;
  readonly file: string;
  readonly dir: string;
}

/** A loop filesystem whose root is root's (0755), the WAL directory the user's (0700). */
function node(t: ExecutionContext, fs: "ext4" | "xfs" = "ext4"): Node {
  const { dir, cleanup } = tempDir("sa-bal-");
  t.teardown(cleanup);
  const lfs = makeLoopFs(dir, { sizeMiB: 512, fs });
  t.teardown(() => lfs.cleanup());
  chmodSync(dir, 0o711);
  chmodSync(lfs.mnt, 0o755);
  const wal = join(lfs.mnt, "wal");
  mkdirSync(wal, { mode: 0o700 });
  chownSync(wal, user.uid, user.gid);
  const place = join(lfs.mnt, ".stemedb-agent-ballast");
  return { mnt: lfs.mnt, wal, place, file: join(place, "EMERGENCY_BALLAST"), dir };
}

/** The agent's own [collectors] and [remediators] for these tests (state dir: not on the loop fs). */
function toml(n: Node, ballast: string, recreateAfter = "3s"): string {
  return (
    `[wal]\ndir = "${n.wal}"\n` +
    `${QUIET_COLLECTORS.replace("[collectors.wal]\nenabled = false\n", "")}` +
    `[collectors.wal]\ninterval = "1s"\n` +
    `[remediators.ballast]\nsize = "${SIZE / MiB}MiB"\nrecreate_after = "${recreateAfter}"\n${ballast}\n`
  );
}

const used = (path: string) => spaceOf(statfsSync(path)).used_ratio;
const allocatedOf = (path: string) => {
  try {
    return statSync(path).blocks * 512;
  } catch {
    return 0;
  }
};

function ballastOf(a: RunningAgent): BallastState {
  const r = agentctl(["--socket", a.socket, "ballast", "--json"]);
  if (r.code !== 0) throw new Error(`agentctl ballast: ${r.code} ${r.stderr}`);
  return JSON.parse(r.stdout) as BallastState;
}

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  ms = 20_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

interface JournalRow {
  remediator: string;
  action: string;
  target: string;
  state: string;
  started_at: string;
  detail: string | null;
}
function journal(a: RunningAgent): JournalRow[] {
  const r = JSON.parse(agentctl(["--socket", a.socket, "remediations", "--json"]).stdout) as {
    journal: JournalRow[];
  };
  return r.journal.filter((j) => j.remediator === "ballast").reverse();
}

function events(a: RunningAgent): Array<{ kind: string; severity: string; message: string }> {
  const r = agentctl(["--socket", a.socket, "events", "--class", "remediation", "--json"]);
  return (
    JSON.parse(r.stdout) as { events: Array<{ kind: string; severity: string; message: string }> }
  ).events.filter((e) => e.kind.startsWith("ballast."));
}

const metric = async (a: RunningAgent, re: RegExp) =>
  Number(re.exec((await fetchText(`${a.url}/metrics`)).text)?.[1] ?? NaN);

for (const fs of ["ext4", "xfs"] as const) {
  test.serial(
    `${fs}: taken in 64 MiB steps, given back as the WAL's owner fills the disk, before wal_compress's ` +
      "line, taken again once space is back",
    async (t) => {
      if (skip(t, hasCommand(`mkfs.${fs}`))) return;
      const n = node(t, fs);
      const a = await startAgent({ dir: n.dir, extraToml: toml(n, 'mode = "on"') });
      t.teardown(() => a.stop("SIGKILL"));
      const held = await until("the ballast held", () => {
        const b = ballastOf(a);
        return b.ballast.state === "held" ? b : undefined;
      });
      t.is(held.ballast.path, n.place);
      t.true(allocatedOf(n.file) >= SIZE, `${allocatedOf(n.file)} bytes allocated`);
      const dst = lstatSync(n.place);
      t.true(dst.isDirectory());
      t.is(dst.uid, 0);
      t.is(dst.mode & 0o7777, 0o700);
      const fst = lstatSync(n.file);
      t.is(fst.uid, 0);
      t.is(fst.mode & 0o7777, 0o600);
      t.deepEqual(readdirSync(n.wal), [], "nothing in the WAL directory");
      // A journal row before each step: the file, then 64 MiB, then 32 MiB a second later.
      const rows = journal(a);
      t.deepEqual(
        rows.map((j) => `${j.action}:${j.state}`),
        ["create:done", "reserve:done", "reserve:done"],
      );
      t.like(JSON.parse(rows[1]?.detail ?? "{}"), { offset: 0, length: 64 * MiB });
      t.like(JSON.parse(rows[2]?.detail ?? "{}"), { offset: 64 * MiB, length: 32 * MiB });
      const gap = Date.parse(rows[2]?.started_at ?? "") - Date.parse(rows[1]?.started_at ?? "");
      t.true(gap >= 900, `steps ${gap} ms apart`);
      t.is(await metric(a, /^stemedb_agent_ballast_bytes (\S+)$/m), SIZE);
      t.is(await metric(a, /^stemedb_agent_ballast_state\{state="held"\} (\S+)$/m), 1);
      t.regex(
        agentctl(["--socket", a.socket, "status"]).stdout,
        /^OK\s+ballast\s+96\.0 MiB held at /m,
      );

      // The WAL's owner fills the disk, 4 MiB at a time, to just past 75 % (or until the agent
      // gives the ballast back on the way there).
      let i = 0;
      let peak = used(n.mnt);
      while (peak < 0.755 && existsSync(n.file)) {
        const of = `of=${join(n.wal, `fill.${i++}`)}`;
        asUser("dd", "if=/dev/zero", of, "bs=1M", "count=4", "oflag=direct", "status=none");
        if (existsSync(n.file)) peak = Math.max(peak, used(n.mnt));
      }
      await until("the ballast given back", () => (existsSync(n.file) ? undefined : true), 10_000);
      const after = used(n.mnt);
      t.log(
        `${fs}: ${i} x 4 MiB written; the ballast held up to ${(peak * 100).toFixed(1)} % used, ` +
          `given back: ${(after * 100).toFixed(1)} %`,
      );
      t.true(peak >= 0.74 && peak < 0.8, "given back between its line and wal_compress's 80 %");
      t.true(after < 0.62, "its space is free at once");
      const released = await until("released in the view", () => {
        const b = ballastOf(a);
        return b.ballast.state === "released" ? b : undefined;
      });
      t.is(released.ballast.released?.by, "agent");
      t.regex(released.ballast.released?.reason ?? "", /used \(>= release_used_percent 75%\)/);
      t.is(await metric(a, /^stemedb_agent_ballast_releases_total\{by="agent"\} (\S+)$/m), 1);
      t.is(await metric(a, /^stemedb_agent_ballast_state\{state="released"\} (\S+)$/m), 1);
      t.regex(
        agentctl(["--socket", a.socket, "status"]).stdout,
        /^WARN\s+ballast\s+given back by agent at /m,
      );
      const wc = JSON.parse(agentctl(["--socket", a.socket, "remediations", "--json"]).stdout) as {
        remediators: Array<{ name: string; last_decision: string }>;
      };
      t.notRegex(
        wc.remediators.find((r) => r.name === "wal_compress")?.last_decision ?? "",
        />= 80%/,
        "wal_compress's own trigger was never reached",
      );
      t.like(journal(a).at(-1), { action: "release", state: "done" });
      const ev = events(a);
      t.true(
        ev.some((e) => e.kind === "ballast.released" && e.severity === "warn"),
        JSON.stringify(ev),
      );

      // Space back: still not taken again while it is short of the create line.
      await sleep(4000);
      t.false(existsSync(n.file), "75 % used is above the create line: not taken again");
      // The owner removes the fill; after recreate_after (3 s) of space back it is taken again.
      for (const f of readdirSync(n.wal)) asUser("rm", "-f", join(n.wal, f));
      const spaceBack = Date.now();
      await until("taken again", () => (ballastOf(a).ballast.state === "held" ? true : undefined));
      t.true(Date.now() - spaceBack >= 3000, "not before recreate_after");
      t.true(allocatedOf(n.file) >= SIZE);
    },
  );
}

test.serial(
  "an operator gives it back with agentctl ballast release (root); anyone else is refused",
  async (t) => {
    if (skip(t)) return;
    const n = node(t);
    const a = await startAgent({
      dir: n.dir,
      extraToml: toml(n, 'mode = "on"', "1h"),
    });
    t.teardown(() => a.stop("SIGKILL"));
    await until("the ballast held", () =>
      ballastOf(a).ballast.state === "held" ? true : undefined,
    );
    chmodSync(a.dir, 0o755);
    chmodSync(a.socket, 0o666); // the read socket open to all: the action socket still is not
    const nobody = spawnSync(
      "runuser",
      [
        "-u",
        user.name,
        "--",
        process.execPath,
        AGENTCTL_BIN,
        "--socket",
        a.socket,
        "ballast",
        "release",
      ],
      { encoding: "utf8" },
    );
    t.is(nobody.status, 77, nobody.stderr);
    t.true(existsSync(n.file));
    const before = used(n.mnt);
    const r = agentctl(["--socket", a.socket, "ballast", "release"]);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /emergency ballast given back/);
    t.false(existsSync(n.file));
    t.true(used(n.mnt) < before - 0.15, "free at once");
    const b = ballastOf(a);
    t.like(b.ballast, { state: "released" });
    t.is(b.ballast.released?.by, "operator");
    t.is(await metric(a, /^stemedb_agent_ballast_releases_total\{by="operator"\} (\S+)$/m), 1);
    t.like(journal(a).at(-1), { action: "release", state: "done" });
    const again = agentctl(["--socket", a.socket, "ballast", "release"]);
    t.is(again.code, 1);
    t.regex(again.stderr, /ballast not released: no emergency ballast is held/);
    const text = agentctl(["--socket", a.socket, "ballast"]).stdout;
    t.regex(text, /^ballast: mode on; released, 0 KiB of 96\.0 MiB at /m);
    t.regex(text, /^released: by operator at /m);
    const d = agentctl(["--socket", a.socket, "diagnose", "storage-errors"]).stdout;
    t.regex(d, /4\. the emergency ballast\n\s+given back by operator at /);
    await sleep(4000);
    t.false(existsSync(n.file), "recreate_after holds it back");
  },
);

test.serial(
  "a link or a directory the WAL's owner planted at the place's name is refused, never followed or used",
  async (t) => {
    if (skip(t)) return;
    const n = node(t);
    // A root-owned sticky root the user may create in (as /tmp): it can plant, not swap root's names.
    chmodSync(n.mnt, 0o1777);
    const target = join(n.wal, "mine");
    asUser("mkdir", target);
    asUser("ln", "-s", target, n.place);
    const a = await startAgent({ dir: n.dir, extraToml: toml(n, 'mode = "on"') });
    t.teardown(() => a.stop("SIGKILL"));
    const link = await until("refused", () => {
      const b = ballastOf(a);
      return b.ballast.state === "refused" ? b : undefined;
    });
    t.regex(
      link.ballast.refused ?? "",
      /\.stemedb-agent-ballast is not the agent's \(a symbolic link\)/,
    );
    t.deepEqual(readdirSync(target), [], "nothing created through the link");
    t.true(lstatSync(n.place).isSymbolicLink(), "the link left as it is");
    t.regex(
      agentctl(["--socket", a.socket, "status"]).stdout,
      /^WARN\s+ballast\s+cannot be kept: /m,
    );
    // A directory of its own instead (0700, as the agent's would be): owned by the user, refused.
    asUser("rm", n.place);
    asUser("mkdir", "-m", "0700", n.place);
    const dir = await until("refused again", () => {
      const b = ballastOf(a);
      return /owned by uid/.test(b.ballast.refused ?? "") ? b : undefined;
    });
    t.regex(dir.ballast.refused ?? "", new RegExp(`owned by uid ${user.uid}, not root`));
    t.deepEqual(readdirSync(n.place), []);
    // The root itself the user's: refused before any name in it is looked at.
    asUser("rmdir", n.place);
    chmodSync(n.mnt, 0o755);
    chownSync(n.mnt, user.uid, user.gid);
    const parent = await until("the parent refused", () => {
      const b = ballastOf(a);
      return /cannot hold the ballast/.test(b.ballast.refused ?? "") ? b : undefined;
    });
    t.regex(
      parent.ballast.refused ?? "",
      new RegExp(`owned by uid ${user.uid}, not root: that user could swap the name`),
    );
    t.false(existsSync(n.place));
    t.true(events(a).some((e) => e.kind === "ballast.refused"));
  },
);

test.serial(
  "kill -9 mid-creation: at the restart the half-made ballast is finished (on) or given back (dry-run)",
  async (t) => {
    if (skip(t)) return;
    const n = node(t);
    const big = 192 * MiB; // three steps, two pauses
    const cfg = (mode: string) =>
      toml(n, `mode = "${mode}"`).replace(`size = "96MiB"`, `size = "${big / MiB}MiB"`);
    for (const [round, next] of [
      [1, "on"],
      [2, "dry-run"],
    ] as const) {
      const a = await startAgent({ dir: n.dir, extraToml: cfg("on") });
      t.teardown(() => a.stop("SIGKILL"));
      // Killed as soon as the first step's blocks are there, while the rest is still to come.
      await until(
        "the first step",
        () => (allocatedOf(n.file) >= 64 * MiB ? true : undefined),
        20_000,
      );
      await a.stop("SIGKILL");
      const partial = allocatedOf(n.file);
      t.true(partial >= 64 * MiB && partial < big, `round ${round}: ${partial} bytes when killed`);
      const b = await startAgent({ dir: n.dir, extraToml: cfg(next) });
      t.teardown(() => b.stop("SIGKILL"));
      if (next === "on") {
        await until("finished", () => (ballastOf(b).ballast.state === "held" ? true : undefined));
        t.true(allocatedOf(n.file) >= big, "finished after the restart");
      } else {
        await until("given back", () => (existsSync(n.file) ? undefined : true));
        t.true(
          events(b).some(
            (e) => e.kind === "ballast.removed" && /interrupted at .* dry-run/.test(e.message),
          ),
          JSON.stringify(events(b)),
        );
      }
      t.deepEqual(
        journal(b)
          .filter((j) => j.state === "started")
          .map((j) => j.action),
        [],
        "no journal row left open",
      );
      await b.stop("SIGKILL");
      if (next === "on") {
        spawnSync("sh", ["-c", `rm -f '${n.file}'`]); // the next round starts without one
        rmSync(join(n.dir, "state"), { recursive: true, force: true });
      }
    }
  },
);

test.serial(
  "dry-run says what it would do and touches nothing, not even the directory",
  async (t) => {
    if (skip(t)) return;
    const n = node(t);
    const a = await startAgent({ dir: n.dir, extraToml: toml(n, 'mode = "dry-run"') });
    t.teardown(() => a.stop("SIGKILL"));
    const b = await until("a plan", () => {
      const x = ballastOf(a);
      return x.last_decision.startsWith("dry-run: would") ? x : undefined;
    });
    t.regex(b.last_decision, new RegExp(`^dry-run: would take 96\\.0 MiB at ${n.place} \\(`));
    t.like(b.ballast, { state: "absent", bytes: 0, path: n.place });
    await sleep(2500);
    t.false(existsSync(n.place), "no directory made");
    t.true(events(a).some((e) => e.kind === "ballast.plan"));
    t.deepEqual(journal(a), []);
    t.regex(agentctl(["--socket", a.socket, "status"]).stdout, /^OK\s+ballast\s+dry-run: /m);
  },
);

test.serial(
  "a WAL on tmpfs: no ballast (it would reserve memory, not disk), said as such",
  async (t) => {
    if (skip(t)) return;
    const { dir, cleanup } = tempDir("sa-bal-");
    t.teardown(cleanup);
    const mnt = makeTmpfs(dir, "walfs", "64m", t.teardown.bind(t), "0755");
    const wal = join(mnt, "wal");
    mkdirSync(wal);
    const n: Node = { mnt, wal, place: join(mnt, ".stemedb-agent-ballast"), file: "", dir };
    const a = await startAgent({ dir, extraToml: toml(n, 'mode = "on"') });
    t.teardown(() => a.stop("SIGKILL"));
    const b = await until("refused", () => {
      const x = ballastOf(a);
      return x.ballast.state === "refused" ? x : undefined;
    });
    t.regex(b.ballast.refused ?? "", /tmpfs: its files live in memory/);
    t.false(existsSync(n.place));
  },
);

// ------------------------------------------------------------------ the file steps, one by one

test("a reservation step: fallocate at idle priority on the held descriptor as fd 0, never a name", async (t) => {
  const { dir, cleanup } = tempDir("sa-balf-");
  t.teardown(cleanup);
  const d = DirHandle.open(dir);
  t.teardown(() => d.close());
  const held = createBallast(d);
  t.teardown(() => closeQuietly(held.fd));
  const seen: Array<{ file: string; args: readonly string[]; stdinFd: number }> = [];
  const st = await reserve(held, 0, 4 * MiB, {
    runner: (file, args, o) => {
      seen.push({ file, args, stdinFd: o.stdinFd });
      return defaultRunner(file, args, o);
    },
  });
  t.deepEqual(seen, [
    {
      file: "ionice",
      args: [
        "-c",
        "3",
        "-t",
        "nice",
        "-n",
        "19",
        "fallocate",
        "-o",
        "0",
        "-l",
        String(4 * MiB),
        "/proc/self/fd/0",
      ],
      stdinFd: held.fd,
    },
  ]);
  t.true(st.blocks * 512 >= 4 * MiB, "the blocks are there");
  // A tool that says it did, but did not: the blocks are checked, not the exit code.
  await t.throwsAsync(
    reserve(held, 4 * MiB, 4 * MiB, {
      runner: () =>
        Promise.resolve({
          code: 0,
          signal: null,
          stdout: "",
          stderr: "",
          truncated: false,
          pid: 1,
        }),
    }),
    { instanceOf: BallastRefused, message: /did not reserve the blocks \(\d+ of 8388608 bytes/ },
  );
  await t.throwsAsync(
    reserve(held, 4 * MiB, 4 * MiB, {
      runner: () =>
        Promise.resolve({
          code: 1,
          signal: null,
          stdout: "",
          stderr: "fallocate: fallocate failed: Operation not supported",
          truncated: false,
          pid: 1,
        }),
    }),
    { instanceOf: BallastRefused, message: /fallocate is not supported/ },
  );
});

test("a release frees the space even when the name is not the file held, and never removes another file", async (t) => {
  const { dir, cleanup } = tempDir("sa-balf-");
  t.teardown(cleanup);
  const d = DirHandle.open(dir);
  t.teardown(() => d.close());
  const held = createBallast(d);
  await reserve(held, 0, 4 * MiB);
  // A second name for the inode (only root could make one here), then another file under the name.
  linkSync(join(dir, "EMERGENCY_BALLAST"), join(dir, "second-name"));
  writeFileSync(join(dir, "other"), "not the ballast");
  renameSync(join(dir, "other"), join(dir, "EMERGENCY_BALLAST"));
  const r = await release(d, held);
  t.is(r.bytes, 4 * MiB);
  t.false(r.unlinked, "the name now is another file: left alone");
  t.is(readFileSync(join(dir, "EMERGENCY_BALLAST"), "utf8"), "not the ballast");
  const kept = statSync(join(dir, "second-name"));
  t.is(kept.size, 0, "truncated through the descriptor");
  t.is(kept.blocks, 0, "its blocks are free");
  t.is(r.synced, null, "sync -f ran");
  // The ordinary case: the name is the file, and it goes.
  rmSync(join(dir, "EMERGENCY_BALLAST"));
  const again = createBallast(d);
  await reserve(again, 0, MiB);
  t.true((await release(d, again)).unlinked);
  t.false(existsSync(join(dir, "EMERGENCY_BALLAST")));
});

test.serial(
  "every step has its journal row open while it runs: the reservation, and the release",
  async (t) => {
    if (skip(t)) return;
    const { dir, cleanup } = tempDir("sa-balj-");
    t.teardown(cleanup);
    const lfs = makeLoopFs(dir, { sizeMiB: 64 });
    t.teardown(() => lfs.cleanup());
    const stateDir = join(lfs.mnt, "state");
    mkdirSync(stateDir, { mode: 0o700 });
    mkdirSync(join(lfs.mnt, "wal"));
    const d = loadConfig({ env: {}, defaultFile: "/nonexistent" });
    if (!d.ok) return t.fail(d.problems.join("\n"));
    const c = d.loaded.config;
    const cfg: Config = {
      ...c,
      agent: { ...c.agent, state_dir: stateDir },
      wal: { ...c.wal, dir: join(lfs.mnt, "wal") },
      remediators: {
        ...c.remediators,
        ballast: { ...c.remediators.ballast, mode: "on", size: bytes(8 * MiB) },
      },
    };
    const open: string[] = [];
    let history: HistoryStore | null = null;
    const runner: Runner = (file, args, o) => {
      const rows = history?.journalUnfinished("ballast") ?? [];
      open.push(`${file}: ${rows.map((r) => r.action).join(",") || "none"}`);
      return defaultRunner(file, args, o);
    };
    const built = buildRemediator(
      t,
      cfg,
      (deps) => new BallastRemediator(ballastOptions(cfg), deps, runner),
    );
    history = built.history;
    const rem = built.rem;
    await rem.start();
    const latest = { get: () => undefined } as unknown as Latest;
    await until("held", () => {
      rem.tick(latest, Date.now());
      return rem.state().ballast.state === "held" ? true : undefined;
    });
    t.true(existsSync(join(stateDir, "ballast", "EMERGENCY_BALLAST")), "in <state_dir>/ballast");
    await rem.operatorRelease();
    t.deepEqual(open, ["ionice: reserve", "sync: release"]);
    t.deepEqual(history.journalUnfinished("ballast"), [], "each closed after");
  },
);
