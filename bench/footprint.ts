// Footprint at defaults, side by side in the same run with node_exporter (diskstats + filesystem
// collectors only): CPU seconds per hour unscraped, scraped every 15 s and every 1 s; RSS after
// warm-up and after the long run; /metrics latency p50/p99 over keep-alive scrapes (the same
// client, interleaved agent/node_exporter, plain and gzip); bytes per scrape; the agent's
// event-loop lag (its own 10 s windows, read from its /metrics); and the history growth per day
// projected for 12 disks from what the agent really recorded during the run.
// Usage: node dist/bench/footprint.js [--duration SECONDS] [--scrapes N] [--disks N]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import Database from "better-sqlite3";
import { loadConfig } from "../core/config/load.js";
import { migrate } from "../core/history/migrations.js";
import {
  metricValue,
  percentile,
  procSample,
  round,
  type Scrape,
  ScrapeClient,
  sleep,
  startAgent,
  numberArg,
  startNodeExporter,
} from "./lib.js";

const arg = numberArg;
const duration = arg("duration", 600);
const burst = arg("scrapes", 1000);
const disks = arg("disks", 12);
const warmupS = duration >= 300 ? 30 : 15;
const phaseS = { unscraped: duration * 0.4, every15s: duration * 0.3, every1s: duration * 0.3 };
const log = (m: string) => process.stderr.write(`footprint: ${m}\n`);

const agent = await startAgent("bench-fp-");
const ne = await startNodeExporter();
const aClient = new ScrapeClient(agent.port);
const nClient = ne ? new ScrapeClient(ne.port) : null;
log(
  `agent pid ${agent.pid} on :${agent.port}, node_exporter ` +
    `${ne ? `pid ${ne.pid} on :${ne.port}` : "not installed"}; ${duration} s long run after ${warmupS} ` +
    `s warm-up`,
);

// RSS of both every 5 s, for the whole run.
const rssTrace: Array<{ t: number; agent: number; ne: number | null }> = [];
const t00 = performance.now();
const tracer = setInterval(() => {
  try {
    rssTrace.push({
      t: (performance.now() - t00) / 1000,
      agent: procSample(agent.pid).rssMB,
      ne: ne ? procSample(ne.pid).rssMB : null,
    });
  } catch {
    // a process went away; the run reports it below
  }
}, 5000);

// The agent's own event-loop delay windows (10 s each), deduplicated, from every agent scrape.
const lagWindows: Array<{ p50: number; p99: number; max: number }> = [];
let lastKey = "";
function noteLag(s: Scrape, gz: boolean) {
  const text = (gz ? gunzipSync(s.body) : s.body).toString();
  const w = { p50: 0, p99: 0, max: 0 };
  for (const k of ["p50", "p99", "max"] as const)
    w[k] = (metricValue(text, `stemedb_agent_event_loop_delay_seconds{stat="${k}"}`) ?? NaN) * 1000;
  const key = `${w.p50}|${w.p99}|${w.max}`;
  if (key !== lastKey && w.max > 0) lagWindows.push(w);
  lastKey = key;
}

await sleep(warmupS * 1000);
const warm = { agent: procSample(agent.pid), ne: ne ? procSample(ne.pid) : null };
const warmNe = warm.ne ? `, node_exporter ${warm.ne.rssMB.toFixed(1)} MB` : "";
log(`after warm-up: agent RSS ${warm.agent.rssMB.toFixed(1)} MB${warmNe}`);

async function every(
  client: ScrapeClient,
  intervalS: number,
  untilMs: number,
  isAgent: boolean,
): Promise<number> {
  let n = 0;
  let next = performance.now();
  while (next < untilMs) {
    const s = await client.scrape(true); // Prometheus asks for gzip
    if (isAgent) noteLag(s, true);
    n++;
    next += intervalS * 1000;
    await sleep(Math.max(0, next - performance.now()));
  }
  return n;
}

