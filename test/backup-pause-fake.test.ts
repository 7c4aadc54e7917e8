// backup_pause with fake systemctl/systemd-run that record every call in order: the dead-man's
// switch is armed before the pause; a switch that cannot be armed means no pause at all; a unit
// that is not listed, however active and busy, is never named to systemd; unit names that read as
// options are refused, and every command line puts unit names after "--". The real systemd path
// is in backup-pause-systemd.test.ts; these show what a container cannot: the order of calls.
import { request } from "node:http";
import { join } from "node:path";
import test from "ava";
import { buildRemediator } from "./helpers/remediators.js";
import { readFileSync, writeFileSync } from "node:fs";
import {
  agentctl,
  agentOnce,
  QUIET_COLLECTORS,
  startAgent,
  tempDir,
} from "./helpers/agent-process.js";
import { fakeSystemd, type FakeSystemd } from "./helpers/fake-systemd.js";
import { loadConfig } from "../core/config/load.js";
import type { Duration } from "../core/config/units.js";
import {
  BackupPauseRemediator,
  backupPauseOptions,
} from "../remediators/backup_pause/remediator.js";
import { Systemd } from "../remediators/backup_pause/systemd.js";
import { sleep } from "./helpers/quiet.js";

function toml(fake: FakeSystemd, units: string[], mode = "dry-run"): string {
  return (
    `${QUIET_COLLECTORS}[remediators.wal_compress]\nmode = "off"\n[remediators.backup_pause]\nmode = "${mode}"\n` +
    `units = ${JSON.stringify(units)}\n${fake.toml}`
  );
}

const idx = (calls: string[], re: RegExp) => calls.findIndex((l) => re.test(l));

interface Ev {
  kind: string;
  message: string;
}
function events(socket: string): Ev[] {
  const r = agentctl([
    "--socket",
    socket,
    "events",
    "--class",
    "remediation",
    "--since",
    "1h",
    "--json",
  ]);
  return (JSON.parse(r.stdout) as { events: Ev[] }).events;
}

test(
  "the dead-man's switch is armed (systemd-run) before the freeze; " +
    "unit names follow '--' on every command line",
  async (t) => {
    const { dir } = tempDir("sa-bpf-");
    const fake = fakeSystemd(dir);
    fake.setActive("backup.service", true);
    const a = await startAgent({ dir, extraToml: toml(fake, ["backup.service"]) });
    t.teardown(() => a.stop("SIGKILL"));
    const r = agentctl(["--socket", a.socket, "backups", "pause", "backup.service", "--for", "1m"]);
    t.is(r.code, 0, r.stderr);
    t.is(fake.freezer("backup.service"), "frozen");
    const calls = fake.calls();
    t.log(calls.join("\n"));
    const run = idx(calls, /^systemd-run /);
    const freeze = idx(calls, /^systemctl freeze -- backup\.service$/);
    t.true(run >= 0 && freeze >= 0, "both happened");
    t.true(run < freeze, "armed first, then frozen");
    // systemd-run: options, then "--", then the command; the command's own unit after its "--".
    const line = calls[run] ?? "";
    t.regex(
      line,
      /^systemd-run --unit=stemedb-agent-resume-backup_service .* -- \S+\/systemctl thaw -- backup\.service$/,
    );
    for (const l of calls.filter((c) => c.startsWith("systemctl")))
      t.regex(l, / -- /, `unit names after --: ${l}`);
    t.false(calls.some((l) => /fake/.test(l) && / 64$/.test(l)));
  },
);

