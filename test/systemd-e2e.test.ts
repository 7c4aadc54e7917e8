// End to end under a real systemd 252 (systemd-nspawn, the host's OS booted volatile): the install
// command from this checkout, then the shipped unit with all its hardening: Type=notify readiness
// from the main PID (NotifyAccess=main), /healthz, agentctl, the kernel log (through the
// journal), smartctl, the watchdog restart and a clean stop.
//
// Test-environment adjustments (each stands in for something a real host has):
//  - /usr inside the container is the host's, read-only: an overlay (upper on /run) makes it
//    writable so scripts/install.sh installs into /usr/lib and /usr/bin as on a real host.
//  - the host's /dev/kmsg and /dev/vda are bound in (nspawn gives the container neither).
//  - the unit says ProtectKernelLogs=yes, so the agent reads the kernel log from the journal, which
//    journald fills from /dev/kmsg. nspawn withholds CAP_SYSLOG from the container, so its journald
//    can read /dev/kmsg only with kernel.dmesg_restrict=0: the test sets that on the host before
//    the boot (restored after), which is what journald's CAP_SYSLOG gives it on a real host.
//  - nspawn gives the container a boot ID of its own (a file bound over
//    /proc/sys/kernel/random/boot_id), which journald stamps on every entry. The unit's
//    ProtectProc= mounts a fresh /proc where the kernel's own boot ID shows, so the agent's
//    `journalctl -k` (this boot only) would match nothing. The test removes the overlay and
//    restarts journald: one boot ID, as on a real host.
//  - kernel.printk_devkmsg=on on the host (restored after) so our injected line is not rate-limited.
import test from "ava";
import { existsSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import {
  bootContainer,
  type Container,
  containerUnavailable,
  REPO_ROOT,
} from "./helpers/container.js";
import { holdSysctl } from "./helpers/sysctl.js";
import { errorMessage } from "../core/errors.js";

const UNIT = "stemedb-agent.service";
let c: Container | undefined;
let skip: string | null = containerUnavailable();
const releases: Array<() => void> = [];

test.before(async () => {
  if (skip !== null) return;
  if (!existsSync(`${REPO_ROOT}/dist/agent/main.js`)) {
    skip = "dist/ is not built";
    return;
  }
  const bindRo: Record<string, string> = { "/dev/kmsg": "/dev/kmsg" };
  if (existsSync("/dev/vda")) bindRo["/dev/vda"] = "/dev/vda";
  // Before the boot: the container's journald opens /dev/kmsg when it starts.
  releases.push(
    holdSysctl("/proc/sys/kernel/dmesg_restrict", "0"),
    holdSysctl("/proc/sys/kernel/printk_devkmsg", "on"),
  );
  try {
    c = await bootContainer({ name: `sdagent${process.pid}`, bindRo });
  } catch (e) {
    skip = `container did not boot: ${errorMessage(e).slice(0, 300)}`;
    return;
  }
  c.sh("umount /proc/sys/kernel/random/boot_id && systemctl restart systemd-journald");
  c.sh(
    "mkdir -p /run/usr-overlay/upper /run/usr-overlay/work && mount -t overlay overlay -o " +
      "lowerdir=/usr,upperdir=/run/usr-overlay/upper,workdir=/run/usr-overlay/work /usr",
  );
  // An existing configuration is kept by the installer: count userspace-injected kernel-log lines.
  c.writeFile("/etc/stemedb/agent.toml", '[collectors.kmsg]\nfacilities = ["kern", "user"]\n');
});

test.after.always(async () => {
  for (const release of releases.reverse()) {
    try {
      release();
    } catch {
      // best effort
    }
  }
  await c?.stop();
});

function props(names: readonly string[]): Record<string, string> {
  if (c === undefined) throw new Error("no container");
  return c.show(UNIT, names);
}

test.serial("install from the checkout: the unit becomes active (running) through notify", (t) => {
  t.timeout(240_000);
  if (skip !== null || c === undefined) return t.pass(`skipped: ${skip ?? "no container"}`);
  const out = c.sh(`cd ${REPO_ROOT} && bash scripts/install.sh 2>&1`, 200_000);
  t.regex(out, /kept existing \/etc\/stemedb\/agent\.toml/);
  t.is(c.readFile("/etc/stemedb/agent.toml"), '[collectors.kmsg]\nfacilities = ["kern", "user"]\n');
  const p = props([
    "ActiveState",
    "SubState",
    "StatusText",
    "NRestarts",
    "Type",
    "NotifyAccess",
    "WatchdogUSec",
    "UnitFileState",
  ]);
  t.is(p["Type"], "notify");
  // Only the agent's own PID may notify (the sd_notify addon), so active(running) below proves it.
  t.is(p["NotifyAccess"], "main");
  t.is(p["ActiveState"], "active", JSON.stringify(p));
  t.is(p["SubState"], "running");
  t.regex(p["StatusText"] ?? "", /^node \w+; agent \w+; \d+ collectors/);
  t.is(p["NRestarts"], "0");
  t.is(p["UnitFileState"], "enabled");
  t.not(p["WatchdogUSec"], "0");
  // Both commands on PATH, production dependencies only.
  t.regex(c.sh("stemedb-agent --version"), /^stemedb-agent \d/);
  t.false(
    c.exec("test", ["-e", "/usr/lib/stemedb-agent/node_modules/typescript"]).status === 0,
    "dev dependencies were installed",
  );
  t.true(c.exec("test", ["-e", "/usr/lib/stemedb-agent/node_modules/better-sqlite3"]).status === 0);
  // Installed unit verifies clean where its binaries exist.
  const v = c.exec("systemd-analyze", ["verify", UNIT]);
  t.is(v.status, 0, v.stderr);
  t.is(v.stderr.trim(), "");
  // Idempotent: a second run upgrades in place and the service comes back.
  const again = c.sh(`cd ${REPO_ROOT} && bash scripts/install.sh 2>&1`, 200_000);
  t.regex(again, /active: stemedb-agent\.service/);
  t.is(props(["ActiveState"])["ActiveState"], "active");
});

test.serial(
  "/healthz answers, agentctl status works as root, the socket is 0660 group stemedb-agent",
  async (t) => {
    t.timeout(60_000);
    if (skip !== null || c === undefined) return t.pass(`skipped: ${skip ?? "no container"}`);
    const container = c;
    await container.waitFor(
      "/healthz",
      () => container.exec("curl", ["-sf", "http://127.0.0.1:9735/healthz"]).status === 0,
      30_000,
    );
    t.regex(
      container.exec("curl", ["-s", "http://127.0.0.1:9735/healthz"]).stdout,
      /core loop ticking/,
    );
    const st = container.exec("agentctl", ["status", "--json"]);
    const report = JSON.parse(st.stdout) as {
      schema: number;
      agent: { pid: number; config_file: string };
    };
    t.is(report.schema, 1);
    t.is(String(report.agent.pid), props(["MainPID"])["MainPID"] ?? "");
    t.is(report.agent.config_file, "/etc/stemedb/agent.toml");
    t.is(
      container.sh("stat -c '%a %G' /run/stemedb-agent/agentctl.sock").trim(),
      "660 stemedb-agent",
    );
    t.is(container.sh("stat -c '%a %U' /run/stemedb-agent/agentctl-admin.sock").trim(), "600 root");
  },
);

test.serial(
  "a real Prometheus in the container scrapes the installed service, with the alert rules loaded",
  async (t) => {
    t.timeout(90_000);
    if (skip !== null || c === undefined) return t.pass(`skipped: ${skip ?? "no container"}`);
    if (!existsSync("/usr/bin/prometheus"))
      return t.pass("skipped: prometheus not installed (npm test installs it as root)");
    const container = c;
    container.writeFile(
      "/etc/prom/prometheus.yml",
      `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - ` +
        `${REPO_ROOT}/monitoring/stemedb-agent.rules.yml\nscrape_configs:\n  - job_name: stemedb-agent\n` +
        `    static_configs:\n      - targets: ["127.0.0.1:9735"]\n`,
    );
    container.sh(
      "systemd-run --unit=prom /usr/bin/prometheus --config.file=/etc/prom/prometheus.yml " +
        "--storage.tsdb.path=/var/tmp/prom --web.listen-address=127.0.0.1:19090",
    );
    t.teardown(() => container.exec("systemctl", ["stop", "prom.service"]));
    const query = (q: string) => {
      const r = container.exec("curl", [
        "-s",
        "--get",
        "--data-urlencode",
        `query=${q}`,
        "http://127.0.0.1:19090/api/v1/query",
      ]);
      try {
        return (
          JSON.parse(r.stdout) as {
            data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
          }
        ).data.result;
      } catch {
        return [];
      }
    };
    await container.waitFor(
      "Prometheus sees the agent up",
      () => query('up{job="stemedb-agent"}')[0]?.value[1] === "1",
      60_000,
    );
    t.is(query("stemedb_agent_build_info")[0]?.metric["instance"], "127.0.0.1:9735");
    const series = Number(
      query('count({job="stemedb-agent",__name__=~"stemedb_agent_.+"})')[0]?.value[1] ?? 0,
    );
    t.true(series > 50, `${series} agent series stored`);
    const rules = JSON.parse(
      container.exec("curl", ["-s", "http://127.0.0.1:19090/api/v1/rules"]).stdout,
    ) as { data: { groups: Array<{ rules: Array<{ health: string }> }> } };
    const all = rules.data.groups.flatMap((g) => g.rules);
    t.true(
      all.length > 10 && all.every((r) => r.health !== "err"),
      `${all.length} rules, none in error`,
    );
  },
);

test.serial(
  "reads the kernel log from the journal under its hardening (no /dev/kmsg): an injected line reaches " +
    "/metrics and the events",
  async (t) => {
    t.timeout(90_000);
    if (skip !== null || c === undefined) return t.pass(`skipped: ${skip ?? "no container"}`);
    const container = c;
    const metrics = () => container.exec("curl", ["-s", "http://127.0.0.1:9735/metrics"]).stdout;
    await container.waitFor(
      "the journal as the kernel log source",
      () => /^stemedb_agent_kernel_log_source\{source="journal"\} 1$/m.test(metrics()),
      30_000,
    );
    const marker = `e2e${randomBytes(4).toString("hex")}`;
    // Written from the host: the container shares the kernel's log. Written again every 5 s until
    // seen: another suite flooding the shared ring can overwrite it before journald reads it.
    let sent = 0;
    const seen = () => {
      if (Date.now() - sent > 5000) {
        writeFileSync(
          "/dev/kmsg",
          `<3>Buffer I/O error on dev ${marker}, logical block 1, lost sync page write\n`,
        );
        sent = Date.now();
      }
      return container
        .exec("agentctl", ["events", "--since", "10m", "--json"])
        .stdout.includes(marker);
    };
    await container.waitFor("the line in the agent's events", seen, 45_000);
    const m = metrics();
    const records = Number(
      /^stemedb_agent_kernel_log_records_total\{source="journal"\} (\d+)/m.exec(m)?.[1] ?? "0",
    );
    t.true(
      records >= 1,
      m
        .split("\n")
        .filter((l) => l.includes("kernel_log"))
        .join("\n"),
    );
    t.regex(m, /^stemedb_agent_kernel_io_errors_total\{[^}]*class="buffer_io_error"[^}]*\} [1-9]/m);
    const journal = container.sh("journalctl -u stemedb-agent -o cat --no-pager");
    t.regex(journal, /kmsg: \/dev\/kmsg not readable; following journalctl -k/);
    t.notRegex(journal, /journalctl exited/);
    // ProtectKernelLogs=yes took CAP_SYSLOG (bit 34) out of the bounding set.
    const pid = props(["MainPID"])["MainPID"] ?? "none";
    const capBnd = BigInt(
      `0x${/CapBnd:\s*([0-9a-f]+)/.exec(container.sh(`grep CapBnd /proc/${pid}/status`))?.[1] ?? "ffffffffff"}`,
    );
    t.is((capBnd >> 34n) & 1n, 0n, "CAP_SYSLOG in the agent's bounding set");
  },
);

