// `npm start` as a user who is not root, as a new user tries it: the agent runs on its embedded
// defaults with the state (and the control socket) in ./.state, `npm run agentctl` finds it, and
// status says what is missing and why (SMART, the kernel log when dmesg is restricted, other
// users' processes) instead of an unexplained UNKNOWN or a silent OK. A real user, created and
// removed here; kernel.dmesg_restrict set to 1 for the run and put back.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chownSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import { hasCommand, isRoot, tempDir } from "./helpers/agent-process.js";
import { until } from "./helpers/faults.js";
import { removeUser } from "./helpers/users.js";

const USER = `sa-user-${process.pid % 100000}`;
const ROOT = join(import.meta.dirname, "..", "..");
const AGENT = join(ROOT, "dist/agent/main.js");
const AGENTCTL = join(ROOT, "dist/agentctl.cjs");
const RESTRICT = "/proc/sys/kernel/dmesg_restrict";
let uid = -1;
let gid = -1;
const why = !isRoot ? "needs root" : !hasCommand("useradd") ? "needs useradd" : null;

test.before(() => {
  if (why) return;
  spawnSync("userdel", [USER]);
  const r = spawnSync("useradd", ["--no-create-home", "--shell", "/usr/sbin/nologin", USER], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`useradd: ${r.stderr}`);
  uid = Number(spawnSync("id", ["-u", USER], { encoding: "utf8" }).stdout.trim());
  gid = Number(spawnSync("id", ["-g", USER], { encoding: "utf8" }).stdout.trim());
});

test.after.always(() => {
  if (uid >= 0) removeUser(USER);
});

interface Status {
  agent: { uid: number; control_socket: string; state_dir: string };
  health: { verdict: string };
  areas: Array<{ area: string; verdict: string; summary: string; details: string[] }>;
}

(why ? test.skip : test)(
  "npm start without root: state and socket in ./.state, found by npm run agentctl; " +
    "status names what is missing and why",
  async (t) => {
    const { dir } = tempDir("sa-user-");
    const home = join(dir, "checkout");
    mkdirSync(home);
    chownSync(dir, uid, gid);
    chownSync(home, uid, gid);
    const restrict = readFileSync(RESTRICT, "utf8").trim();
    writeFileSync(RESTRICT, "1");
    t.teardown(() => writeFileSync(RESTRICT, restrict));
    // What `npm start` and `npm run agentctl` set (package.json), from the checkout's directory.
    const env = {
      PATH: process.env["PATH"] ?? "/usr/bin:/bin",
      HOME: home,
      STEMEDB_AGENT_LISTEN: "127.0.0.1:0",
      STEMEDB_AGENT_STATE_DIR: "./.state",
    };
    const agent: ChildProcess = spawn(process.execPath, [AGENT], {
      cwd: home,
      env,
      uid,
      gid,
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    agent.stderr?.on("data", (b: Buffer) => (stderr += b.toString()));
    t.teardown(() => agent.kill("SIGKILL"));
    const ctl = (args: string[]) =>
      spawnSync(process.execPath, [AGENTCTL, ...args], {
        cwd: home,
        env,
        uid,
        gid,
        encoding: "utf8",
        timeout: 20_000,
      });
    let s: Status | null = null;
    let last = "";
    await until(
      "status answers with a SMART verdict",
      () => {
        const r = ctl(["status", "--json"]);
        // Exit 0-2 is the verdict (CRIT here: this host has no WAL directory); 3 unreachable.
        if (r.status === null || r.status > 2) {
          stderr += r.stderr;
          return false;
        }
        s = JSON.parse(r.stdout) as Status;
        const smart = s.areas.find((a) => a.area === "smart");
        last = JSON.stringify(smart);
        return smart !== undefined && !smart.summary.startsWith("no SMART results");
      },
      60_000,
    ).catch((e: unknown) => {
      throw new Error(`${String(e)}: ${last}\nagent stderr:\n${stderr.slice(-2000)}`);
    });
    const st = s as unknown as Status;
    t.is(st.agent.uid, uid);
    t.is(st.agent.state_dir, join(home, ".state"));
    t.is(st.agent.control_socket, join(home, ".state", "agentctl.sock"), "the state dir fallback");
    t.is(st.health.verdict, "healthy", "no collector fails for want of root");
    const area = (name: string) => st.areas.find((a) => a.area === name);
    t.regex(area("smart")?.summary ?? "", /not read: the agent is not root \(uid \d+\)/);
    t.is(area("smart")?.verdict, "unknown");
    await until(
      "the kernel log says it is read from the journal, and why",
      () => {
        const r = ctl(["status", "--json"]);
        const k = (JSON.parse(r.stdout) as Status).areas.find((a) => a.area === "kernel");
        return (k?.details ?? []).some((d) => /journalctl -k: \/dev\/kmsg is not readable/.test(d));
      },
      20_000,
    );
    t.regex(
      (area("agent")?.details ?? []).join("\n"),
      /not root \(uid \d+\), so without SMART .*other users' processes/,
    );
    const text = ctl(["status", "-v"]);
    t.true(text.status !== null && text.status <= 2, text.stderr);
    t.regex(text.stdout, /agent: not root \(uid \d+\)/);
    // Without the state dir in its environment, agentctl says where else to look.
    const lost = spawnSync(process.execPath, [AGENTCTL, "status"], {
      cwd: home,
      env: { PATH: env.PATH, HOME: home },
      uid,
      gid,
      encoding: "utf8",
    });
    t.is(lost.status, 3);
    t.regex(lost.stderr, /npm run agentctl -- status/);
  },
);
