// StrictModes against the real binary, as root: a config file or state directory that anyone but
// root could have written is refused (exit 2, one line naming the path, owner/mode and the fix),
// at start, --once, --resume-paused and SIGHUP; a root-owned 0600 config in a private dir under
// /tmp starts; history.db is 0600 and the state dir 0700 whatever the umask. Serial: one test
// user is created and removed, and the umask is process-wide.
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import {
  hasCommand,
  isRoot,
  QUIET_COLLECTORS,
  startAgent,
  tempDir,
  writeConfig,
} from "./helpers/agent-process.js";
import { until } from "./helpers/faults.js";

const USER = `sa-strict-${process.pid % 100000}`;
let uid = -1;
const why = !isRoot ? "needs root" : !hasCommand("useradd") ? "needs useradd" : null;

test.before(() => {
  if (why) return;
  spawnSync("userdel", [USER]);
  const r = spawnSync(
    "useradd",
    ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`useradd: ${r.stderr}`);
  uid = Number(spawnSync("id", ["-u", USER], { encoding: "utf8" }).stdout.trim());
});

test.after.always(() => {
  if (uid >= 0) spawnSync("userdel", [USER]);
});

/** A config in a fresh private dir under /tmp; returns the file and its dir. */
function config(mode = 0o600): { dir: string; file: string } {
  const { dir } = tempDir("sa-strict-");
  const file = writeConfig(dir, { extraToml: QUIET_COLLECTORS });
  chmodSync(file, mode);
  return { dir, file };
}

