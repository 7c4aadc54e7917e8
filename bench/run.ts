// One command for every bench: runs each one in its own process (one after the other, so they do
// not measure each other), collects the JSON line each prints last, and prints one table with
// the targets the agent is judged on, next to node_exporter measured in the same run. Writes the
// whole result to bench/results/latest.json (and a dated copy).
// Usage: npm run bench [-- --quick] [-- --duration SECONDS]
//   --quick          ~3 minutes: 90 s long run, smaller kernel-log, WAL, compression and ballast
//                    inputs
//   --duration S     length of the long side-by-side run (default 600 s; the RSS "after a long
//                    run" and the CPU figures come from it)
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const di = argv.indexOf("--duration");
const duration = di >= 0 ? Number(argv[di + 1]) : quick ? 90 : 600;
if (!Number.isFinite(duration) || duration < 20) {
  console.error("usage: run.js [--quick] [--duration SECONDS>=20]");
  process.exit(64);
}

type Json = Record<string, unknown>;
const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const benches: Array<{ name: string; file: string; args: string[]; node?: string[] }> = [
  { name: "collectors", file: "collectors.js", args: [quick ? "0.2" : "1"] },
  { name: "kmsg", file: "kmsg.js", args: [quick ? "200000" : "1000000"] },
  { name: "errcounters", file: "errcounters.js", args: [quick ? "100" : "500"] },
  { name: "wal", file: "wal.js", args: [quick ? "20000" : "100000"], node: ["--expose-gc"] },
  { name: "wal-compress", file: "wal-compress.js", args: quick ? ["4", "8"] : ["12", "8"] },
  { name: "status", file: "status.js", args: ["30", "12"] },
  { name: "ballast", file: "ballast.js", args: quick ? ["256", "1"] : ["1024", "3"] },
  {
    name: "bio",
    file: "bio.js",
    args: quick
      ? ["--accuracy-seconds", "15", "--load-seconds", "8", "--idle-seconds", "30"]
      : ["--accuracy-seconds", "30", "--load-seconds", "15", "--idle-seconds", "120"],
  },
  {
    name: "runtimes",
    file: "runtimes.js",
    args: ["--duration", quick ? "60" : "180", "--scrapes", quick ? "200" : "500"],
  },
  {
    name: "footprint",
    file: "footprint.js",
    args: ["--duration", String(duration), "--scrapes", "1000", "--disks", "12"],
  },
];

function runOne(
  b: (typeof benches)[number],
): Promise<{ json: Json | null; seconds: number; error: string | null }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...(b.node ?? []), here(b.file), ...b.args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      for (const line of d.toString().split("\n"))
        if (line && !line.startsWith("{")) process.stderr.write(`  ${b.name} | ${line}\n`);
    });
    child.stderr.on("data", (d: Buffer) =>
      process.stderr.write(d.toString().replace(/^(?=.)/gm, `  ${b.name} ! `)),
    );
    child.on("close", (code) => {
      const line = out
        .split("\n")
        .reverse()
        .find((l) => l.startsWith(`{"bench":`));
      let json: Json | null = null;
      try {
        json = line ? (JSON.parse(line) as Json) : null;
      } catch {
        json = null;
      }
      const seconds = (performance.now() - t0) / 1000;
      resolve({
        json,
        seconds,
        error: code === 0 && json ? null : `exit ${code}${json ? "" : ", no JSON line"}`,
      });
    });
  });
}

const started = new Date();
const load = { start: loadavg()[0] ?? 0, samples: [] as number[] };
const loadTimer = setInterval(() => load.samples.push(loadavg()[0] ?? 0), 10_000);
process.stderr.write(
  `bench: ${quick ? "quick" : "full"} run, long run ${duration} s, load average (1 min) ${load.start.toFixed(2)}\n`,
);
const results: Record<string, Json | null> = {};
const runs: Record<string, { seconds: number; error: string | null }> = {};
for (const b of benches) {
  process.stderr.write(`bench: ${b.name} ...\n`);
  const r = await runOne(b);
  results[b.name] = r.json;
  runs[b.name] = { seconds: Math.round(r.seconds), error: r.error };
  if (r.error) process.stderr.write(`bench: ${b.name} failed (${r.error})\n`);
}
clearInterval(loadTimer);
const loadEnd = loadavg()[0] ?? 0;

// ---- the table ------------------------------------------------------------------------------
const get = (bench: string, path: string): unknown =>
  path
    .split(".")
    .reduce<unknown>(
      (o, k) =>
        o !== null && typeof o === "object" ? (o as Record<string, unknown>)[k] : undefined,
      results[bench],
    );
