// Soak: the real agent at its defaults (paths aside: a temporary state dir, socket and WAL
// directory) under a light synthetic load, for an hour by default. Prints RSS and CPU every
// minute and fails (exit 1) on sustained memory growth: the least-squares slope of RSS (sampled
// every 10 s) over the last `--window` minutes above `--max-slope` MB per hour, or the agent dying.
// Not part of CI: it takes an hour.
//
// The load: a writer appends 4 KiB to the active WAL segment every 100 ms (40 KiB/s), rotates at
// 1 MiB and removes all but the newest 30 segments (the WAL and fsync-probe collectors and the
// dry-run compression planner see a live WAL); /metrics scraped with gzip every 15 s, as
// Prometheus does; `agentctl status`'s request on the control socket every 60 s.
//
// Usage: npm run soak [-- --minutes 60] [-- --window 30] [-- --max-slope 5]
//   --minutes M     run length (default 60)
//   --window W      minutes the fit looks back over (default 30; at most the run after warm-up)
//   --warmup S      minutes ignored at the start (default: 5, or a fifth of a shorter run)
//   --max-slope X   failure threshold, MB of RSS per hour (default 5: at that rate 80 MB
//                   would double in 16 h, while a steady agent's fit stays within about ±2)
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import {
  controlGet,
  metricValue,
  procSample,
  round,
  ScrapeClient,
  sleep,
  slope,
  startAgent,
  numberArg,
} from "./lib.js";
import { errorMessage } from "../core/errors.js";

function arg(name: string, dflt: number): number {
  const v = numberArg(name, dflt);
  if (!Number.isFinite(v) || v < 0) {
    console.error(`soak: bad --${name}`);
    process.exit(64);
  }
  return v;
}
const minutes = arg("minutes", 60);
const warmup = arg("warmup", Math.min(5, minutes / 5));
const window = Math.min(arg("window", 30), minutes - warmup);
const maxSlope = arg("max-slope", 5);

const agent = await startAgent("soak-");
const scraper = new ScrapeClient(agent.port);
console.log(
  `soak: agent pid ${agent.pid}, metrics 127.0.0.1:${agent.port}, ${minutes} min; ` +
    `fails if RSS grows faster than ${maxSlope} MB/h over the last ${round(window, 1)} min (after ` +
    `${round(warmup, 1)} min warm-up)`,
);

// The WAL writer.
let seq = 100;
let size = 0;
let fd = -1;
const seg = (n: number) => join(agent.walDir, `segment.${String(n).padStart(6, "0")}.wal`);
const block = Buffer.alloc(4096, 0x5a);
const writer = setInterval(() => {
  try {
    if (fd < 0 || size >= 1 << 20) {
      if (fd >= 0) closeSync(fd);
      fd = openSync(seg(++seq), "a");
      size = 0;
      const old = readdirSync(agent.walDir)
        .filter((f) => /^segment\.\d+\.wal(\.gz)?$/.test(f))
        .sort();
      for (const f of old.slice(0, Math.max(0, old.length - 30))) unlinkSync(join(agent.walDir, f));
    }
    size += writeSync(fd, block);
  } catch (e) {
    console.error(`soak: WAL writer: ${errorMessage(e)}`);
  }
}, 100);

let heapMB = NaN;
let lagP99 = NaN;
let scrapeErrors = 0;
const scrapes = setInterval(() => {
  scraper
    .scrape(true)
    .then((s) => {
      const text = gunzipSync(s.body).toString();
      heapMB = (metricValue(text, "nodejs_heap_used_bytes") ?? NaN) / 1e6;
      lagP99 =
        (metricValue(text, 'stemedb_agent_event_loop_delay_seconds{stat="p99"}') ?? NaN) * 1000;
    })
    .catch(() => scrapeErrors++);
}, 15_000);
let statusErrors = 0;
let statusMs = NaN;
const status = setInterval(() => {
  controlGet(agent.socket, "/v1/status")
    .then((r) => {
      statusMs = r.ms;
      if (r.status !== 200) statusErrors++;
    })
    .catch(() => statusErrors++);
}, 60_000);

const samples: Array<{ min: number; rss: number }> = [];
const t0 = performance.now();
let last = procSample(agent.pid);
let lastT = t0;
let died = false;
const hist = () => {
  try {
    const f = join(agent.stateDir, "history.db"); // with its WAL, where recent writes sit until a checkpoint
    return (statSync(f).size + (existsSync(`${f}-wal`) ? statSync(`${f}-wal`).size : 0)) / 1e6;
  } catch {
    return NaN;
  }
};
console.log("minute   RSS MB   CPU % (last min)   heap MB   lag p99 ms   status ms   history MB");
for (let tick = 1; tick <= minutes * 6; tick++) {
  await sleep(t0 + tick * 10_000 - performance.now());
  if (agent.child.exitCode !== null) {
    died = true;
    break;
  }
  const s = procSample(agent.pid);
  const now = performance.now();
  samples.push({ min: (now - t0) / 60_000, rss: s.rssMB });
  if (tick % 6 === 0) {
    const cpuPct = ((s.cpu - last.cpu) / ((now - lastT) / 1000)) * 100;
    last = s;
    lastT = now;
    console.log(
      `${String(tick / 6).padStart(6)}   ${s.rssMB.toFixed(1).padStart(6)}   ` +
        `${cpuPct.toFixed(2).padStart(16)}   ${heapMB.toFixed(1).padStart(7)}   ` +
        `${lagP99.toFixed(1).padStart(10)}   ${statusMs.toFixed(0).padStart(9)}   ` +
        `${hist().toFixed(1).padStart(10)}`,
    );
  }
}
clearInterval(writer);
clearInterval(scrapes);
clearInterval(status);
if (fd >= 0) closeSync(fd);
scraper.close();
const total = procSample(agent.pid);
await agent.stop();
rmSync(agent.root, { recursive: true, force: true });

const from = minutes - window;
const fit = samples.filter((s) => s.min >= from && s.min >= warmup);
const mbPerHour = slope(
  fit.map((s) => s.min / 60),
  fit.map((s) => s.rss),
);
const failed = died || fit.length < 6 || mbPerHour > maxSlope;
const result = {
  bench: "soak",
  minutes,
  window_minutes: round(window, 1),
  rss_mb_first: round(samples[0]?.rss ?? NaN),
  rss_mb_last: round(samples.at(-1)?.rss ?? NaN),
  rss_mb_max: round(Math.max(...samples.map((s) => s.rss))),
  rss_slope_mb_per_hour: round(mbPerHour, 2),
  max_slope_mb_per_hour: maxSlope,
  cpu_percent_average: round((total.cpu / ((performance.now() - t0) / 1000)) * 100, 2),
  scrape_errors: scrapeErrors,
  status_errors: statusErrors,
  agent_died: died,
  passed: !failed,
};
console.log(
  `soak: RSS ${result.rss_mb_first} -> ${result.rss_mb_last} MB (max ${result.rss_mb_max}); ` +
    `fit over minutes ${round(Math.max(from, warmup), 1)}-${minutes}: ` +
    `${result.rss_slope_mb_per_hour} MB/h (limit ${maxSlope}); ${scrapeErrors} scrape and ` +
    `${statusErrors} status errors${died ? "; THE AGENT DIED" : ""} -> ${failed ? "FAILED" : "passed"}`,
);
console.log(JSON.stringify(result));
process.exit(failed ? 1 : 0);
