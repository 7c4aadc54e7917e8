// backup_pause against a real systemd 252 (booted in a container, cgroup v2) and the agent
// running there as a unit: a backup.service that really writes to the WAL's filesystem (a loop
// device) makes the fsync probe slow; the agent freezes it, stops the archiver's timer, and
// undoes both when latency recovers. Then: the dead-man's switch after SIGKILL, ExecStopPost,
// reconcile at start, a pause that does not help, the watchdog rule, the budget, and a unit that
// is not listed. The SIGSTOP fallback on a hybrid-cgroup container is in the last test.
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import {
  bootContainer,
  NODE,
  type Container,
  containerUnavailable,
  REPO_ROOT,
} from "./helpers/container.js";
import { tempDir } from "./helpers/agent-process.js";
import { makeLoopFs, type LoopFs } from "./helpers/loop.js";
import { errorMessage } from "../core/errors.js";

const AGENT = `${REPO_ROOT}/dist/agent/main.js`;
const AGENTCTL = `${REPO_ROOT}/dist/agentctl.cjs`;
const SOCKET = "/run/stemedb-agent/agentctl.sock";
const CONFIG = "/etc/stemedb/agent.toml";
const WRITER = (file: string, mib: number) =>
  `/bin/sh -c 'while :; do dd if=/dev/zero of=/var/lib/stemedb/${file} bs=1M count=${mib} status=none; done'`;

// A threshold this machine's loop device crosses only under the backup's writeback (idle p99
// ~1-8 ms, under a buffered writer 100-500 ms, measured here), and a short `for` and window.
function agentToml(bp: Record<string, string> = {}): string {
  const backup = {
    mode: '"on"',
    units: '["backup.service", "log-archiver.timer", "wd-backup.service"]',
    fsync_p99_threshold: '"40ms"',
    resume_below: '"15ms"',
    for: '"3s"',
    window: '"3s"',
    resume_after: '"3s"',
    improve_within: '"20s"',
    max_pause: '"2m"',
    daily_budget: '"10m"',
    cooldown: '"10m"',
    ...bp,
  };
  return `[agent]
listen = "127.0.0.1:19735"
state_dir = "/srv/state"
control_socket = "${SOCKET}"
log_level = "debug"
[stemedb]
data_dir = "/var/lib/stemedb"
[wal]
dir = "/var/lib/stemedb/wal"
[collectors.diskstats]
exclude = ""
[collectors.fsync_probe]
interval = "500ms"
[collectors.procio]
interval = "1s"
[collectors.smart]
enabled = false
[collectors.kmsg]
enabled = false
[collectors.wal]
enabled = false
[collectors.mounts]
enabled = false
[remediators.wal_compress]
mode = "off"
[remediators.backup_pause]
${Object.entries(backup)
  .map(([k, v]) => `${k} = ${v}`)
  .join("\n")}
`;
}

interface Ctx {
  c: Container;
  loop: LoopFs;
  cleanup: () => void;
}
let ctx: Ctx | null = null;
let why = containerUnavailable();

const UNITS: Record<string, string> = {
  "backup.service": `[Unit]\nDescription=test backup\n[Service]\nExecStart=${WRITER("backup/out", 200)}\n`,
  "other.service":
    `[Unit]\nDescription=a writer that is not listed\n[Service]\n` +
    `ExecStart=${WRITER("backup/other", 200)}\n`,
  "wd-backup.service":
    `[Unit]\nDescription=a backup with a watchdog\n[Service]\nExecStart=/bin/sleep infinity\n` +
    `WatchdogSec=1h\n`,
  "log-archiver.service": `[Service]\nType=oneshot\nExecStart=/bin/true\n`,
  "log-archiver.timer": `[Timer]\nOnActiveSec=1h\n`,
};

