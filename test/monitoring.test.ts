// monitoring/: the alert rules pass promtool (syntax and their unit tests), every alert is
// tested firing and not firing and carries a severity, summary and runbook, and every metric
// the rules and the dashboard use exists in a real scrape of the agent with every collector on.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import test from "ava";
import { fetchText, hasCommand, startAgent, tempDir } from "./helpers/agent-process.js";
import { fakeSmartctl } from "./helpers/fake-smartctl.js";
import {
  DASHBOARD_FILE,
  MONITORING_DIR,
  RULES_FILE,
  RULES_TEST_FILE,
  dashboardExprs,
  metricNames,
  readmeMetricNames,
  scrapeMetricNames,
} from "./helpers/monitoring-refs.js";
import { until } from "./helpers/prometheus-server.js";
import { RUNBOOKS as STEMEDB_RUNBOOKS } from "../agent/status/runbooks.js";

const RULES = readFileSync(RULES_FILE, "utf8");
/** The runbook annotation: a StemeDB runbook's file, as `agentctl diagnose RUNBOOK` takes it, or the agent's own. */
const RUNBOOKS = new Set<string>([...STEMEDB_RUNBOOKS.map((r) => r.file), "stemedb-agent"]);

/**
 * Metrics the rules or dashboard use that a scrape of this build cannot show, and why. Anything
 * else missing from the scrape is a renamed or removed metric and fails the test.
 */
const EXPECTED_FROM_README: Record<string, string> = {};

interface RuleBlock {
  readonly alert: string;
  readonly text: string;
}
function ruleBlocks(): RuleBlock[] {
  return RULES.split(/\n(?=\s*- alert: )/)
    .slice(1)
    .map((b) => ({
      alert: /- alert: (\S+)/.exec(b)?.[1] ?? "",
      text: b.split(/\n\s*- name: /)[0] ?? b,
    }));
}

test("promtool check rules: the rule file is valid", (t) => {
  if (!hasCommand("promtool"))
    return t.pass(
      "skipped: promtool not installed (Debian package prometheus; npm test installs it as root)",
    );
  const r = spawnSync("promtool", ["check", "rules", RULES_FILE], { encoding: "utf8" });
  t.is(r.status, 0, `${r.stdout}${r.stderr}`);
  t.regex(r.stdout, new RegExp(`SUCCESS: ${ruleBlocks().length} rules found`));
});

test("promtool test rules: every unit test passes", (t) => {
  if (!hasCommand("promtool"))
    return t.pass(
      "skipped: promtool not installed (Debian package prometheus; npm test installs it as root)",
    );
  const r = spawnSync("promtool", ["test", "rules", RULES_TEST_FILE], {
    encoding: "utf8",
    cwd: MONITORING_DIR,
  });
  t.is(r.status, 0, `${r.stdout}${r.stderr}`);
  t.regex(r.stdout, /SUCCESS/);
  t.notRegex(r.stdout, /FAILED/);
});

test(
  "every alert has a severity, a summary, a description and a runbook, " +
    "and a unit test firing and one not firing",
  (t) => {
    const blocks = ruleBlocks();
    t.true(blocks.length >= 15, `${blocks.length} rules`);
    for (const b of blocks) {
      t.regex(b.text, /\n\s+severity: (critical|warning)\n/, b.alert);
      t.regex(
        b.text,
        /\n\s+summary: ".*\{\{ \$labels\.instance \}\}.*"\n/,
        `${b.alert}: summary names the node`,
      );
      t.regex(b.text, /\n\s+description: "[^"]+"\n/, b.alert);
      const runbook = /\n\s+runbook: (\S+)/.exec(b.text)?.[1] ?? "";
      t.true(RUNBOOKS.has(runbook), `${b.alert}: runbook ${runbook}`);
    }
    // alertname: X followed by exp_alerts: [] (not firing) or a list (firing).
    const tests = readFileSync(RULES_TEST_FILE, "utf8");
    const seen = new Map<string, { firing: boolean; quiet: boolean }>();
    for (const m of tests.matchAll(/alertname: (\S+)\n\s+exp_alerts:( \[\])?/g)) {
      const s = seen.get(m[1] ?? "") ?? { firing: false, quiet: false };
      if (m[2]) s.quiet = true;
      else s.firing = true;
      seen.set(m[1] ?? "", s);
    }
    for (const alert of new Set(blocks.map((b) => b.alert))) {
      t.deepEqual(
        seen.get(alert),
        { firing: true, quiet: true },
        `${alert} is tested firing and not firing`,
      );
    }
  },
);

