// What monitoring/ refers to: metric names in the alert rules and the Grafana dashboard, the
// dashboard's PromQL, and the metric names the README's "Metrics reference" documents.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const MONITORING_DIR = fileURLToPath(new URL("../../../monitoring/", import.meta.url));
export const RULES_FILE = `${MONITORING_DIR}stemedb-agent.rules.yml`;
export const RULES_TEST_FILE = `${MONITORING_DIR}stemedb-agent.rules.test.yml`;
export const DASHBOARD_FILE = `${MONITORING_DIR}grafana/stemedb-agent.json`;
export const README_FILE = fileURLToPath(new URL("../../../README.md", import.meta.url));

/** Names of the agent's own metrics (stemedb_agent_*, process_*, nodejs_*) in a PromQL text. */
export function metricNames(text: string): Set<string> {
  return new Set(text.match(/\b(?:stemedb_agent|process|nodejs)_[a-z0-9_]+\b/g) ?? []);
}

interface Panel {
  readonly targets?: ReadonlyArray<{ readonly expr?: string }>;
  readonly panels?: readonly Panel[];
}
interface Dashboard {
  readonly panels: readonly Panel[];
  readonly templating: { readonly list: ReadonlyArray<{ readonly definition?: string }> };
}

/** Every PromQL expression of the dashboard: panel targets and template variable queries. */
export function dashboardExprs(file = DASHBOARD_FILE): string[] {
  const d = JSON.parse(readFileSync(file, "utf8")) as Dashboard;
  const out: string[] = [];
  const walk = (ps: readonly Panel[]) => {
    for (const p of ps) {
      for (const t of p.targets ?? []) if (t.expr) out.push(t.expr);
      walk(p.panels ?? []);
    }
  };
  walk(d.panels);
  for (const v of d.templating.list) if (v.definition) out.push(v.definition);
  return out;
}

/** A dashboard expression made runnable: variables replaced by match-anything values. */
export function concreteExpr(expr: string, job = "stemedb-agent"): string {
  return expr
    .replace(/\$__rate_interval/g, "1m")
    .replace(/\$job/g, job)
    .replace(/\$instance/g, ".+")
    .replace(/\$device/g, ".+");
}

/** Metric names documented in the README's "Metrics reference" (abbreviated `…_x` forms expanded). */
export function readmeMetricNames(file = README_FILE): Set<string> {
  const text = readFileSync(file, "utf8");
  const start = text.indexOf("## Metrics reference");
  if (start < 0) return new Set();
  const next = text.indexOf("\n## ", start + 1);
  const section = text.slice(start, next < 0 ? undefined : next);
  const names = new Set<string>();
  for (const line of section.split("\n")) {
    const codes = [...line.matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? "");
    let prefix = "";
    for (const c of codes) {
      const full = /^((?:stemedb_agent|process|nodejs)_[a-z0-9_]+)$/.exec(c);
      if (full?.[1]) {
        names.add(full[1]);
        // `stemedb_agent_disk_reads_completed_total`, `…_reads_merged_total`: the prefix is up to the group ("disk_").
        prefix = /^(stemedb_agent_[a-z]+_)/.exec(full[1])?.[1] ?? "";
        continue;
      }
      const abbrev = /^…_([a-z0-9_]+)$/.exec(c);
      if (abbrev?.[1] && prefix) names.add(prefix + abbrev[1]);
    }
  }
  return names;
}

/**
 * Metric names exposed in a scrape: sample names and the names of # TYPE lines (a labelled
 * metric with no sample yet still has its TYPE), with _bucket/_sum/_count of histograms and
 * summaries.
 */
export function scrapeMetricNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type?.[1]) {
      names.add(type[1]);
      if (type[2] === "histogram" || type[2] === "summary")
        for (const s of ["_bucket", "_sum", "_count"]) names.add(type[1] + s);
      continue;
    }
    const sample = /^([a-zA-Z_:][\w:]*)[{ ]/.exec(line);
    if (sample?.[1]) names.add(sample[1]);
  }
  return names;
}