test.before(async () => {
  if (why) return;
  const { dir, cleanup: rmDir } = tempDir("sa-bp-");
  let loop: LoopFs | null = null;
  try {
    loop = makeLoopFs(dir, { sizeMiB: 1024 });
    mkdirSync(join(loop.mnt, "wal"));
    mkdirSync(join(loop.mnt, "backup"));
    mkdirSync(join(dir, "state"));
    const c = await bootContainer({
      name: `sa-bp-${process.pid}`,
      bind: { [loop.mnt]: "/var/lib/stemedb", [join(dir, "state")]: "/srv/state" },
    });
    for (const [name, text] of Object.entries(UNITS))
      c.writeFile(`/etc/systemd/system/${name}`, text);
    c.sh("systemctl daemon-reload");
    const l = loop;
    ctx = { c, loop: l, cleanup: () => (l.cleanup(), rmDir()) };
  } catch (e) {
    loop?.cleanup();
    rmDir();
    why = `the container did not boot: ${errorMessage(e).slice(0, 300)}`;
  }
});

test.after.always(async () => {
  if (!ctx) return;
  await ctx.c.stop();
  ctx.cleanup();
});

/** (Re)starts the agent as a unit with this config; ExecStopPost only when asked. */
async function startAgent(
  c: Container,
  toml: string,
  opts: { execStopPost?: boolean } = {},
): Promise<void> {
  c.exec("systemctl", ["stop", "agent-under-test.service"]);
  c.exec("systemctl", ["reset-failed", "agent-under-test.service"]);
  c.writeFile(CONFIG, toml);
  c.writeFile(
    "/etc/systemd/system/agent-under-test.service",
    `[Service]\nExecStart=${NODE} ${AGENT} --config ${CONFIG}\n` +
      `${opts.execStopPost ? `ExecStopPost=-+${NODE} ${AGENT} --resume-paused --config ${CONFIG}\n` : ""}` +
      `Restart=no\n`,
  );
  c.sh("systemctl daemon-reload && systemctl start agent-under-test.service");
  await c.waitFor(
    "the agent's control socket",
    () => ctl(c, ["events", "--since", "1m"]).status === 0,
    30_000,
  );
}

function ctl(c: Container, args: readonly string[]) {
  return c.exec(NODE, [AGENTCTL, "--socket", SOCKET, ...args], { timeoutMs: 60_000 });
}

function events(c: Container): Array<{ kind: string; message: string; subject: string | null }> {
  const r = ctl(c, [
    "events",
    "--class",
    "remediation",
    "--since",
    "1h",
    "--limit",
    "500",
    "--json",
  ]);
  return (
    JSON.parse(r.stdout) as {
      events: Array<{ kind: string; message: string; subject: string | null }>;
    }
  ).events;
}

const freezer = (c: Container, unit: string) => c.show(unit, ["FreezerState"])["FreezerState"];
const active = (c: Container, unit: string) => c.show(unit, ["ActiveState"])["ActiveState"];

/** Stops the writers and waits for the WAL filesystem to be quiet again (dirty pages written). */
async function quiet(c: Container): Promise<void> {
  c.exec("systemctl", ["stop", "backup.service", "other.service", "wd-backup.service"]);
  c.exec("/bin/sync");
  await new Promise((r) => setTimeout(r, 1500));
}

