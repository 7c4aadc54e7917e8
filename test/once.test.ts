import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import {
  agentOnce,
  agentctl,
  QUIET_COLLECTORS,
  startAgent,
  tempDir,
} from "./helpers/agent-process.js";

test("--once prints every enabled collector's observation as JSON and exits 0, touching no state", (t) => {
  const { dir } = tempDir();
  const wal = join(dir, "wal");
  mkdirSync(wal);
  const file = join(dir, "agent.toml");
  writeFileSync(
    file,
    `[agent]\nstate_dir = "${join(dir, "state")}"\n[wal]\ndir = "${wal}"\n[collectors.smart]\n` +
      `enabled = false\n[collectors.kmsg]\nenabled = false\n[collectors.mounts]\nenabled = false\n` +
      `[collectors.wal]\nenabled = false\n`,
  );
  const r = agentOnce(["--once", "--config", file]);
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<
    string,
    { ok: boolean; observation: Record<string, unknown> }
  >;
  t.deepEqual(Object.keys(out).sort(), [
    "diskstats",
    "errcounters",
    "fsync_probe",
    "netstat",
    "process",
    "procio",
    "stalls",
  ]);
  t.true(out["diskstats"]?.ok);
  const disks = out["diskstats"]?.observation["devices"] as Array<{
    device: string;
    iostat: unknown;
  }>;
  t.true(
    disks.length > 0 && disks.every((d) => d.iostat !== null),
    "rates from two samples a second apart",
  );
  t.like(out["fsync_probe"]?.observation, { probes: [{ dir: wal, state: "ok" }] });
  t.true((out["procio"]?.observation["processes"] as number) > 1);
  // The root filesystem is ext4 on this VM; --once has no history, so no cross-check.
  t.true(out["errcounters"]?.ok);
  t.like(out["errcounters"]?.observation, { crossCheck: { state: "off" }, rises: [] });
  t.false(existsSync(join(dir, "state")), "--once keeps no history");
});

test("--once exits 1 and names the collector and reason on stderr when one fails", (t) => {
  const { dir } = tempDir();
  const file = join(dir, "agent.toml");
  writeFileSync(
    file,
    `[host]\nproc_path = "${join(dir, "no-proc")}"\n` +
      `${QUIET_COLLECTORS.replace("[collectors.procio]\nenabled = false\n", "")}`,
  );
  const r = agentOnce(["--once", "--config", file]);
  t.is(r.code, 1);
  t.regex(r.stderr, /stemedb-agent: collector failed: procio: cannot list .*no-proc/);
  const out = JSON.parse(r.stdout) as Record<string, { ok: boolean; error?: string }>;
  t.false(out["procio"]?.ok);
});

test(
  "when the configured socket directory cannot be created the agent falls back to the state dir, " +
    "and agentctl finds it",
  async (t) => {
    const { dir } = tempDir();
    writeFileSync(join(dir, "blocker"), "a file where a directory should be");
    const a = await startAgent({
      dir,
      socket: join(dir, "blocker", "run", "agentctl.sock"),
      extraToml: QUIET_COLLECTORS,
    });
    t.teardown(() => a.stop("SIGKILL"));
    t.is(a.socket, join(a.stateDir, "agentctl.sock"));
    t.true(
      a.logs.some(
        (l) => l["msg"] === "control: configured socket path unusable; using the fallback",
      ),
    );
    const r = agentctl(["--config", a.configFile, "status", "--json"]);
    t.is(r.code, 0, r.stderr);
  },
);
