// Fleet scale, measured: the series one node exports at defaults, counted from a real scrape of
// the real agent with 12 disks simulated through [host] proc_path (a prepared /proc whose
// diskstats has 12 busy disks; SMART for 12 disks from captured smartctl outputs), the bytes of
// one scrape (plain and gzip), and, through a real Prometheus remote-writing to a local sink, the
// remote-write bytes per sample. Then the arithmetic for 1 000 and 10 000 nodes.
// Usage: node dist/bench/fleet.js   (prints figures and one JSON line)
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, get } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { startAgent, tempDir } from "../test/helpers/agent-process.js";
import { fakeSmartctl } from "../test/helpers/fake-smartctl.js";
import { PROMETHEUS_BIN, startPrometheus, until } from "../test/helpers/prometheus-server.js";

const DISKS = 12;
const SCRAPE_INTERVAL_S = 15;
/** Assumptions for the arithmetic, stated in the output. */
// Prometheus 2.x head: labels + index + ~2 h of chunks at 15 s + Go GC headroom
// (rule of thumb 3-8 KiB)
const PROM_HEAD_BYTES_PER_SERIES = 4096;
const TSDB_BYTES_PER_SAMPLE = 1.5; // Prometheus docs: 1-2 bytes per sample on disk after compression
const MIMIR = {
  replication: 3,
  seriesPerIngesterCore: 300_000,
  ingesterGiBPer300k: 2.5,
  samplesPerDistributorCore: 25_000,
}; // Mimir capacity planning guide

const { dir, cleanup } = tempDir("sa-fleet-");
const names = Array.from({ length: DISKS }, (_, i) => `sd${String.fromCharCode(97 + i)}`);

// /proc with 12 whole disks whose counters advance each rewrite (reads, writes, flushes, so every
// await histogram, read, write and flush, gets observations: a busy node, the worst case).
const proc = join(dir, "proc");
mkdirSync(join(proc, "self"), { recursive: true });
writeFileSync(join(proc, "self", "mountinfo"), readFileSync("/proc/self/mountinfo"));
let step = 0;
function writeDiskstats() {
  step++;
  const lines = names.map((n, i) => {
    const b = 1000 + step * (i + 3) * 10;
    // major minor name | reads merged sectors ms | writes merged sectors ms | in-flight io_ms
    // weighted | discards merged sectors ms | flushes flush_ms
    return (
      `   8 ${i * 16} ${n} ${b} ${b >> 3} ${b * 8} ${b * 2} ${b} ${b >> 3} ${b * 16} ${b * 3} 1 ${b} ` +
      `${b * 5} ${b >> 4} 0 ${b * 8} ${b >> 4} ${b >> 5} ${b >> 4}`
    );
  });
  writeFileSync(join(proc, "diskstats"), `${lines.join("\n")}\n`);
}
writeDiskstats();
const ticker = setInterval(writeDiskstats, 250);

const wal = join(dir, "wal");
mkdirSync(wal);
for (let i = 1; i <= 5; i++)
  writeFileSync(join(wal, `segment.${String(i).padStart(8, "0")}.wal`), Buffer.alloc(64 * 1024, i));
const fixtures = [
  "ata-hdd-healthy_wdc-wuh721818ale6l4_exporter.json",
  "ata-ssd-healthy_samsung-mz7lh1t9hmlt_exporter.json",
  "ata-hdd-reallocated304-passed_st3500418as_exporter.json",
];
const smart = fakeSmartctl(
  dir,
  Object.fromEntries(names.map((n, i) => [`/dev/${n}`, fixtures[i % fixtures.length] ?? ""])),
);