interface PhaseCpu {
  seconds: number;
  agent_cpu_s_per_h: number;
  ne_cpu_s_per_h: number | null;
  agent_scrapes: number;
  ne_scrapes: number;
}
async function phase(name: string, seconds: number, intervalS: number | null): Promise<PhaseCpu> {
  const a0 = procSample(agent.pid).cpu;
  const n0 = ne ? procSample(ne.pid).cpu : 0;
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  let counts = [0, 0];
  if (intervalS === null) await sleep(seconds * 1000);
  else
    counts = await Promise.all([
      every(aClient, intervalS, until, true),
      nClient ? every(nClient, intervalS, until, false) : Promise.resolve(0),
    ]);
  const wall = (performance.now() - t0) / 1000;
  const r = {
    seconds: round(wall, 0),
    agent_cpu_s_per_h: round(((procSample(agent.pid).cpu - a0) / wall) * 3600, 2),
    ne_cpu_s_per_h: ne ? round(((procSample(ne.pid).cpu - n0) / wall) * 3600, 2) : null,
    agent_scrapes: counts[0] ?? 0,
    ne_scrapes: counts[1] ?? 0,
  };
  log(
    `${name}: agent ${r.agent_cpu_s_per_h} CPU ` +
      `s/h${ne ? `, node_exporter ${r.ne_cpu_s_per_h} CPU s/h` : ""} over ${r.seconds} s`,
  );
  return r;
}

const cpu = {
  unscraped: await phase("unscraped", phaseS.unscraped, null),
  every15s: await phase("scraped every 15 s", phaseS.every15s, 15),
  every1s: await phase("scraped every 1 s", phaseS.every1s, 1),
};
const longRun = { agent: procSample(agent.pid), ne: ne ? procSample(ne.pid) : null };
clearInterval(tracer);

// Latency: `burst` scrapes each, plain then gzip, interleaved agent / node_exporter.
const lat = {
  agent: { plain: [] as number[], gzip: [] as number[] },
  ne: { plain: [] as number[], gzip: [] as number[] },
};
const bytes = { agent: { plain: 0, gzip: 0 }, ne: { plain: 0, gzip: 0 } };
for (const mode of ["plain", "gzip"] as const) {
  for (let i = 0; i < burst; i++) {
    const a = await aClient.scrape(mode === "gzip");
    lat.agent[mode].push(a.ms);
    bytes.agent[mode] = a.bytes;
    if (i % 50 === 0) noteLag(a, mode === "gzip");
    if (nClient) {
      const n = await nClient.scrape(mode === "gzip");
      lat.ne[mode].push(n.ms);
      bytes.ne[mode] = n.bytes;
    }
  }
}
await sleep(10_500); // the window holding the end of the burst closes
noteLag(await aClient.scrape(false), false);
const afterBurst = { agent: procSample(agent.pid), ne: ne ? procSample(ne.pid) : null };
aClient.close();
nClient?.close();
await agent.stop();
await ne?.stop();
const ms = (v: number[]) => ({
  p50: round(percentile(v, 50), 2),
  p99: round(percentile(v, 99), 2),
  max: round(Math.max(...v), 2),
});

// History: what the agent recorded during the run, projected to `disks` disks for a day and 30 days.
const history = projectHistory(join(agent.stateDir, "history.db"), disks);
rmSync(agent.root, { recursive: true, force: true });