const num = (v: unknown, d = 1) =>
  typeof v === "number" && Number.isFinite(v) ? v.toFixed(d) : "n/a";
type TargetVerdict = "met" | "MISSED" | "n/a" | "";
const verdict = (ok: boolean | null): TargetVerdict =>
  ok === null ? "n/a" : ok ? "met" : "MISSED";
const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const rows: Array<{
  what: string;
  agent: string;
  ne: string;
  target: string;
  verdict: TargetVerdict;
}> = [];
const row = (what: string, agent: string, ne: string, target = "", v: TargetVerdict = "") =>
  rows.push({ what, agent, ne, target, verdict: v });

const fp = "footprint";
const cpuU = get(fp, "cpu.unscraped.agent_cpu_s_per_h");
const cpu15 = get(fp, "cpu.every15s.agent_cpu_s_per_h");
const pct = (sph: unknown) => (isNum(sph) ? ` (${((sph / 3600) * 100).toFixed(2)} %)` : "");
row(
  "CPU s/h at defaults, not scraped",
  `${num(cpuU, 1)}${pct(cpuU)}`,
  `${num(get(fp, "cpu.unscraped.ne_cpu_s_per_h"), 1)}`,
  "<= 18 s/h (0.5 %)",
  verdict(isNum(cpuU) ? cpuU <= 18 : null),
);
row(
  "CPU s/h, scraped every 15 s",
  `${num(cpu15, 1)}${pct(cpu15)}`,
  `${num(get(fp, "cpu.every15s.ne_cpu_s_per_h"), 1)}`,
  "<= 18 s/h (0.5 %)",
  verdict(isNum(cpu15) ? cpu15 <= 18 : null),
);
row(
  "CPU s/h, scraped every 1 s",
  num(get(fp, "cpu.every1s.agent_cpu_s_per_h"), 1),
  num(get(fp, "cpu.every1s.ne_cpu_s_per_h"), 1),
);
row(
  "RSS MB after warm-up",
  num(get(fp, "rss_mb.agent.after_warmup")),
  num(get(fp, "rss_mb.ne.after_warmup")),
);
const rssLong = get(fp, "rss_mb.agent.after_long_run");
row(
  `RSS MB after ${duration} s (max seen)`,
  `${num(rssLong)} (${num(get(fp, "rss_mb.agent.max"))})`,
  `${num(get(fp, "rss_mb.ne.after_long_run"))} (${num(get(fp, "rss_mb.ne.max"))})`,
  "<= 80 MB",
  verdict(isNum(rssLong) ? rssLong <= 80 : null),
);
for (const mode of ["plain", "gzip"] as const) {
  const a = get(fp, `scrape_ms.agent.${mode}.p99`);
  const n = get(fp, `scrape_ms.ne.${mode}.p99`);
  row(
    `/metrics ms p50 / p99, ${mode} (1000 keep-alive)`,
    `${num(get(fp, `scrape_ms.agent.${mode}.p50`), 2)} / ${num(a, 2)}`,
    `${num(get(fp, `scrape_ms.ne.${mode}.p50`), 2)} / ${num(n, 2)}`,
    "p99 <= node_exporter",
    verdict(isNum(a) && isNum(n) ? a <= n : null),
  );
}
row(
  "bytes per scrape, plain / gzip",
  `${num(get(fp, "scrape_bytes.agent.plain"), 0)} / ${num(get(fp, "scrape_bytes.agent.gzip"), 0)}`,
  `${num(get(fp, "scrape_bytes.ne.plain"), 0)} / ${num(get(fp, "scrape_bytes.ne.gzip"), 0)}`,
);
const kl = get("kmsg", "lines_per_second");
row(
  "kernel lines classified per s (storm)",
  num(kl, 0),
  "",
  ">= 50 000",
  verdict(isNum(kl) ? kl >= 50_000 : null),
);
row(
  "  RSS MB during the storm (before -> after)",
  `${num(get("kmsg", "rss_mib_before"))} -> ${num(get("kmsg", "rss_mib_after"))} MiB`,
  "",
);
row("  kernel faults published per s", num(get("kmsg", "publish_faults_per_second"), 0), "");
const hg = get(fp, "history.growth_mb_per_day");
row(
  "history MB/day, 12 disks (raw written/day)",
  `${num(hg)} (${num(get(fp, "history.written_mb_per_day"), 0)})`,
  "",
  "<= 30 MB/day",
  verdict(isNum(hg) ? hg <= 30 : null),
);
const bound = get(fp, "history.bound_mb");
row(
  "history MB after 30 days / bound",
  `${num(get(fp, "history.size_mb_after_30_days"))} / ${num(bound)}`,
  "",
  "bounded",
  verdict(isNum(bound) ? true : null),
);
const st = get("status", "agentctl_status_ms_p95");
row(
  `agentctl status ms median / p95 (30 d, 12 disks, ${num(get("status", "history_mib"), 0)} MiB)`,
  `${num(get("status", "agentctl_status_ms_median"), 0)} / ${num(st, 0)}`,
  "",
  "<= 150 ms (p95)",
  verdict(isNum(st) ? st <= 150 : null),
);
row(
  "  the agent's answer alone ms median / p95",
  `${num(get("status", "api_status_ms_median"), 0)} / ${num(get("status", "api_status_ms_p95"), 0)}`,
  "",
);
row(
  "WAL compression MB/s (gzip -6 on same files)",
  num(get("wal-compress", "agent_mb_per_second")),
  `gzip ${num(get("wal-compress", "gzip_mb_per_second"))}`,
);
row(
  "WAL rescan ms (segments)",
  `${num(get("wal", "rescan_ms_median"), 0)} (${num(get("wal", "segments"), 0)})`,
  "",
);
for (const fs of ["ext4", "xfs"]) {
  const b = (k: string) => num(get("ballast", `${fs}.fsync_p99_ms_median.${k}`), 2);
  row(
    `fsync p99 ms, ${fs}: idle / ballast taken / fallocate / dd 0s`,
    `${b("idle")} / ${b("agent")} / ${b("fallocate")} / ${b("dd")}`,
    "",
  );
}
type BioAcc = Record<string, number | string>;
for (const r of (get("bio", "accuracy.rows") ?? []) as BioAcc[]) {
  const ms = (k: string) => num(r[k], 2);
  row(
    `bio ${String(r["op"])} ms p50 / p99 / p99.9 (diskstats 1 s avg p99)`,
    `${ms("agent_p50_ms")} / ${ms("agent_p99_ms")} / ${ms("agent_p999_ms")} ` +
      `(${ms("diskstats_1s_avg_p99_ms")})`,
    `fio ${ms("fio_p50_ms")} / ${ms("fio_p99_ms")} / ${ms("fio_p999_ms")}`,
  );
}
const bioLoad = (get("bio", "overhead") ?? []) as BioAcc[];
for (const iops of [10_000, 100_000]) {
  const at = (t: string) => bioLoad.find((r) => r["target_iops"] === iops && r["tracer"] === t);
  const cost = (r: BioAcc | undefined) =>
    `${num(r?.["bpf_ns_per_io"], 0)} + ${num(r?.["user_ns_per_io"], 0)}`;
  row(
    `bio ns per I/O at ${iops / 1000}k IOPS, BPF + user space (achieved IOPS)`,
    `${cost(at("agent tier on"))} (${num(at("agent tier on")?.["achieved_iops"], 0)})`,
    `bpftrace biolatency ${cost(at("bpftrace biolatency"))}`,
  );
}
row(
  "bio idle agent CPU s/h, tier off / on",
  `${num(get("bio", "idle.tier_off_cpu_s_per_h"))} / ${num(get("bio", "idle.tier_on_cpu_s_per_h"))}`,
  "",
);
const colRows = (get("collectors", "rows") ?? []) as Array<{ name: string; cpu_us: number }>;
const render = colRows.find((r) => r.name.includes("render"));
const neRef = colRows.find((r) => r.name.startsWith("node_exporter"));
row(
  "diskstats 64 devices, CPU µs per sample+render",
  num(render?.cpu_us, 0),
  num(neRef?.cpu_us, 0),
);
const lagRun = get(fp, "event_loop_lag_ms.p99_worst");
const lagStatus = get("status", "event_loop_lag_ms.p99");
const lagComp = get("wal-compress", "event_loop_lag_ms.p99");
row(
  "event-loop lag ms p50 / p99 / max, long run",
  `${num(get(fp, "event_loop_lag_ms.p50_median"), 2)} / ${num(lagRun, 2)} / ` +
    `${num(get(fp, "event_loop_lag_ms.max"), 2)}`,
  "",
  "p99 <= 10 ms",
  verdict(isNum(lagRun) ? lagRun <= 10 : null),
);
row(
  "  during agentctl status on 30 d (p99 / max)",
  `${num(lagStatus, 2)} / ${num(get("status", "event_loop_lag_ms.max"), 2)}`,
  "",
  "p99 <= 10 ms",
  verdict(isNum(lagStatus) ? lagStatus <= 10 : null),
);
row(
  "  during WAL compression (p99 / max)",
  `${num(lagComp, 2)} / ${num(get("wal-compress", "event_loop_lag_ms.max"), 2)}`,
  "",
  "p99 <= 10 ms",
  verdict(isNum(lagComp) ? lagComp <= 10 : null),
);