test.serial(
  "a backup writing to the WAL's filesystem is frozen while fsync is slow, the archiver's timer " +
    "stopped; both undone after recovery",
  async (t) => {
    if (!ctx) return t.pass(`skipped: ${why}`);
    t.timeout(240_000);
    const { c } = ctx;
    await startAgent(c, agentToml());
    c.sh("systemctl start log-archiver.timer backup.service");
    await c.waitFor(
      "backup.service frozen",
      () => freezer(c, "backup.service") === "frozen",
      90_000,
    );
    // The units are paused one after the other in the same evaluation: the timer a moment later.
    await c.waitFor(
      "log-archiver.timer stopped while the backup is paused",
      () => active(c, "log-archiver.timer") === "inactive",
      30_000,
    );
    t.is(freezer(c, "backup.service"), "frozen");
    t.is(
      active(c, "stemedb-agent-resume-backup_service.timer"),
      "active",
      "the dead-man's switch is armed",
    );
    t.is(active(c, "stemedb-agent-resume-log-archiver_timer.timer"), "active");
    const listing = JSON.parse(ctl(c, ["backups", "--json"]).stdout) as {
      units: Array<{ unit: string; paused: { method: string; by: string } | null }>;
    };
    t.like(listing.units.find((u) => u.unit === "backup.service")?.paused, {
      method: "freeze",
      by: "agent",
    });
    t.like(listing.units.find((u) => u.unit === "log-archiver.timer")?.paused, {
      method: "stop-timer",
      by: "agent",
    });
    t.is(
      listing.units.find((u) => u.unit === "wd-backup.service")?.paused,
      null,
      "an inactive unit is left alone",
    );
    const metrics = c.exec("curl", ["-s", "http://127.0.0.1:19735/metrics"]).stdout;
    t.regex(metrics, /stemedb_agent_backup_paused\{unit="backup.service"\} 1/);
    const human = ctl(c, ["backups"]).stdout;
    t.regex(human, /backup\.service .*paused \(freeze, by agent\)/);
    t.log(human);
    // diagnose names the action already taken, with its reason and end.
    t.regex(
      ctl(c, ["diagnose"]).stdout,
      new RegExp(
        String.raw`backup\.service paused \(freeze\) since \d\d:\d\d:\d\dZ, resumes by \d\d:\d\d:\d\d` +
          String.raw`Z at the latest: .*backup\.service doing [\d.]+ MiB\/s of I\/O`,
      ),
    );

    // Frozen, the writer stops; its dirty pages drain; the probe recovers; the agent thaws it.
    await c.waitFor(
      "backup.service thawed after recovery",
      () => freezer(c, "backup.service") === "running",
      120_000,
    );
    // Stopped at once: thawed, it writes again and would make the WAL slow before the timer's own
    // recovery (judged on samples since its pause) ends that pause (CI timed out here).
    c.exec("systemctl", ["stop", "backup.service"]);
    await c.waitFor(
      "log-archiver.timer started again",
      () => active(c, "log-archiver.timer") === "active",
      60_000,
    );
    const ev = events(c);
    const kinds = ev.map((e) => e.kind);
    t.true(kinds.includes("backup_pause.paused"), kinds.join(","));
    t.true(kinds.includes("backup_pause.improved"));
    t.true(
      ev.some(
        (e) =>
          e.kind === "backup_pause.resumed" &&
          /backup\.service.*stayed under 15 ms/.test(e.message),
      ),
      JSON.stringify(ev.slice(0, 8), null, 1),
    );
    t.not(
      active(c, "stemedb-agent-resume-backup_service.timer"),
      "active",
      "a normal resume disarms the switch",
    );
    const journal = JSON.parse(ctl(c, ["remediations", "--json"]).stdout) as {
      journal: Array<{ remediator: string; action: string; target: string; state: string }>;
    };
    const rows = journal.journal.filter(
      (j) => j.remediator === "backup_pause" && j.target === "backup.service",
    );
    t.true(
      rows.some((j) => j.action === "pause" && j.state === "done") &&
        rows.some((j) => j.action === "resume" && j.state === "done"),
      JSON.stringify(rows),
    );
    await quiet(c);
  },
);

