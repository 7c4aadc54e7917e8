// The Debian package as an operator meets it (issue 20): `npm run package` builds it (lintian
// clean), `apt-get install ./stemedb-agent_*.deb` on a minimal Debian 12 with systemd and no
// Node.js (test/helpers/debian-root.ts) starts it through notify, agentctl and a real Prometheus
// talk to it, an upgrade to a rebuilt newer version keeps history, the edited configuration and a
// running backup pause's dead-man's switch, and remove then purge undo it as Debian says.
import test from "ava";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "./helpers/container.js";
import {
  bootDebianRoot,
  type DebianMachine,
  debianRootUnavailable,
} from "./helpers/debian-root.js";
import { errorMessage } from "../core/errors.js";

const V1 = "0.1.0-1~test1";
const V2 = "0.1.0-1~test2";
const UNIT = "stemedb-agent.service";
const NODE_IN = "/opt/stemedb-agent/node/bin/node";

let why = debianRootUnavailable();
if (why === null && !existsSync("/usr/bin/prometheus"))
  why = "prometheus missing (npm test installs it as root)";
let m: DebianMachine | undefined;
let out = "";
let build = "";

test.before(async () => {
  if (why !== null) return;
  out = mkdtempSync(join(tmpdir(), "sa-deb-"));
  // No rebuild under the other test files: the suite runs on the last build.
  const b = spawnSync(
    "bash",
    [join(REPO_ROOT, "scripts/package.sh"), "--out", out, "--version", V1, "--no-build"],
    { encoding: "utf8", timeout: 900_000 },
  );
  build = `${b.stdout}${b.stderr}`;
  if (b.status !== 0)
    throw new Error(`scripts/package.sh failed (${b.status}):\n${build.slice(-4000)}`);
  // The newer version: the same tree rebuilt with a higher version, as a release would be.
  const re = spawnSync(
    "sh",
    [
      "-c",
      `set -e; cd ${out}; dpkg-deb -R stemedb-agent_${V1}_amd64.deb v2; ` +
        `sed -i 's/^Version: .*/Version: ${V2}/' v2/DEBIAN/control; ` +
        `dpkg-deb --root-owner-group -Zgzip -z1 --build v2 stemedb-agent_${V2}_amd64.deb >/dev/null; rm -rf v2`,
    ],
    { encoding: "utf8", timeout: 600_000 },
  );
  if (re.status !== 0) throw new Error(`rebuilding as ${V2} failed: ${re.stderr}`);
  try {
    m = await bootDebianRoot(`sadeb${process.pid}`, {
      [out]: "/debs",
      "/usr/bin/prometheus": "/usr/local/bin/prometheus",
    });
  } catch (e) {
    why = `the Debian root did not boot: ${errorMessage(e).slice(0, 400)}`;
  }
});

