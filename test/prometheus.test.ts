// End to end: a real Prometheus server scrapes a running agent every second, with the alert
// rules loaded; PromQL over its HTTP API sees the agent's series, the quantiles of the await
// and fsync histograms, every rule evaluates cleanly and every dashboard query runs.
import { existsSync, readFileSync } from "node:fs";
import test from "ava";
import { startAgent, tempDir } from "./helpers/agent-process.js";
import { RULES_FILE, concreteExpr, dashboardExprs } from "./helpers/monitoring-refs.js";
import { PROMETHEUS_BIN, startPrometheus, until } from "./helpers/prometheus-server.js";

test(
  "a real Prometheus scrapes the agent: series, histogram_quantile over the disk await and fsync " +
    "histograms, rules healthy, dashboard queries run",
  async (t) => {
    if (!existsSync(PROMETHEUS_BIN))
      return t.pass(
        "skipped: prometheus not installed (Debian package prometheus; npm test installs it as root)",
      );
    const { dir, cleanup } = tempDir("sa-prom-");
    t.teardown(cleanup);
    // Every block device of this machine, loop devices included; the fsync probe in a directory on
    // the root disk writes and flushes it twice a second, so the write-await histogram of that disk
    // gets an observation in most seconds.
    const a = await startAgent({
      dir,
      extraToml:
        `[wal]\ndir = "${dir}"\n[stemedb]\ndata_dir = "${dir}"\n[collectors.diskstats]\nexclude = ""\n` +
        `[collectors.fsync_probe]\ninterval = "500ms"\ndirs = ["${dir}"]\n[collectors.smart]\n` +
        `enabled = false\n[collectors.kmsg]\nenabled = false\n[collectors.procio]\nenabled = false\n`,
    });
    t.teardown(() => a.stop("SIGKILL"));
    const prom = await startPrometheus(dir, {
      targets: [`127.0.0.1:${a.port}`],
      job: "stemedb-agent",
      scrapeInterval: "1s",
      ruleFiles: [RULES_FILE],
    });
    t.teardown(() => prom.stop());

    const target = `127.0.0.1:${a.port}`;
    await until(
      "the agent target up in Prometheus",
      async () =>
        (await prom.query('up{job="stemedb-agent"} == 1')).length === 1 ? true : undefined,
      30_000,
    );

    // The agent's own series, with the target's labels.
    const build = await prom.query("stemedb_agent_build_info");
    t.is(build.length, 1);
    t.is(build[0]?.metric["instance"], target);
    t.regex(build[0]?.metric["version"] ?? "", /^\d+\.\d+\.\d+$/);
    const series = Number(
      (await prom.query('count({job="stemedb-agent", __name__=~"stemedb_agent_.+"})'))[0]?.value[1],
    );
    t.true(series > 100, `${series} stemedb_agent_ series`);
    const devices = (
      await prom.query('stemedb_agent_disk_reads_completed_total{job="stemedb-agent"}')
    ).map((s) => s.metric["device"]);
    t.true(
      devices.some((d) => d?.startsWith("loop")),
      `loop devices included: ${devices.join(" ")}`,
    );

    // p99 of per-second write awaits, per device, from the real histogram through a real rate().
    const p99 = await until(
      "histogram_quantile over stemedb_agent_disk_await_seconds_bucket",
      async () => {
        const r = await prom.query(
          "histogram_quantile(0.99, sum by (device, le) " +
            '(rate(stemedb_agent_disk_await_seconds_bucket{job="stemedb-agent",op="write"}[15s])))',
        );
        const ok = r.filter((s) => Number.isFinite(Number(s.value[1])));
        return ok.length > 0 ? ok : undefined;
      },
    );
    for (const s of p99) {
      const v = Number(s.value[1]);
      t.true(
        v > 0 && v <= 10,
        `write await p99 on ${s.metric["device"]}: ${v} s (buckets run 100 µs–10 s)`,
      );
      t.true(
        devices.includes(s.metric["device"]),
        `${s.metric["device"]} is a device the agent exports`,
      );
    }
    // The fsync probe p99 exactly as the WAL fsync alerts compute it.
    const fsync = await until("histogram_quantile over the fsync probe histogram", async () => {
      const r = await prom.query(
        'histogram_quantile(0.99, rate(stemedb_agent_fsync_probe_duration_seconds_bucket{job="stemedb-agent"}[15s]))',
      );
      return r.length === 1 && Number.isFinite(Number(r[0]?.value[1])) ? r[0] : undefined;
    });
    t.is(fsync.metric["instance"], target);
    t.true(Number(fsync.value[1]) > 0);

    // The alert rules are loaded and every one evaluates without error on the real series.
    interface Rule {
      name: string;
      health: string;
      lastError?: string;
    }
    const rules = await until("every rule evaluated at least once", async () => {
      const r = await prom.api<{ groups: Array<{ name: string; rules: Rule[] }> }>("rules");
      const all = r.data.groups.flatMap((g) => g.rules);
      return all.length > 0 && all.every((x) => x.health !== "unknown") ? all : undefined;
    });
    const expected = [
      ...new Set(
        [...readFileSync(RULES_FILE, "utf8").matchAll(/- alert: (\S+)/g)].map((m) => m[1]),
      ),
    ].sort();
    t.deepEqual([...new Set(rules.map((r) => r.name))].sort(), expected);
    t.deepEqual(
      rules.filter((r) => r.health !== "ok").map((r) => `${r.name}: ${r.lastError ?? r.health}`),
      [],
    );
    // A healthy agent scraped every second raises none of the agent's own alerts.
    t.deepEqual(await prom.query('ALERTS{alertname=~"StemeDBAgent.*"}'), []);

    // Every dashboard query parses and runs against real data (variables filled in).
    const failures: string[] = [];
    for (const expr of dashboardExprs()) {
      if (expr.startsWith("label_values(")) {
        const m = /^label_values\((.*), (\w+)\)$/.exec(concreteExpr(expr));
        const r = await prom.api<string[]>(`label/${m?.[2] ?? ""}/values`, {
          "match[]": m?.[1] ?? "",
        });
        if (r.status !== "success" || r.data.length === 0)
          failures.push(`${expr}: ${r.error ?? "no values"}`);
        continue;
      }
      const r = await prom.api("query", { query: concreteExpr(expr) });
      if (r.status !== "success") failures.push(`${expr}: ${r.error ?? ""}`);
    }
    t.deepEqual(failures, []);
    const instances = await prom.api<string[]>("label/instance/values", {
      "match[]": "stemedb_agent_build_info",
    });
    t.deepEqual(instances.data, [target], "the node picker lists the agent");
  },
);