test.serial(
  "judged on the database's own p99: a pause that does not bring it down is undone ('not the cure'); " +
    "a unit that is not listed is never touched",
  async (t) => {
    if (!ctx) return t.pass(`skipped: ${why}`);
    t.timeout(240_000);
    const { c } = ctx;
    // The database's own view (stemedb_wal_fsync_duration_seconds) from a real HTTP endpoint: it says
    // 500 ms whatever the backup does, so the pause cannot be the cure.
    c.writeFile(
      "/srv/db/metrics",
      "# TYPE stemedb_wal_fsync_duration_seconds summary\n" +
        'stemedb_wal_fsync_duration_seconds{quantile="0.99"} 0.5\n' +
        "stemedb_wal_fsync_duration_seconds_count 1000\n",
    );
    c.sh(
      "systemd-run --unit=fake-db /usr/bin/python3 -m http.server 18180 --bind 127.0.0.1 --directory /srv/db",
    );
    await c.waitFor(
      "the fake database endpoint",
      () => c.exec("curl", ["-sf", "http://127.0.0.1:18180/metrics"]).status === 0,
      15_000,
    );
    await startAgent(
      c,
      agentToml({ units: '["backup.service"]', source: '"database"', improve_within: '"8s"' })
        .replace("[collectors.wal]\nenabled = false", '[collectors.wal]\ninterval = "1s"')
        .replace(
          'data_dir = "/var/lib/stemedb"',
          'data_dir = "/var/lib/stemedb"\nmetrics_url = "http://127.0.0.1:18180/metrics"',
        ),
    );
    // A backup that writes a little (above min_io_per_second) next to a heavy writer that is not listed.
    c.writeFile(
      "/etc/systemd/system/backup.service.d/small.conf",
      `[Service]\nExecStart=\nExecStart=/bin/sh -c 'while :; do dd if=/dev/zero ` +
        `of=/var/lib/stemedb/backup/out bs=1M count=4 status=none; sleep 1; done'\n`,
    );
    c.sh("systemctl daemon-reload && systemctl start other.service backup.service");
    let otherFrozen = false;
    const watch = setInterval(
      () => (otherFrozen ||= freezer(c, "other.service") !== "running"),
      500,
    );
    try {
      await c.waitFor(
        "backup.service frozen",
        () => freezer(c, "backup.service") === "frozen",
        90_000,
      );
      await c.waitFor(
        "backup.service thawed as not the cure",
        () => freezer(c, "backup.service") === "running",
        60_000,
      );
    } finally {
      clearInterval(watch);
      c.exec("rm", ["-r", "/etc/systemd/system/backup.service.d"]);
      c.exec("systemctl", ["daemon-reload"]);
      c.exec("systemctl", ["stop", "fake-db.service"]);
      await quiet(c);
    }
    t.false(otherFrozen, "other.service is not listed: never frozen");
    const ev = events(c);
    const paused = ev.find((e) => e.kind === "backup_pause.paused");
    t.regex(paused?.message ?? "", /WAL fsync p99 500 ms above 40 ms/);
    t.true(
      ev.some(
        (e) =>
          e.kind === "backup_pause.not_the_cure" &&
          /did not come back under 40 ms within 8 s .*not the cure/.test(e.message),
      ),
      ev.map((e) => e.kind).join(","),
    );
    t.false(ev.some((e) => e.message.includes("other.service")));
    const listing = JSON.parse(ctl(c, ["backups", "--json"]).stdout) as {
      units: Array<{ unit: string; cooldown_until: string | null }>;
    };
    t.truthy(listing.units[0]?.cooldown_until, "no new automatic pause of it for a while");
    const refused = ctl(c, ["backups", "pause", "other.service"]);
    t.is(refused.status, 1);
    t.regex(refused.stderr, /not in remediators\.backup_pause\.units/);
  },
);

test.serial(
  "agentctl backups pause --for, then SIGKILL of the agent: the dead-man's switch resumes the unit; " +
    "the restarted agent records it",
  async (t) => {
    if (!ctx) return t.pass(`skipped: ${why}`);
    t.timeout(180_000);
    const { c } = ctx;
    await startAgent(c, agentToml({ mode: '"dry-run"' })); // operators may act in dry-run; the agent itself does not
    c.sh("systemctl start backup.service");
    const r = ctl(c, ["backups", "pause", "backup.service", "--for", "15s"]);
    t.is(r.status, 0, r.stderr);
    t.regex(
      r.stdout,
      /paused \(freeze\) until .*dead-man's switch stemedb-agent-resume-backup_service.timer/,
    );
    t.is(freezer(c, "backup.service"), "frozen");
    const t0 = Date.now();
    c.sh("systemctl kill --signal=SIGKILL agent-under-test.service");
    await c.waitFor("agent dead", () => active(c, "agent-under-test.service") !== "active", 10_000);
    t.is(
      freezer(c, "backup.service"),
      "frozen",
      "still frozen right after the agent died (nothing else thawed it)",
    );
    await c.waitFor(
      "thawed by the switch",
      () => freezer(c, "backup.service") === "running",
      40_000,
    );
    const waited = Date.now() - t0;
    t.log(`thawed ${(waited / 1000).toFixed(1)} s after the kill (pause was 15 s)`);
    t.true(waited > 5000, "by the timer, not at once");
    t.not(
      active(c, "stemedb-agent-resume-backup_service.timer"),
      "active",
      "a transient timer unloads after firing",
    );
    await startAgent(c, agentToml({ mode: '"dry-run"' }));
    await c.waitFor(
      "reconciled",
      () => events(c).some((e) => e.kind === "backup_pause.switch_fired"),
      20_000,
    );
    const listing = JSON.parse(ctl(c, ["backups", "--json"]).stdout) as {
      units: Array<{ unit: string; paused: unknown; paused_last_24h_seconds: number }>;
    };
    const b = listing.units.find((u) => u.unit === "backup.service");
    t.is(b?.paused, null);
    t.true((b?.paused_last_24h_seconds ?? 0) >= 5, "the pause counts against the budget");
    await quiet(c);
  },
);