function projectHistory(path: string, nDisks: number) {
  const src = new Database(path, { readonly: true });
  const series = src.prepare("SELECT id, metric, labels FROM series").all() as Array<{
    id: number;
    metric: string;
    labels: string;
  }>;
  const rate = new Map<number, number>();
  for (const r of src
    .prepare(
      "SELECT series_id AS id, count(*) AS n, min(ts) AS t0, max(ts) AS t1 FROM samples GROUP BY series_id",
    )
    .all() as Array<{ id: number; n: number; t0: number; t1: number }>) {
    rate.set(r.id, r.t1 > r.t0 ? (r.n - 1) / ((r.t1 - r.t0) / 1000) : 0);
  }
  const span = src.prepare("SELECT min(ts) AS t0, max(ts) AS t1 FROM samples").get() as {
    t0: number;
    t1: number;
  };
  const spanS = Math.max(1, (span.t1 - span.t0) / 1000);
  const ioTopPerS = (src.prepare("SELECT count(*) FROM io_top").pluck().get() as number) / spanS;
  const eventsPerS =
    (src
      .prepare("SELECT count(*) FROM events WHERE kind NOT LIKE 'agent.%' AND ts > ?")
      .pluck()
      .get(span.t0 + warmupS * 1000) as number) / spanS;
  src.close();
  const disk = series.filter((s) => s.metric.startsWith("disk_"));
  const devices = new Set(disk.map((s) => (JSON.parse(s.labels) as { device?: string }).device));
  // A busy disk records every disk metric at the sampling rate (an idle one skips awaits with no
  // I/O), so each is projected at the fastest rate any disk series was recorded at.
  const diskRate = Math.max(0, ...disk.map((s) => rate.get(s.id) ?? 0));
  const perDisk = new Map<string, number>(disk.map((s) => [s.metric, diskRate]));
  const plan: Array<{ metric: string; labels: string; perS: number }> = series
    .filter((s) => !s.metric.startsWith("disk_"))
    .map((s) => ({ metric: s.metric, labels: s.labels, perS: rate.get(s.id) ?? 0 }));
  for (let d = 0; d < nDisks; d++)
    for (const [metric, perS] of perDisk)
      plan.push({
        metric,
        labels: JSON.stringify({ device: `sd${String.fromCharCode(97 + d)}` }),
        perS,
      });

  // The same schema and pragmas, filled with one hour of raw samples and one day of everything else.
  const dir = mkdtempSync(join(tmpdir(), "bench-hist-"));
  const db = new Database(join(dir, "history.db"));
  db.pragma("auto_vacuum = INCREMENTAL");
  db.pragma("journal_mode = WAL");
  migrate(db);
  const size = (tables: string[]) =>
    (db
      .prepare(
        `SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN (${tables.map(() => "?").join(",")})`,
      )
      .pluck()
      .get(...tables) as number) / 1e6;
  const now = Date.now() - (Date.now() % 3_600_000);
  const insS = db.prepare("INSERT INTO series (metric, labels) VALUES (?, ?)");
  const insRaw = db.prepare("INSERT INTO samples (series_id, ts, value) VALUES (?, ?, ?)");
  const insRoll = db.prepare(
    "INSERT INTO rollups (series_id, resolution, ts, count, sum, min, max, p50, p99) " +
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
  );
  const insTop = db.prepare(
    "INSERT INTO io_top (ts, pid, comm, unit, read_bps, write_bps) VALUES (?, ?, ?, ?, ?, ?)",
  );
  const insEv = db.prepare(
    "INSERT INTO events (ts, class, kind, severity, subject, message, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
  );
  const ids = db.transaction(() =>
    plan.map((p) => Number(insS.run(p.metric, p.labels).lastInsertRowid)),
  )();
  db.transaction(() => {
    plan.forEach((p, i) => {
      if (p.perS <= 0) return;
      const step = 1000 / p.perS;
      for (let t = now - 3_600_000; t < now; t += step)
        insRaw.run(ids[i], Math.round(t), Math.random());
    });
  })();
  const rawMB = size(["samples"]);
  const recorded = plan.map((p, i) => ({ p, id: ids[i] as number })).filter((x) => x.p.perS > 0);
  // A day of minute rollups, then a day of hour rollups, for every recorded series.
  for (const res of [60, 3600])
    db.transaction(() => {
      for (const { id } of recorded)
        for (let t = now - 86_400_000; t < now; t += res * 1000)
          insRoll.run(id, res, t, res, Math.random() * res, ...[1, 2, 3, 4].map(Math.random));
    })();
  // Hour rows land between minute rows (same key prefix), so page deltas mislead: share by row count.
  const rollupsMB = size(["rollups"]);
  const minuteMB = (rollupsMB * 1440) / 1464;
  const hourMB = (rollupsMB * 24) / 1464;
  db.transaction(() => {
    const n = Math.round(ioTopPerS * 86400);
    for (let i = 0; i < n; i++)
      insTop.run(
        now - 86_400_000 + Math.round((i * 86_400_000) / n),
        1000 + (i % 50),
        `proc${i % 50}`,
        "backup.service",
        Math.random() * 1e6,
        Math.random() * 1e6,
      );
    const e = Math.round(eventsPerS * 86400);
    for (let i = 0; i < e; i++)
      insEv.run(
        now - 86_400_000 + Math.round((i * 86_400_000) / e),
        "wal",
        "wal.finding",
        "warn",
        "/var/lib/stemedb/wal",
        "a finding of typical length, with a file name and a number or two in it",
        "{}",
      );
  })();
  const ioTopMB = size(["io_top", "io_top_ts"]);
  const eventsMB = size(["events", "events_ts", "events_class_ts"]);
  db.close();
  rmSync(dir, { recursive: true, force: true });

  const cfg = loadConfig({ env: {}, defaultFile: "/nonexistent" });
  if (!cfg.ok) throw new Error(cfg.problems.join("\n"));
  const r = cfg.loaded.config.history;
  const days = (d: number) => d / 86_400_000;
  const at = (day: number) =>
    rawMB +
    minuteMB * Math.min(day, days(r.minute_retention)) +
    hourMB * Math.min(day, days(r.hour_retention)) +
    ioTopMB * Math.min(day, days(r.top_io_retention)) +
    eventsMB * Math.min(day, days(r.event_retention));
  const longest = Math.max(
    days(r.minute_retention),
    days(r.hour_retention),
    days(r.top_io_retention),
    days(r.event_retention),
  );
  return {
    disks: nDisks,
    measured_devices: [...devices],
    series: plan.length,
    disk_metrics_per_disk: perDisk.size,
    raw_samples_per_second: round(
      recorded.reduce((a, x) => a + x.p.perS, 0),
      1,
    ),
    io_top_rows_per_second: round(ioTopPerS, 3),
    raw_window_mb: round(rawMB, 1),
    minute_rollups_mb_per_day: round(minuteMB, 1),
    hour_rollups_mb_per_day: round(hourMB, 2),
    io_top_mb_per_day: round(ioTopMB, 1),
    events_mb_per_day: round(eventsMB, 2),
    growth_mb_per_day: round(minuteMB + hourMB + ioTopMB + eventsMB, 1),
    written_mb_per_day: round(rawMB * 24 + minuteMB + hourMB + ioTopMB + eventsMB, 0),
    size_mb_after_30_days: round(at(30), 1),
    bound_mb: round(at(longest), 1),
    retention_days: {
      raw: round(days(r.raw_retention), 3),
      minute: days(r.minute_retention),
      hour: days(r.hour_retention),
      io_top: days(r.top_io_retention),
      events: days(r.event_retention),
    },
  };
}