// Each supported Node line side by side (bench/runtimes.ts); node_exporter's column is the same run's.
type RuntimeLine = {
  node: string;
  cpu_s_per_h: number;
  rss_mb: number;
  scrape_gzip_ms: { p50: number; p99: number };
  agentctl_status_ms_median: number;
};
const rtLines = (get("runtimes", "lines") as RuntimeLine[] | undefined) ?? [];
const rtNe = get("runtimes", "node_exporter") as {
  cpu_s_per_h: number;
  rss_mb: number;
  scrape_gzip_ms: { p99: number };
} | null;
const shipped = get("runtimes", "shipped");
for (const l of rtLines) {
  const tag = `Node ${l.node}${l.node === `v${String(shipped)}` ? " (shipped)" : ""}`;
  row(
    `${tag}: CPU s/h unscraped / RSS MB / gzip p99 ms / status ms`,
    `${num(l.cpu_s_per_h)} / ${num(l.rss_mb)} / ${num(l.scrape_gzip_ms.p99, 2)} / ` +
      `${num(l.agentctl_status_ms_median, 0)}`,
    rtNe
      ? `${num(rtNe.cpu_s_per_h)} / ${num(rtNe.rss_mb)} / ${num(rtNe.scrape_gzip_ms.p99, 2)}`
      : "n/a",
  );
}