// Defaults everywhere except what points the agent at the simulated host.
const agent = await startAgent({
  dir,
  extraToml:
    `[host]\nproc_path = "${proc}"\n[wal]\ndir = "${wal}"\n[stemedb]\ndata_dir = "${dir}"\n` +
    `[collectors.smart]\nsmartctl = "${smart.path}"\ndevices = ` +
    `[${names.map((n) => `"/dev/${n}"`).join(", ")}]\n`,
});
let exitCode = 0;
try {
  // First SMART polls are 3 s apart: wait until all 12 disks have a verdict and every disk has
  // read, write and flush awaits.
  const text = await until(
    "12 SMART verdicts and 36 await histograms",
    async () => {
      const m = await (await fetch(`${agent.url}/metrics`)).text();
      const verdicts = m.match(/^stemedb_agent_smart_info\{/gm)?.length ?? 0;
      const awaits = m.match(/^stemedb_agent_disk_await_seconds_count\{/gm)?.length ?? 0;
      return verdicts >= DISKS && awaits >= DISKS * 3 ? m : undefined;
    },
    120_000,
    1000,
  );
  await new Promise((r) => setTimeout(r, 3000)); // a few more collector rounds

  const plain = Buffer.from(await (await fetch(`${agent.url}/metrics`)).arrayBuffer());
  // node:http, not fetch: fetch would decompress the body.
  const gz = await new Promise<Buffer>((resolve, reject) => {
    get(`${agent.url}/metrics`, { headers: { "accept-encoding": "gzip" } }, (res) => {
      if (res.headers["content-encoding"] !== "gzip")
        reject(new Error("the agent did not answer with gzip"));
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve(Buffer.concat(chunks)));
    }).on("error", reject);
  });
  const samples = plain
    .toString("utf8")
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("#"));
  const series = samples.length;
  const byFamily = new Map<string, number>();
  for (const s of samples) {
    const name = (/^[^{ ]+/.exec(s)?.[0] ?? "").replace(/_(bucket|sum|count)$/, "");
    byFamily.set(name, (byFamily.get(name) ?? 0) + 1);
  }
  const perDevice = samples.filter((s) => names.some((n) => s.includes(`device="${n}"`))).length;
  const top = [...byFamily.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8);
  void text;

  // Remote write through a real Prometheus to a sink that accepts everything.
  let remote: { bytes_per_sample: number; samples: number; bytes: number } | null = null;
  if (existsSync(PROMETHEUS_BIN)) {
    const sink = createServer((req, res) => {
      req.resume();
      req.on("end", () => res.writeHead(204).end());
    });
    await new Promise<void>((r) => sink.listen(0, "127.0.0.1", r));
    const promDir = join(dir, "prom");
    mkdirSync(promDir);
    const prom = await startPrometheus(promDir, {
      targets: [`127.0.0.1:${agent.port}`],
      scrapeInterval: "1s",
      remoteWriteUrl: `http://127.0.0.1:${(sink.address() as AddressInfo).port}/api/v1/push`,
    });
    try {
      await new Promise((r) => setTimeout(r, 25_000));
      const pm = await (await fetch(`${prom.url}/metrics`)).text();
      const sum = (re: RegExp) => [...pm.matchAll(re)].reduce((a, m) => a + Number(m[1]), 0);
      const bytes = sum(/^prometheus_remote_storage_bytes_total\{[^}]*\} (\S+)$/gm);
      const sent = sum(/^prometheus_remote_storage_samples_total\{[^}]*\} (\S+)$/gm);
      remote = { bytes, samples: sent, bytes_per_sample: sent > 0 ? bytes / sent : NaN };
    } finally {
      await prom.stop();
      sink.close();
    }
  }

  const fleet = [1000, 10_000].map((nodes) => {
    const activeSeries = series * nodes;
    const samplesPerSecond = activeSeries / SCRAPE_INTERVAL_S;
    const inMemory = activeSeries * MIMIR.replication;
    return {
      nodes,
      active_series: activeSeries,
      samples_per_second: Math.round(samplesPerSecond),
      prometheus_head_gib: +((activeSeries * PROM_HEAD_BYTES_PER_SERIES) / 2 ** 30).toFixed(1),
      prometheus_disk_gib_per_day: +(
        (samplesPerSecond * 86_400 * TSDB_BYTES_PER_SAMPLE) /
        2 ** 30
      ).toFixed(1),
      scrape_ingress_mbit_s_gzip: +((gz.byteLength * nodes * 8) / SCRAPE_INTERVAL_S / 1e6).toFixed(
        1,
      ),
      remote_write_mbit_s: remote
        ? +((samplesPerSecond * remote.bytes_per_sample * 8) / 1e6).toFixed(1)
        : null,
      mimir_ingester_series_in_memory: inMemory,
      mimir_ingester_cores: +(inMemory / MIMIR.seriesPerIngesterCore).toFixed(1),
      mimir_ingester_gib: +((inMemory / 300_000) * MIMIR.ingesterGiBPer300k).toFixed(0),
      mimir_distributor_cores: +(samplesPerSecond / MIMIR.samplesPerDistributorCore).toFixed(1),
    };
  });

  console.log(
    `fleet scale (${new Date().toISOString()}, node ${process.version}): one node, ` +
      `${DISKS} disks simulated via [host] proc_path, defaults otherwise`,
  );
  console.log(
    `series per node:        ${series} (${perDevice} carry one of the ${DISKS} disks' device label: ` +
      `${(perDevice / DISKS).toFixed(1)} per disk; ${series - perDevice} per node)`,
  );
  console.log(
    `bytes per scrape:       ${plain.length} plain, ${gz.byteLength} gzip ` +
      `(${(plain.length / gz.byteLength).toFixed(1)}x; gzip -9 of the same text ` +
      `${gzipSync(plain, { level: 9 }).length})`,
  );
  console.log(
    `largest families:       ${top.map(([n, c]) => `${n.replace("stemedb_agent_", "")} ${c}`).join(", ")}`,
  );
  if (remote)
    console.log(
      `remote write:           ${remote.bytes_per_sample.toFixed(2)} bytes/sample on the wire (snappy ` +
        `protobuf; ${remote.samples} samples, ${remote.bytes} bytes from a real Prometheus)`,
    );
  console.log(
    `assumptions:            scrape every ${SCRAPE_INTERVAL_S} s; ` +
      `Prometheus head ${PROM_HEAD_BYTES_PER_SERIES} B/series; TSDB ${TSDB_BYTES_PER_SAMPLE} B/sample; ` +
      `Mimir RF ${MIMIR.replication}, 1 ingester core + ${MIMIR.ingesterGiBPer300k} GB per 300k ` +
      `in-memory series, 1 distributor core per 25k samples/s`,
  );
  for (const f of fleet) {
    console.log(
      `${String(f.nodes).padStart(6)} nodes: ${f.active_series} series, ` +
        `${f.samples_per_second} samples/s; one Prometheus: head ~${f.prometheus_head_gib} GiB, ` +
        `${f.prometheus_disk_gib_per_day} GiB/day, scrape ingress ${f.scrape_ingress_mbit_s_gzip} ` +
        `Mbit/s gzip; remote write ${f.remote_write_mbit_s ?? "?"} Mbit/s; Mimir: ` +
        `${f.mimir_ingester_series_in_memory} in-memory series -> ~${f.mimir_ingester_cores} ingester ` +
        `cores, ~${f.mimir_ingester_gib} GB, ~${f.mimir_distributor_cores} distributor cores`,
    );
  }
  console.log(
    JSON.stringify({
      bench: "fleet",
      disks: DISKS,
      series_per_node: series,
      series_per_disk: +(perDevice / DISKS).toFixed(1),
      series_node_fixed: series - perDevice,
      scrape_bytes_plain: plain.length,
      scrape_bytes_gzip: gz.byteLength,
      remote_write: remote,
      top_families: Object.fromEntries(top),
      fleet,
    }),
  );
} catch (e) {
  console.error(e);
  exitCode = 1;
} finally {
  clearInterval(ticker);
  await agent.stop("SIGTERM");
  cleanup();
}
process.exit(exitCode);