const rssMax = (k: "agent" | "ne") => round(Math.max(...rssTrace.map((x) => x[k] ?? 0)), 1);
const lagP99s = lagWindows.map((w) => w.p99);
const result = {
  bench: "footprint",
  duration_seconds: duration,
  warmup_seconds: warmupS,
  node_exporter: ne !== null,
  cpu,
  rss_mb: {
    agent: {
      after_warmup: round(warm.agent.rssMB),
      after_long_run: round(longRun.agent.rssMB),
      after_scrape_burst: round(afterBurst.agent.rssMB),
      max: rssMax("agent"),
    },
    ne:
      warm.ne && longRun.ne && afterBurst.ne
        ? {
            after_warmup: round(warm.ne.rssMB),
            after_long_run: round(longRun.ne.rssMB),
            after_scrape_burst: round(afterBurst.ne.rssMB),
            max: rssMax("ne"),
          }
        : null,
  },
  rss_trace: rssTrace.map((x) => [
    round(x.t, 0),
    round(x.agent),
    x.ne === null ? null : round(x.ne),
  ]),
  scrapes_per_mode: burst,
  scrape_ms: {
    agent: { plain: ms(lat.agent.plain), gzip: ms(lat.agent.gzip) },
    ne: ne ? { plain: ms(lat.ne.plain), gzip: ms(lat.ne.gzip) } : null,
  },
  scrape_bytes: { agent: bytes.agent, ne: ne ? bytes.ne : null },
  event_loop_lag_ms: {
    windows: lagWindows.length,
    p50_median: round(
      percentile(
        lagWindows.map((w) => w.p50),
        50,
      ),
      2,
    ),
    p99_median: round(percentile(lagP99s, 50), 2),
    p99_worst: round(Math.max(...lagP99s), 2),
    max: round(Math.max(...lagWindows.map((w) => w.max)), 2),
  },
  history,
};
const neP99 = ne ? `, node_exporter ${result.scrape_ms.ne?.gzip.p99} ms` : "";
log(
  `scrape p99 gzip: agent ${result.scrape_ms.agent.gzip.p99} ms${neP99}; ` +
    `RSS after long run: agent ${result.rss_mb.agent.after_long_run} MB; ` +
    `history ${history.growth_mb_per_day} MB/day for ${disks} disks`,
);
console.log(JSON.stringify(result));