test.serial(
  "runs smartctl under its hardening: devices reported, or a clear unsupported, never EPERM",
  async (t) => {
    t.timeout(90_000);
    if (skip !== null || c === undefined) return t.pass(`skipped: ${skip ?? "no container"}`);
    const container = c;
    type Smart = {
      areas: Array<{ name: string; verdict: string; summary: string }>;
      collectors: Array<{ name: string; runs: number }>;
    };
    const status = () =>
      JSON.parse(container.exec("agentctl", ["status", "--json"]).stdout) as Smart;
    await container.waitFor(
      "a first SMART poll",
      () =>
        /stemedb_agent_smart_collect_state\{/.test(
          container.exec("curl", ["-s", "http://127.0.0.1:9735/metrics"]).stdout,
        ),
      45_000,
    );
    const m = container.exec("curl", ["-s", "http://127.0.0.1:9735/metrics"]).stdout;
    const states = m
      .split("\n")
      .filter((l) => l.startsWith("stemedb_agent_smart_collect_state{") && l.endsWith(" 1"));
    t.true(states.length > 0, "no SMART device state");
    for (const l of states)
      t.regex(l, /state="(ok|standby|unsupported)"/, `smartctl under the unit's hardening: ${l}`);
    const all = JSON.stringify(status());
    t.notRegex(all, /EPERM|EACCES|[Oo]peration not permitted|[Pp]ermission denied/);
    // The agent holds no disk privileges: each smartctl ran in a sandboxed transient unit of its own.
    t.regex(
      container.exec("journalctl", ["--no-pager", "-o", "cat"]).stdout,
      /stemedb-agent: smartctl \(sandboxed\)/,
    );
    const capLine = container.sh(
      `grep CapBnd /proc/$(systemctl show -p MainPID --value ${UNIT})/status`,
    );
    const capBnd = BigInt(`0x${/CapBnd:\s*([0-9a-f]+)/.exec(capLine)?.[1] ?? "ffffffffff"}`);
    t.is((capBnd >> 17n) & 1n, 0n, "no CAP_SYS_RAWIO (bit 17) in the agent's bounding set");
    t.is((capBnd >> 21n) & 1n, 0n, "no CAP_SYS_ADMIN (bit 21)");
    t.log(states.join("\n"));
  },
);

test.serial("a wedged event loop is restarted by the watchdog", async (t) => {
  t.timeout(150_000);
  if (skip !== null || c === undefined) return t.pass(`skipped: ${skip ?? "no container"}`);
  const container = c;
  const before = props(["MainPID", "NRestarts", "WatchdogUSec"]);
  t.is(before["NRestarts"], "0");
  // SIGSTOP freezes the process, so its event loop, so its WATCHDOG=1 pings (WatchdogSec=30s).
  container.sh(`kill -STOP ${before["MainPID"] ?? "none"}`);
  let sawWatchdog = false;
  await container.waitFor(
    "a watchdog restart",
    () => {
      const p = props(["Result", "NRestarts", "ActiveState", "SubState", "MainPID"]);
      if (p["Result"] === "watchdog") sawWatchdog = true;
      return (
        p["NRestarts"] === "1" &&
        p["ActiveState"] === "active" &&
        p["SubState"] === "running" &&
        p["MainPID"] !== before["MainPID"]
      );
    },
    120_000,
  );
  const journal = container.sh("journalctl -u stemedb-agent -o cat --no-pager");
  t.regex(journal, /Watchdog timeout/);
  t.true(
    sawWatchdog || /Failed with result 'watchdog'/.test(journal),
    "Result=watchdog never seen",
  );
  t.is(props(["NRestarts"])["NRestarts"], "1");
  t.regex(props(["StatusText"])["StatusText"] ?? "", /collectors/);
});

test.serial("stops cleanly: inactive, exit 0, result success", (t) => {
  t.timeout(60_000);
  if (skip !== null || c === undefined) return t.pass(`skipped: ${skip ?? "no container"}`);
  const r = c.exec("systemctl", ["stop", UNIT], { timeoutMs: 40_000 });
  t.is(r.status, 0, r.stderr);
  const p = props(["ActiveState", "SubState", "Result", "ExecMainStatus", "ExecMainCode"]);
  t.is(p["ActiveState"], "inactive");
  t.is(p["Result"], "success");
  t.is(p["ExecMainStatus"], "0");
  t.is(p["ExecMainCode"], "1"); // CLD_EXITED
  t.regex(c.sh("journalctl -u stemedb-agent -o cat --no-pager"), /stemedb-agent stopped/);
});

test.serial("uninstall keeps history and configuration unless --purge", (t) => {
  t.timeout(60_000);
  if (skip !== null || c === undefined) return t.pass(`skipped: ${skip ?? "no container"}`);
  c.sh(`bash ${REPO_ROOT}/scripts/uninstall.sh`);
  t.not(c.exec("test", ["-e", "/usr/bin/stemedb-agent"]).status, 0);
  t.not(c.exec("test", ["-e", "/usr/lib/stemedb-agent"]).status, 0);
  t.is(c.exec("test", ["-e", "/var/lib/stemedb-agent/history.db"]).status, 0);
  t.is(c.exec("test", ["-e", "/etc/stemedb/agent.toml"]).status, 0);
  t.is(props(["LoadState"])["LoadState"], "not-found");
  c.sh(`bash ${REPO_ROOT}/scripts/uninstall.sh --purge`);
  t.not(c.exec("test", ["-e", "/var/lib/stemedb-agent"]).status, 0);
  t.not(c.exec("test", ["-e", "/etc/stemedb/agent.toml"]).status, 0);
});