/** The binary to its exit; a normal start that is not refused is cut off after 15 s. */
function run(args: readonly string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [AGENT, ...args], {
    env: { ...process.env, STEMEDB_AGENT_LISTEN: "", STEMEDB_AGENT_STATE_DIR: "" },
    encoding: "utf8",
    timeout: 15_000,
    killSignal: "SIGKILL",
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const AGENT = join(import.meta.dirname, "../agent/main.js");

const refusal = /^stemedb-agent: refusing to run as root: /;

test.serial(
  "a group-writable config file: exit 2, one line naming the file, its owner and mode, and the fix",
  (t) => {
    if (why) return t.pass(`skipped: ${why}`);
    const { file } = config(0o660);
    for (const extra of [[], ["--once"], ["--resume-paused"]]) {
      const r = run(["--config", file, ...extra]);
      t.is(r.code, 2, `${extra.join(" ")}: ${r.stderr}`);
      const lines = r.stderr.split("\n").filter((l) => l !== "");
      t.is(lines.length, 1, r.stderr);
      t.regex(lines[0] ?? "", refusal);
      t.true(
        lines[0]?.includes(`${file} is group- or world-writable (owner root, mode 0660)`),
        lines[0],
      );
      t.true(lines[0]?.includes(`fix: chown root ${file} && chmod go-w ${file}`), lines[0]);
    }
    chmodSync(file, 0o602);
    t.regex(run(["--config", file, "--once"]).stderr, /world-writable \(owner root, mode 0602\)/);
  },
);

test.serial(
  "a config file owned by a real non-root user: exit 2; so is one in a directory that user owns",
  (t) => {
    if (why) return t.pass(`skipped: ${why}`);
    const { dir, file } = config(0o644);
    chownSync(file, uid, 0);
    const r = run(["--config", file, "--once"]);
    t.is(r.code, 2, r.stderr);
    t.regex(r.stderr, refusal);
    t.true(r.stderr.includes(`${file} is owned by uid ${uid}, not root (mode 0644)`), r.stderr);
    // The file root's, its directory the user's: the user can swap the file.
    chownSync(file, 0, 0);
    const sub = join(dir, "userdir");
    mkdirSync(sub, { mode: 0o755 });
    chownSync(sub, uid, 0);
    const inner = join(sub, "agent.toml");
    writeFileSync(inner, "", { mode: 0o600 });
    const r2 = run(["--config", inner, "--once"]);
    t.is(r2.code, 2, r2.stderr);
    t.true(
      r2.stderr.includes(`${sub} (above ${inner}) is owned by uid ${uid}, not root`),
      r2.stderr,
    );
    // A root-owned, world-writable, non-sticky directory above: refused too.
    chownSync(sub, 0, 0);
    chmodSync(sub, 0o777);
    const r3 = run(["--config", inner, "--once"]);
    t.is(r3.code, 2, r3.stderr);
    t.true(
      r3.stderr.includes(
        `${sub} (above ${inner}) is group- or world-writable without the sticky bit`,
      ),
      r3.stderr,
    );
  },
);

test.serial(
  "a world-writable or foreign state directory: exit 2; a root-owned 0755 one is tightened to 0700",
  (t) => {
    if (why) return t.pass(`skipped: ${why}`);
    const { dir, file } = config();
    const state = join(dir, "state");
    mkdirSync(state);
    chmodSync(state, 0o777);
    for (const extra of [[], ["--once"], ["--resume-paused"]]) {
      const r = run(["--config", file, ...extra]);
      t.is(r.code, 2, r.stderr);
      t.regex(r.stderr, refusal);
      t.true(
        r.stderr.includes(
          `state directory ${state} is group- or world-writable (owner root, mode 0777)`,
        ),
        r.stderr,
      );
    }
    t.is(readdirSync(state).length, 0, "nothing was created in it");
    chmodSync(state, 0o700);
    chownSync(state, uid, 0);
    const r = run(["--config", file, "--once"]);
    t.is(r.code, 2);
    t.true(
      r.stderr.includes(`state directory ${state} is owned by uid ${uid}, not root`),
      r.stderr,
    );
    chownSync(state, 0, 0);
    chmodSync(state, 0o755);
    const ok = run(["--config", file, "--resume-paused"]);
    t.is(ok.code, 0, ok.stderr);
    t.is(statSync(state).mode & 0o7777, 0o700);
    t.regex(ok.stdout, /state directory .* was mode 0755: tightened to 0700/);
  },
);

test.serial(
  "a root-owned 0600 config in a private dir under /tmp starts; " +
    "with umask 022 history.db is 0600 and the state dir 0700",
  async (t) => {
    if (why) return t.pass(`skipped: ${why}`);
    const old = process.umask(0o022);
    t.teardown(() => process.umask(old));
    const { dir } = tempDir("sa-strict-");
    const a = await startAgent({ dir, extraToml: QUIET_COLLECTORS, configMode: 0o600 });
    t.teardown(() => a.stop("SIGKILL"));
    t.is(statSync(a.configFile).mode & 0o7777, 0o600);
    t.is(statSync(a.stateDir).mode & 0o7777, 0o700);
    await until(
      "history.db-wal exists",
      () => readdirSync(a.stateDir).includes("history.db-wal"),
      15_000,
    );
    for (const f of readdirSync(a.stateDir).filter((n) => n.startsWith("history.db")))
      t.is(statSync(join(a.stateDir, f)).mode & 0o7777, 0o600, f);

    // SIGHUP with the file made group-writable: refused and logged; the running config stays.
    chmodSync(a.configFile, 0o664);
    a.proc.kill("SIGHUP");
    const line = await a.waitForLog(
      (l) => l["msg"] === "reload refused: keeping the running configuration",
      15_000,
    );
    t.regex(String(line["problem"]), /is group- or world-writable \(owner root, mode 0664\)/);
    t.is(a.proc.exitCode, null, "still running");
    chmodSync(a.configFile, 0o600);
    a.proc.kill("SIGHUP");
    await a.waitForLog((l) => l["msg"] === "configuration reloaded", 15_000);
  },
);

test.serial("not root: nothing is checked (npm start, quick start)", (t) => {
  if (why) return t.pass(`skipped: ${why}`);
  const { dir } = tempDir("sa-strict-");
  chmodSync(dir, 0o755);
  chownSync(dir, uid, 0);
  const file = writeConfig(dir, { extraToml: QUIET_COLLECTORS });
  chmodSync(file, 0o666);
  const r = spawnSync(process.execPath, [AGENT, "--config", file, "--once"], {
    uid,
    gid: 0,
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, STEMEDB_AGENT_LISTEN: "", STEMEDB_AGENT_STATE_DIR: "" },
  });
  t.not(r.status, 2, r.stderr);
  t.notRegex(r.stderr, /refusing/);
  t.regex(r.stdout, /^\{/, "it ran: the observations as JSON");
});