test.serial(
  "the agent unit's ExecStopPost resumes what it paused when the agent is killed",
  async (t) => {
    if (!ctx) return t.pass(`skipped: ${why}`);
    t.timeout(120_000);
    const { c } = ctx;
    await startAgent(c, agentToml({ mode: '"dry-run"' }), { execStopPost: true });
    c.sh("systemctl start backup.service");
    t.is(ctl(c, ["backups", "pause", "backup.service", "--for", "2m"]).status, 0);
    t.is(freezer(c, "backup.service"), "frozen");
    const t0 = Date.now();
    c.sh("systemctl kill --signal=SIGKILL agent-under-test.service");
    await c.waitFor(
      "thawed by ExecStopPost",
      () => freezer(c, "backup.service") === "running",
      30_000,
    );
    t.true(Date.now() - t0 < 60_000, "long before the 2 min switch");
    // Resume thaws, verifies, then disarms: the switch goes a moment after the thaw.
    await c.waitFor(
      "and the switch disarmed",
      () => active(c, "stemedb-agent-resume-backup_service.timer") !== "active",
      15_000,
    );
    await quiet(c);
  },
);

test.serial(
  "restart while paused: the agent adopts the pause (switch still armed) and an operator resumes it",
  async (t) => {
    if (!ctx) return t.pass(`skipped: ${why}`);
    t.timeout(120_000);
    const { c } = ctx;
    await startAgent(c, agentToml({ mode: '"dry-run"' }));
    c.sh("systemctl start backup.service");
    t.is(ctl(c, ["backups", "pause", "backup.service", "--for", "2m"]).status, 0);
    c.sh("systemctl kill --signal=SIGKILL agent-under-test.service");
    await startAgent(c, agentToml({ mode: '"dry-run"' }));
    await c.waitFor(
      "adopted",
      () => events(c).some((e) => e.kind === "backup_pause.adopted"),
      20_000,
    );
    t.is(freezer(c, "backup.service"), "frozen");
    t.is(active(c, "stemedb-agent-resume-backup_service.timer"), "active");
    const r = ctl(c, ["backups", "resume", "backup.service"]);
    t.is(r.status, 0, r.stderr);
    t.is(freezer(c, "backup.service"), "running");
    t.not(active(c, "stemedb-agent-resume-backup_service.timer"), "active");
    const again = ctl(c, ["backups", "resume", "backup.service"]);
    t.is(again.status, 1);
    t.regex(again.stderr, /not paused by the agent/);
    await quiet(c);
  },
);

test.serial(
  "a unit with WatchdogSec= is never frozen: SIGSTOP through systemd, SIGCONT on resume",
  async (t) => {
    if (!ctx) return t.pass(`skipped: ${why}`);
    t.timeout(60_000);
    const { c } = ctx;
    await startAgent(c, agentToml({ mode: '"dry-run"' }));
    c.sh("systemctl start wd-backup.service");
    const r = ctl(c, ["backups", "pause", "wd-backup.service", "--for", "1m", "--json"]);
    t.is(r.status, 0, r.stderr);
    t.like((JSON.parse(r.stdout) as { unit: { paused: unknown } }).unit.paused, {
      method: "sigstop",
    });
    t.is(freezer(c, "wd-backup.service"), "running", "not frozen");
    const pid = c.show("wd-backup.service", ["MainPID"])["MainPID"];
    t.regex(c.sh(`cut -d' ' -f3 /proc/${pid}/stat`), /^T/);
    t.is(ctl(c, ["backups", "resume", "wd-backup.service"]).status, 0);
    t.regex(c.sh(`cut -d' ' -f3 /proc/${pid}/stat`), /^S/);
    await quiet(c);
  },
);