const w = {
  what: Math.max(...rows.map((r) => r.what.length)),
  agent: Math.max(13, ...rows.map((r) => r.agent.length)),
  ne: Math.max(13, ...rows.map((r) => r.ne.length)),
  target: Math.max(6, ...rows.map((r) => r.target.length)),
};
const line = (a: string, b: string, c: string, d: string, e: string) =>
  `${a.padEnd(w.what)}  ${b.padStart(w.agent)}  ${c.padStart(w.ne)}  ${d.padEnd(w.target)}  ${e}`;
const out: string[] = [];
out.push(
  `stemedb-agent bench, ${quick ? "quick" : "full"} run, ${started.toISOString()}, node ` +
    `${process.version}, long run ${duration} s`,
);
const loadMax = Math.max(load.start, ...load.samples);
const busy = loadMax > 0.5 ? "  -- a busy machine: re-run on a quiet one for figures to quote" : "";
out.push(
  `load average (1 min): ${load.start.toFixed(2)} at start, ${loadMax.toFixed(2)} max, ` +
    `${loadEnd.toFixed(2)} at end${busy}`,
);
out.push(line("", "stemedb-agent", "node_exporter", "target", ""));
for (const r of rows) out.push(line(r.what, r.agent, r.ne, r.target, r.verdict));
const missed = rows.filter((r) => r.verdict === "MISSED").map((r) => r.what.trim());
const missedList = missed.length ? ` (${missed.join("; ")})` : "";
out.push(
  `targets: ${rows.filter((r) => r.verdict === "met").length} met, ` +
    `${missed.length} missed${missedList}`,
);
const failed = Object.entries(runs).filter(([, r]) => r.error);
if (failed.length)
  out.push(`benches that failed: ${failed.map(([n, r]) => `${n} (${r.error})`).join(", ")}`);

const dir = fileURLToPath(new URL("../../bench/results/", import.meta.url));
mkdirSync(dir, { recursive: true });
const file = `${dir}latest.json`;
const summary = {
  date: started.toISOString(),
  quick,
  duration_seconds: duration,
  node: process.version,
  load_average_1m: { start: load.start, max: loadMax, end: loadEnd, samples: load.samples },
  table: rows,
  runs,
  results,
};
writeFileSync(file, `${JSON.stringify(summary, null, 2)}\n`);
copyFileSync(
  file,
  `${dir}${started.toISOString().replace(/[:.]/g, "-")}${quick ? "-quick" : ""}.json`,
);
out.push(`JSON: ${file}`);
console.log(out.join("\n"));