test(
  "a systemd-run that fails means no freeze and no stop at all; " +
    "the failure is journalled and an event",
  async (t) => {
    const { dir } = tempDir("sa-bpf-");
    const fake = fakeSystemd(dir);
    fake.setActive("backup.service", true);
    fake.setActive("log-archiver.timer", true);
    fake.fail("systemd-run");
    const a = await startAgent({
      dir,
      extraToml: toml(fake, ["backup.service", "log-archiver.timer"]),
    });
    t.teardown(() => a.stop("SIGKILL"));
    for (const unit of ["backup.service", "log-archiver.timer"]) {
      const r = agentctl(["--socket", a.socket, "backups", "pause", unit, "--for", "1m"]);
      t.not(r.code, 0, r.stdout);
      t.regex(r.stderr, /fake failure/);
    }
    const calls = fake.calls();
    t.true(
      calls.some((l) => l.startsWith("systemd-run ")),
      "it did try to arm the switch",
    );
    // Neither the pause nor an "undo" of a pause never made: no freeze, stop, kill, thaw or start.
    const touched = calls.filter((l) =>
      /^systemctl (freeze|thaw|kill|stop|start) .*-- (backup\.service|log-archiver\.timer)/.test(l),
    );
    t.deepEqual(touched, [], calls.join("\n"));
    t.is(fake.freezer("backup.service"), "running");
    t.is(fake.active("log-archiver.timer"), "active");
    const ev = events(a.socket);
    t.true(
      ev.some(
        (e) =>
          e.kind === "backup_pause.failed" &&
          /pausing backup\.service failed: .*fake failure/.test(e.message),
      ),
      JSON.stringify(ev),
    );
    const j = JSON.parse(agentctl(["--socket", a.socket, "remediations", "--json"]).stdout) as {
      journal: Array<{ remediator: string; action: string; target: string; state: string }>;
    };
    const rows = j.journal.filter((x) => x.remediator === "backup_pause" && x.action === "pause");
    t.deepEqual(rows.map((x) => [x.target, x.state]).sort(), [
      ["backup.service", "failed"],
      ["log-archiver.timer", "failed"],
    ]);
  },
);

function post(socket: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method: "POST" }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

test(
  "an active, busy unit that is not listed is refused for agentctl backups pause and never named to " +
    "systemd; option-like names are refused",
  async (t) => {
    const { dir } = tempDir("sa-bpf-");
    const fake = fakeSystemd(dir);
    fake.setActive("backup.service", true);
    fake.setActive("other.service", true);
    fake.setActive("-Hroot@host.service", true);
    const a = await startAgent({ dir, extraToml: toml(fake, ["backup.service"]) });
    t.teardown(() => a.stop("SIGKILL"));
    const r = agentctl(["--socket", a.socket, "backups", "pause", "other.service", "--for", "1m"]);
    t.is(r.code, 1);
    t.regex(r.stderr, /not in remediators\.backup_pause\.units/);
    const admin = join(dir, "agentctl-admin.sock");
    for (const path of [
      "/v1/backups/pause?unit=-Hroot%40host.service",
      "/v1/backups/resume?unit=-Hroot%40host.service",
      "/v1/backups/pause?unit=a%20b.service",
      `/v1/backups/pause?unit=${"x".repeat(300)}.service`,
    ]) {
      const res = await post(admin, path);
      t.is(res.status, 400, path);
      t.regex(res.body, /not a usable systemd unit name/, path);
    }
    t.is(fake.freezer("other.service"), "running");
    t.false(
      fake.calls().some((l) => /other\.service|-Hroot/.test(l)),
      fake.calls().join("\n"),
    );
  },
);