test.serial(
  "the daily budget: a pause is cut to what is left, and once spent the agent says so and leaves the unit alone",
  async (t) => {
    if (!ctx) return t.pass(`skipped: ${why}`);
    t.timeout(120_000);
    const { c } = ctx;
    // A unit of its own, never paused before: its whole budget is there.
    c.writeFile(
      "/etc/systemd/system/nightly.service",
      "[Service]\nExecStart=/bin/sleep infinity\n",
    );
    c.sh("systemctl daemon-reload && systemctl start nightly.service");
    await startAgent(
      c,
      agentToml({
        mode: '"dry-run"',
        units: '["nightly.service"]',
        max_pause: '"8s"',
        daily_budget: '"8s"',
      }),
    );
    const r = ctl(c, ["backups", "pause", "nightly.service", "--for", "1m", "--json"]);
    t.is(r.status, 0, r.stderr);
    const p = (JSON.parse(r.stdout) as { unit: { paused: { since: string; until: string } } }).unit
      .paused;
    t.is(Date.parse(p.until) - Date.parse(p.since), 8000, "cut to max_pause and the budget");
    const held = () =>
      (
        JSON.parse(ctl(c, ["backups", "--json"]).stdout) as {
          units: Array<{ paused: unknown; budget_left_seconds: number }>;
        }
      ).units[0];
    await c.waitFor(
      "the pause ended and the agent closed it",
      () => freezer(c, "nightly.service") === "running" && held()?.paused === null,
      30_000,
    );
    t.is(held()?.budget_left_seconds, 0);
    const again = ctl(c, ["backups", "pause", "nightly.service"]);
    t.is(again.status, 1);
    t.regex(again.stderr, /budget .* spent/);
    t.is(freezer(c, "nightly.service"), "running");
    const metrics = c.exec("curl", ["-s", "http://127.0.0.1:19735/metrics"]).stdout;
    t.regex(metrics, /stemedb_agent_backup_budget_remaining_seconds\{unit="nightly.service"\} 0\b/);
    t.true(events(c).some((e) => e.kind === "backup_pause.refused" && /budget/.test(e.message)));
    c.exec("systemctl", ["stop", "nightly.service"]);
  },
);

test.serial(
  "as a new user would: the installed unit (no /dev/kmsg here) pauses on request; SIGKILL -> its " +
    "ExecStopPost resumes at once; without that net the dead-man's switch does",
  async (t) => {
    if (!ctx) return t.pass(`skipped: ${why}`);
    t.timeout(240_000);
    const { c } = ctx;
    c.exec("systemctl", ["stop", "agent-under-test.service"]);
    c.exec("rm", ["-f", CONFIG]); // the earlier tests' config: a new user has none (install.sh keeps an existing one)
    // The container's /usr is the host's, read-only: an overlay lets install.sh write /usr/lib and /usr/bin.
    c.sh(
      "mkdir -p /var/tmp/ou /var/tmp/ow && mount -t overlay overlay -o " +
        "lowerdir=/usr,upperdir=/var/tmp/ou,workdir=/var/tmp/ow /usr",
    );
    t.false(c.exec("test", ["-e", "/dev/kmsg"]).status === 0, "this container has no /dev/kmsg");
    c.sh(`cd ${REPO_ROOT} && bash scripts/install.sh 2>&1`, 200_000);
    t.is(active(c, "stemedb-agent.service"), "active");
    const ctlI = (args: string[]) => c.exec("agentctl", args, { timeoutMs: 60_000 });
    c.sh("systemctl start backup.service");
    const p1 = ctlI(["backups", "pause", "backup.service", "--for", "1m"]);
    t.is(p1.status, 0, p1.stderr);
    t.is(freezer(c, "backup.service"), "frozen");
    c.sh("systemctl kill --signal=SIGKILL stemedb-agent.service");
    await c.waitFor(
      "ExecStopPost resumed it",
      () => freezer(c, "backup.service") === "running",
      20_000,
    );
    // It thaws first and logs its summary after: wait for the line, do not look once.
    await c.waitFor(
      "ExecStopPost's summary in the journal",
      () => /resume-paused: done/.test(c.sh("journalctl -u stemedb-agent --no-pager -o cat")),
      20_000,
    );
    // Without the second net, only the dead-man's switch is left.
    c.writeFile(
      "/etc/systemd/system/stemedb-agent.service.d/no-net.conf",
      "[Service]\nExecStopPost=\nRestart=no\n",
    );
    c.sh("systemctl daemon-reload && systemctl restart stemedb-agent.service");
    await c.waitFor("agent up", () => ctlI(["events", "--since", "1m"]).status === 0, 30_000);
    // The issue's own words: paused for a minute, it resumes by itself with the agent killed.
    t.is(ctlI(["backups", "pause", "backup.service", "--for", "1m"]).status, 0);
    const t0 = Date.now();
    c.sh("systemctl kill --signal=SIGKILL stemedb-agent.service");
    await c.waitFor(
      "the agent dead",
      () => active(c, "stemedb-agent.service") !== "active",
      10_000,
    );
    t.is(freezer(c, "backup.service"), "frozen", "nothing resumed it yet");
    try {
      await c.waitFor(
        "the dead-man's switch resumed it",
        () => freezer(c, "backup.service") === "running",
        120_000,
      );
    } catch (e) {
      // Failed twice in CI, never here: keep what PID 1 knew of the switch for the next time.
      const dump =
        "systemctl list-timers --all --no-pager; systemctl status --no-pager " +
        "'stemedb-agent-resume-*'; journalctl --no-pager -o short-monotonic -n 60";
      t.log(c.exec("/bin/sh", ["-c", `${dump} 2>&1`]).stdout);
      throw e;
    }
    t.true(Date.now() - t0 > 50_000, "by the timer, at the pause's end");
    t.log(`thawed ${((Date.now() - t0) / 1000).toFixed(1)} s after the kill (pause of 1 min)`);
    t.not(active(c, "stemedb-agent.service"), "active", "with the agent still dead");
    c.exec("rm", ["-r", "/etc/systemd/system/stemedb-agent.service.d"]);
    c.exec("/bin/sh", ["-c", `cd ${REPO_ROOT} && bash scripts/uninstall.sh --purge`]);
    c.exec("umount", ["/usr"]);
    await quiet(c);
  },
);