test.after.always(async () => {
  await m?.stop();
  if (out !== "") rmSync(out, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, pred: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return;
    await sleep(500);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}
function show(unit: string, props: readonly string[]): Record<string, string> {
  const r = m!.exec("systemctl", ["show", unit, ...props.map((p) => `--property=${p}`)]);
  return Object.fromEntries(
    r.stdout
      .split("\n")
      .filter((l) => l.includes("="))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}
/** JavaScript run by the packaged node inside (the root has no other). */
function js(code: string): string {
  return m!.sh(`cd /opt/stemedb-agent && ${NODE_IN} -e '${code.replace(/'/g, "'\\''")}'`).trim();
}
const HISTORY = "/var/lib/stemedb-agent/history.db";
const samples = (where = "") =>
  js(
    `const D = require("better-sqlite3"); const db = new D("${HISTORY}", { readonly: true });` +
      `console.log(JSON.stringify(db.prepare("select count(*) n, max(ts) last from samples ${where}").get()))`,
  );

test.serial("npm run package: a lintian-clean .deb with the runtime, unit and conffile", (t) => {
  if (why !== null) return t.pass(`skipped: ${why}`);
  t.regex(build, /lintian: clean/);
  const deb = join(out, `stemedb-agent_${V1}_amd64.deb`);
  const info = spawnSync("dpkg-deb", ["--info", deb], { encoding: "utf8" }).stdout;
  t.regex(info, /Depends: .*libstdc\+\+6.*systemd/);
  t.notRegex(info, /nodejs/);
  const files = spawnSync("dpkg-deb", ["--contents", deb], { encoding: "utf8" }).stdout;
  for (const f of [
    "./opt/stemedb-agent/node/bin/node",
    "./opt/stemedb-agent/dist/agent/main.js",
    "./opt/stemedb-agent/dist/agentctl.cjs",
    "./opt/stemedb-agent/build/Release/sd_notify.node",
    "./opt/stemedb-agent/node_modules/better-sqlite3/prebuilds/linux-x64.node",
    "./opt/stemedb-agent/node_modules/systeminformation/package.json",
    "./opt/stemedb-agent/node_modules/tar-stream/package.json",
    "./usr/bin/stemedb-agent",
    "./usr/bin/agentctl",
    "./usr/lib/systemd/system/stemedb-agent.service",
    "./usr/lib/sysusers.d/stemedb-agent.conf",
    "./usr/lib/tmpfiles.d/stemedb-agent.conf",
    "./etc/stemedb/agent.toml",
    "./usr/share/stemedb-agent/stemedb-agent.rules.yml",
    "./usr/share/stemedb-agent/grafana/stemedb-agent.json",
    "./usr/share/doc/stemedb-agent/copyright",
  ])
    t.true(files.includes(` ${f}\n`), f);
  t.false(/node_modules\/(typescript|ava|eslint)\//.test(files), "no dev dependencies");
  const conffiles = spawnSync("dpkg-deb", ["--field", deb, "Package"], { encoding: "utf8" });
  t.is(conffiles.stdout.trim(), "stemedb-agent");
  t.log(
    `${(statSync(deb).size / 2 ** 20).toFixed(1)} MiB package, installed ` +
      `${(Number(/Installed-Size: (\d+)/.exec(info)?.[1]) / 1024).toFixed(1)} MiB`,
  );
});

test.serial(
  "apt-get install on Debian 12 without Node.js: active through notify, enabled",
  async (t) => {
    if (why !== null || m === undefined) return t.pass(`skipped: ${why ?? "no machine"}`);
    t.timeout(300_000);
    t.not(m.exec("sh", ["-c", "command -v node nodejs"]).status, 0, "the root has no Node.js");
    const r = m.exec(
      "apt-get",
      ["install", "-y", "--no-install-recommends", `/debs/stemedb-agent_${V1}_amd64.deb`],
      240_000,
    );
    t.is(r.status, 0, r.stdout + r.stderr);
    await until("active", () => show(UNIT, ["ActiveState"])["ActiveState"] === "active", 60_000);
    const p = show(UNIT, [
      "Type",
      "NotifyAccess",
      "SubState",
      "StatusText",
      "UnitFileState",
      "MainPID",
    ]);
    t.is(p["Type"], "notify");
    t.is(p["NotifyAccess"], "main"); // active(running) under NotifyAccess=main: READY=1 came from the agent
    t.is(p["SubState"], "running");
    t.regex(p["StatusText"] ?? "", /agent \w+; \d+ collectors/);
    t.is(p["UnitFileState"], "enabled");
    t.is(m.sh(`readlink /proc/${p["MainPID"]}/exe`).trim(), NODE_IN);
    t.regex(m.sh("stemedb-agent --version"), /^stemedb-agent \d/);
    t.regex(m.sh("getent group stemedb-agent"), /^stemedb-agent:/);
    t.is(m.sh("stat -c '%a %U' /var/lib/stemedb-agent").trim(), "700 root");
    t.regex(
      m.sh("dpkg-query -W -f='${Conffiles}' stemedb-agent"),
      /\/etc\/stemedb\/agent\.toml [0-9a-f]{32}/,
    );
    t.log(`installed footprint: ${m.sh("du -sh --apparent-size /opt/stemedb-agent").trim()}`);
  },
);

test.serial("agentctl status answers; agentctl bundle --list loads its external modules", (t) => {
  if (why !== null || m === undefined) return t.pass(`skipped: ${why ?? "no machine"}`);
  const st = m.exec("agentctl", ["status", "--json"]);
  const report = JSON.parse(st.stdout) as {
    schema: number;
    agent: { pid: number; config_file: string };
  };
  t.is(report.schema, 1);
  t.is(String(report.agent.pid), show(UNIT, ["MainPID"])["MainPID"] ?? "");
  t.is(report.agent.config_file, "/etc/stemedb/agent.toml");
  t.regex(m.exec("agentctl", ["status"]).stdout, /\S/);
  const list = m.exec("agentctl", ["bundle", "--list"]);
  t.is(list.status, 0, list.stderr);
  t.regex(list.stdout, /inventory/i);
});

test.serial("a real Prometheus scrapes it, with the packaged alert rules loaded", async (t) => {
  if (why !== null || m === undefined) return t.pass(`skipped: ${why ?? "no machine"}`);
  t.timeout(120_000);
  m.sh(
    "mkdir -p /var/tmp/prom && printf '%s\\n' 'global: {scrape_interval: 1s, evaluation_interval: 1s}' " +
      "'rule_files: [/usr/share/stemedb-agent/stemedb-agent.rules.yml]' " +
      "'scrape_configs: [{job_name: stemedb-agent, static_configs: [{targets: [\"127.0.0.1:9735\"]}]}]' " +
      "> /var/tmp/prom/prometheus.yml && systemd-run --unit=prom-test /usr/local/bin/prometheus " +
      "--config.file=/var/tmp/prom/prometheus.yml --storage.tsdb.path=/var/tmp/prom/data " +
      "--web.listen-address=127.0.0.1:19090",
  );
  const q = (path: string) =>
    js(
      `fetch("http://127.0.0.1:19090${path}").then((r) => r.text()).then(console.log, () => console.log("{}"))`,
    );
  let last = "";
  await until(
    "Prometheus scraping the agent",
    () =>
      /"value":\[[\d.]+,"1"\]/.test(
        (last = q("/api/v1/query?query=up%7Bjob%3D%22stemedb-agent%22%7D")),
      ),
    90_000,
  );
  const built = q("/api/v1/query?query=stemedb_agent_build_info");
  t.regex(built, /node_version/);
  const rules = q("/api/v1/rules");
  t.regex(rules, /"name":"StemeDB/);
  t.log(`up: ${last.slice(0, 160)}`);
  m.exec("systemctl", ["stop", "prom-test"]);
});

test.serial(
  "upgrade to a rebuilt newer version: started, history rows and the edited config kept, and a " +
    "backup pause left by a killed agent still ends by its dead-man's switch",
  async (t) => {
    if (why !== null || m === undefined) return t.pass(`skipped: ${why ?? "no machine"}`);
    t.timeout(300_000);
    const mm = m;
    mm.sh(
      "printf '[Service]\\nExecStart=/bin/sleep infinity\\n' > /etc/systemd/system/backup.service && " +
        "systemctl daemon-reload && systemctl start backup.service",
    );
    // The operator's edit, which the upgrade must keep (a conffile the package did not change).
    mm.sh(
      `sed -i 's/^#log_level = "info"/log_level = "debug"  # edited on this node/' /etc/stemedb/agent.toml`,
    );
    t.regex(mm.sh("cat /etc/stemedb/agent.toml"), /^log_level = "debug"/m);
    const edited = mm.sh("cat /etc/stemedb/agent.toml");
    // A pause running when the agent dies with no net but PID 1's dead-man's switch (no
    // ExecStopPost=, no restart), then the upgrade. A graceful stop resumes what the agent paused,
    // so this is the case where only the switch stands between the backup and a freeze forever.
    mm.sh(
      "mkdir -p /etc/systemd/system/stemedb-agent.service.d && " +
        "printf '[Service]\\nExecStopPost=\\nRestart=no\\n' " +
        "> /etc/systemd/system/stemedb-agent.service.d/only-switch.conf && systemctl daemon-reload && " +
        "systemctl restart stemedb-agent",
    );
    await until("history rows", () => (JSON.parse(samples()) as { n: number }).n > 0, 60_000);
    const before = JSON.parse(samples()) as { n: number; last: number };
    await until(
      "agent up",
      () => /"schema"/.test(mm.exec("agentctl", ["status", "--json"]).stdout),
      20_000,
    );
    const pid0 = show(UNIT, ["MainPID"])["MainPID"];
    const pause = mm.exec("agentctl", ["backups", "pause", "backup.service", "--for", "1m"]);
    t.is(pause.status, 0, pause.stdout + pause.stderr);
    const t0 = Date.now();
    t.is(show("backup.service", ["FreezerState"])["FreezerState"], "frozen");
    mm.sh("systemctl kill --signal=SIGKILL stemedb-agent");
    await until(
      "the agent dead",
      () => show(UNIT, ["ActiveState"])["ActiveState"] !== "active",
      20_000,
    );
    t.is(show("backup.service", ["FreezerState"])["FreezerState"], "frozen", "nothing resumed it");
    const timers = () =>
      mm.exec("systemctl", ["list-units", "--all", "--no-legend", "stemedb-agent-resume-*"]).stdout;
    t.regex(timers(), /backup_service\.timer/, "the switch is armed in PID 1");

    const r = mm.exec("apt-get", ["install", "-y", `/debs/stemedb-agent_${V2}_amd64.deb`], 240_000);
    t.is(r.status, 0, r.stdout + r.stderr);
    t.is(mm.sh("dpkg-query -W -f='${Version}' stemedb-agent").trim(), V2);
    await until(
      "active again",
      () => show(UNIT, ["ActiveState"])["ActiveState"] === "active",
      60_000,
    );
    t.not(show(UNIT, ["MainPID"])["MainPID"], pid0, "started by the upgrade");
    t.is(mm.sh("cat /etc/stemedb/agent.toml"), edited, "the edited configuration is kept");
    t.false(mm.exec("test", ["-e", "/etc/stemedb/agent.toml.dpkg-dist"]).status === 0);
    const kept = JSON.parse(samples(`where ts <= ${before.last}`)) as { n: number };
    t.true(
      kept.n >= before.n,
      `every history row from before the upgrade is there (${kept.n} >= ${before.n})`,
    );
    t.is(show("backup.service", ["FreezerState"])["FreezerState"], "frozen", "still paused");
    t.regex(timers(), /backup_service\.timer/, "the switch is still armed after the upgrade");
    await until(
      "the dead-man's switch resumed the backup",
      () => show("backup.service", ["FreezerState"])["FreezerState"] === "running",
      120_000,
    );
    t.true(Date.now() - t0 > 45_000, "at the pause's end, not at the upgrade");
    const fired = mm.exec("journalctl", [
      "--no-pager",
      "-o",
      "cat",
      "-u",
      "stemedb-agent-resume-backup_service.service",
    ]);
    t.log(
      `resumed ${((Date.now() - t0) / 1000).toFixed(1)} s after a 1 min pause, across the upgrade; ` +
        `the switch's unit logged ${fired.stdout.trim().split("\n").filter(Boolean).length} line(s)`,
    );
    mm.sh("rm -r /etc/systemd/system/stemedb-agent.service.d && systemctl daemon-reload");
  },
);

test.serial("remove: stopped and its unit gone; history and configuration kept", (t) => {
  if (why !== null || m === undefined) return t.pass(`skipped: ${why ?? "no machine"}`);
  t.timeout(180_000);
  const r = m.exec("apt-get", ["remove", "-y", "stemedb-agent"], 120_000);
  t.is(r.status, 0, r.stdout + r.stderr);
  const p = show(UNIT, ["ActiveState", "LoadState", "UnitFileState"]);
  t.not(p["ActiveState"], "active");
  t.not(p["UnitFileState"], "enabled");
  t.not(p["LoadState"], "loaded");
  for (const gone of ["/opt/stemedb-agent", "/usr/bin/stemedb-agent", "/usr/bin/agentctl"])
    t.not(m.exec("test", ["-e", gone]).status, 0, gone);
  t.is(m.exec("test", ["-e", HISTORY]).status, 0, "history kept");
  t.is(m.exec("test", ["-e", "/etc/stemedb/agent.toml"]).status, 0, "configuration kept");
});

test.serial("purge: state, configuration and the service's enablement removed", (t) => {
  if (why !== null || m === undefined) return t.pass(`skipped: ${why ?? "no machine"}`);
  const r = m.exec("apt-get", ["purge", "-y", "stemedb-agent"], 120_000);
  t.is(r.status, 0, r.stdout + r.stderr);
  for (const gone of [
    "/var/lib/stemedb-agent",
    "/etc/stemedb",
    "/etc/systemd/system/multi-user.target.wants/stemedb-agent.service",
    "/etc/systemd/system/stemedb-agent.service",
  ])
    t.not(m.exec("test", ["-e", gone]).status, 0, gone);
  t.not(m.exec("dpkg-query", ["-W", "stemedb-agent"]).status, 0);
});