test("the dashboard has a node picker, heatmaps of the await histograms, and valid panel layout", (t) => {
  const d = JSON.parse(readFileSync(DASHBOARD_FILE, "utf8")) as {
    uid: string;
    templating: {
      list: Array<{ name: string; type: string; definition?: string; multi?: boolean }>;
    };
    panels: Array<{
      id: number;
      type: string;
      title: string;
      targets?: Array<{ expr: string; format?: string }>;
      gridPos: { w: number; x: number };
    }>;
  };
  t.is(d.uid, "stemedb-agent");
  const instance = d.templating.list.find((v) => v.name === "instance");
  t.is(instance?.type, "query");
  t.regex(instance?.definition ?? "", /label_values\(stemedb_agent_build_info.*, instance\)/);
  const heatmaps = d.panels.filter((p) => p.type === "heatmap");
  for (const op of ["write", "flush", "read"]) {
    const h = heatmaps.find((p) =>
      p.targets?.some(
        (x) =>
          x.expr.includes("stemedb_agent_disk_await_seconds_bucket") &&
          x.expr.includes(`op="${op}"`),
      ),
    );
    t.truthy(h, `a heatmap of ${op} await`);
    t.is(h?.targets?.[0]?.format, "heatmap");
  }
  t.true(
    heatmaps.some((p) =>
      p.targets?.some((x) => x.expr.includes("stemedb_agent_fsync_probe_duration_seconds_bucket")),
    ),
  );
  for (const needle of [
    "histogram_quantile(0.99, rate(stemedb_agent_fsync_probe_duration_seconds_bucket",
    "stemedb_agent_smart_verdict",
    "stemedb_agent_kernel_io_errors_total",
    "stemedb_agent_kernel_io_incidents_total",
    "stemedb_agent_wal_segments",
    "stemedb_agent_remediation_actions_total",
    "stemedb_agent_backup_paused",
    "histogram_quantile(0.999, sum by (instance, device, op, le) (rate(stemedb_agent_bio_latency_seconds_bucket",
    "stemedb_agent_bio_inflight_oldest_seconds",
    "stemedb_agent_stall_ongoing_seconds",
    "stemedb_agent_scsi_command_errors_total",
    "stemedb_agent_kernel_log_missing_total",
  ]) {
    t.true(
      dashboardExprs().some((e) => e.includes(needle)),
      needle,
    );
  }
  for (const p of d.panels) {
    if (p.type !== "row")
      t.true(
        (p.targets ?? []).every(
          (x) => x.expr.includes('instance=~"$instance"') || x.expr.includes("$instance"),
        ),
        `${p.title} is filtered by the node picker`,
      );
    t.true(p.gridPos.x + p.gridPos.w <= 24, p.title);
  }
  t.is(new Set(d.panels.map((p) => p.id)).size, d.panels.length, "panel ids are unique");
});

test("every metric the rules and the dashboard use is documented in the README's metrics reference", (t) => {
  const readme = readmeMetricNames();
  const used = [...metricNames(RULES), ...dashboardExprs().flatMap((e) => [...metricNames(e)])];
  // A histogram is documented by its name, not by its _bucket/_sum/_count series.
  const base = new Set(used.map((n) => n.replace(/_(bucket|sum|count)$/, "")));
  t.deepEqual([...base].filter((n) => !readme.has(n)).sort(), []);
});