test(
  "the remediator, with WAL fsync slow and an unlisted unit active and busy, " +
    "pauses only the listed one",
  async (t) => {
    const { dir } = tempDir("sa-bpf-");
    const fake = fakeSystemd(dir);
    fake.setActive("backup.service", true);
    fake.setActive("other.service", true);
    const r = loadConfig({ env: {}, defaultFile: "/nonexistent" });
    if (!r.ok) return t.fail(r.problems.join("\n"));
    const base = r.loaded.config;
    const bp = {
      ...base.remediators.backup_pause,
      mode: "on" as const,
      units: ["backup.service"],
      source: "probe" as const,
      for: 500 as Duration,
      window: 3000 as Duration,
      systemctl: fake.systemctl,
      systemd_run: fake.systemdRun,
    };
    const config = {
      ...base,
      agent: { ...base.agent, state_dir: join(dir, "state") },
      remediators: { ...base.remediators, backup_pause: bp },
    };
    const { rem } = buildRemediator(
      t,
      config,
      (deps) => new BackupPauseRemediator(backupPauseOptions(config), deps),
    );
    const heavy = (unit: string) => ({
      unit,
      source: "processes",
      read_bps: 0,
      write_bps: 200 << 20,
      read_bytes: 0,
      write_bytes: 200 << 20,
      devices: {},
    });
    const end = Date.now() + 15_000;
    while (fake.freezer("backup.service") !== "frozen" && Date.now() < end) {
      const at = Date.now();
      const obs: Record<string, unknown> = {
        fsync_probe: { probes: [{ state: "ok", seconds: 0.5 }] },
        procio: {
          interval_seconds: 1,
          top: [],
          units: [heavy("backup.service"), heavy("other.service")],
          processes: 2,
          unreadable: 0,
        },
      };
      rem.tick({
        get: <T>(name: string) => (obs[name] ? { at, observation: obs[name] as T } : undefined),
      });
      await sleep(200);
    }
    t.is(
      fake.freezer("backup.service"),
      "frozen",
      "the listed unit was paused: the remediator did act",
    );
    t.is(fake.freezer("other.service"), "running");
    t.false(
      fake.calls().some((l) => l.includes("other.service")),
      fake.calls().join("\n"),
    );
  },
);

test("a unit name that reaches the command builder still goes after '--'", (t) => {
  const s = new Systemd("/bin/systemctl", "/bin/systemd-run");
  const evil = "-Hroot@host.service";
  for (const m of ["freeze", "sigstop", "stop-timer"] as const) {
    for (const args of [s.pauseArgs(evil, m), s.resumeArgs(evil, m)]) {
      t.is(args[args.length - 1], evil);
      t.is(args[args.length - 2], "--", JSON.stringify(args));
    }
    const cmd = s.deadmanCommand(evil, m);
    t.true(
      cmd.join(" ").includes(m === "sigstop" ? `'--' '${evil}'` : `-- ${evil}`),
      JSON.stringify(cmd),
    );
  }
});

test(
  "--resume-paused resumes only units both configured and held: " +
    "a held unit the config does not list is reported and left alone",
  async (t) => {
    const { dir } = tempDir("sa-bpf-");
    const fake = fakeSystemd(dir);
    for (const u of ["backup.service", "other.service"]) fake.setActive(u, true);
    // The state comes to name other.service: it was listed when paused (or the file was edited).
    const a = await startAgent({ dir, extraToml: toml(fake, ["backup.service", "other.service"]) });
    for (const u of ["backup.service", "other.service"])
      t.is(agentctl(["--socket", a.socket, "backups", "pause", u, "--for", "10m"]).code, 0);
    await a.stop("SIGKILL");
    t.is(fake.freezer("other.service"), "frozen");
    const before = fake.calls().length;
    const file = join(dir, "narrow.toml");
    writeFileSync(
      file,
      readFileSync(a.configFile, "utf8").replace(
        'units = ["backup.service","other.service"]',
        'units = ["backup.service"]',
      ),
    );
    const r = agentOnce(["--resume-paused", "--config", file]);
    const after = fake.calls().slice(before);
    t.log(r.stdout, after.join("\n"));
    t.is(r.code, 1, "something is still paused: exit 1");
    t.is(fake.freezer("backup.service"), "running", "the configured, held unit is resumed");
    t.is(
      fake.freezer("other.service"),
      "frozen",
      "the unlisted one is left to its dead-man's switch",
    );
    t.false(
      after.some((l) => l.includes("other.service")),
      after.join("\n"),
    );
    const lines = r.stdout
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    t.true(
      lines.some((l) =>
        /holds other\.service paused, but it is not in remediators\.backup_pause\.units: left alone/.test(
          String(l["msg"]),
        ),
      ),
    );
    t.like(
      lines.find((l) => l["msg"] === "resume-paused: done"),
      { resumed: ["backup.service"], not_listed: ["other.service"] },
    );
  },
);