test.serial(
  "without the unified cgroup hierarchy freezing is unsupported: the agent falls back to SIGSTOP and " +
    "its switch sends SIGCONT",
  async (t) => {
    if (!ctx) return t.pass(`skipped: ${why}`);
    t.timeout(120_000);
    const { dir, cleanup } = tempDir("sa-bp1-");
    let h: Container | null = null;
    try {
      mkdirSync(join(dir, "state"));
      mkdirSync(join(dir, "wal"));
      h = await bootContainer({
        name: `sa-bpv1-${process.pid}`,
        unified: false,
        bind: { [dir]: "/var/lib/stemedb", [join(dir, "state")]: "/srv/state" },
      });
      h.writeFile(
        "/etc/systemd/system/backup.service",
        UNITS["backup.service"]?.replace(/ExecStart=.*/, "ExecStart=/bin/sleep infinity") ?? "",
      );
      h.sh("systemctl daemon-reload && systemctl start backup.service");
      t.regex(
        h.exec("systemctl", ["freeze", "backup.service"]).stderr,
        /does not support freezing/,
        "this container really lacks the freezer",
      );
      await startAgent(h, agentToml({ mode: '"dry-run"' }));
      const r = ctl(h, ["backups", "pause", "backup.service", "--for", "10s", "--json"]);
      t.is(r.status, 0, r.stderr);
      t.like((JSON.parse(r.stdout) as { unit: { paused: unknown } }).unit.paused, {
        method: "sigstop",
      });
      const pid = h.show("backup.service", ["MainPID"])["MainPID"];
      t.regex(h.sh(`cut -d' ' -f3 /proc/${pid}/stat`), /^T/);
      t.true(events(h).some((e) => e.kind === "backup_pause.fallback"));
      // The main process only: on this cgroup v1 layout systemd may fail to signal "auxiliary
      // processes" (EIO) after the main one got it.
      h.sh("systemctl kill --signal=SIGKILL --kill-who=main agent-under-test.service");
      const hh = h;
      await h.waitFor(
        "SIGCONT from the switch",
        () => /^S/.test(hh.sh(`cut -d' ' -f3 /proc/${pid}/stat`)),
        30_000,
      );
    } finally {
      await h?.stop();
      spawnSync("rm", ["-rf", dir]);
      cleanup();
    }
  },
);