test(
  "every metric the rules and the dashboard use exists in a real scrape (every collector on, " +
    "SMART from a fixture)",
  async (t) => {
    const { dir } = tempDir("sa-mon-");
    const wal = join(dir, "wal");
    mkdirSync(wal);
    const smart = fakeSmartctl(dir, {
      "/dev/sda": "ata-hdd-reallocated304-passed_st3500418as_exporter.json",
      "/dev/nvme0": "nvme-healthy_samsung-mzql21t9hcjr_exporter.json",
    });
    // The database's own metrics endpoint, so the stemedb_agent_db_* gauges exist.
    const db = createServer((_req, res) =>
      res.end(
        "# TYPE stemedb_wal_fsync_duration_seconds summary\n" +
          'stemedb_wal_fsync_duration_seconds{quantile="0.99"} 0.004\n' +
          "stemedb_wal_fsync_duration_seconds_count 10\nstemedb_wal_fsync_errors_total 0\n",
      ),
    );
    await new Promise<void>((r) => db.listen(0, "127.0.0.1", r));
    t.teardown(() => db.close());
    const dbUrl = `http://127.0.0.1:${(db.address() as AddressInfo).port}/metrics`;
    const a = await startAgent({
      dir,
      extraToml:
        `[wal]\ndir = "${wal}"\n[stemedb]\ndata_dir = "${dir}"\nmetrics_url = "${dbUrl}"\n` +
        `[collectors.diskstats]\nexclude = ""\n[collectors.smart]\nsmartctl = "${smart.path}"\n` +
        `devices = ["/dev/sda", "/dev/nvme0"]\n[collectors.procio]\nunits = ["init.scope"]\n` +
        `[collectors.mounts]\ninterval = "1s"\n[collectors.wal]\ninterval = "1s"\n` +
        `[collectors.fsync_probe]\ninterval = "500ms"\n` +
        // Opt-in; its metrics are registered whichever tier it ends up on.
        `[collectors.bio]\nenabled = "auto"\n`,
    });
    t.teardown(() => a.stop("SIGKILL"));
    // Wait until SMART has polled both fixtures and the database endpoint was read, so the scrape has
    // samples, not just TYPE lines.
    const text = await until(
      "SMART verdicts and the database's p99 in /metrics",
      async () => {
        const m = (await fetchText(`${a.url}/metrics`)).text;
        return /stemedb_agent_smart_verdict\{device="sda",verdict="warn"\} 1/.test(m) &&
          /stemedb_agent_smart_verdict\{device="nvme0",verdict="pass"\} 1/.test(m) &&
          /^stemedb_agent_db_wal_fsync_p99_seconds 0\.004$/m.test(m)
          ? m
          : undefined;
      },
      30_000,
    );

    const scraped = scrapeMetricNames(text);
    const readme = readmeMetricNames();
    t.true(readme.size > 50, `README metrics reference parsed (${readme.size} names)`);
    const used = new Set([
      ...metricNames(RULES),
      ...dashboardExprs().flatMap((e) => [...metricNames(e)]),
    ]);
    t.true(used.size > 40, `${used.size} metric names used`);
    const missing = [...used].filter((n) => !scraped.has(n)).sort();
    t.deepEqual(
      missing.filter((n) => !(n in EXPECTED_FROM_README)),
      [],
      "used by monitoring/ but not in a real scrape: renamed or removed?",
    );
    for (const n of missing)
      t.log(
        `${n}: not in this build's scrape (${EXPECTED_FROM_README[n]}); README documents it: ${readme.has(n)}`,
      );
    for (const n of Object.keys(EXPECTED_FROM_README))
      if (scraped.has(n)) t.log(`${n} is now in the scrape: drop it from EXPECTED_FROM_README`);
    // The rules and the dashboard use the metrics that matter; a sanity check on the extraction itself.
    for (const n of [
      "stemedb_agent_fsync_probe_duration_seconds_bucket",
      "stemedb_agent_disk_await_seconds_bucket",
      "stemedb_agent_smart_verdict",
      "stemedb_agent_filesystem_full_in_seconds",
      "stemedb_agent_collector_up",
    ])
      t.true(used.has(n), n);
  },
);
