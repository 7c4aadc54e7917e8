// Kernel lines parsed and classified per second during a storm, and memory then.
// A storm is a mix of fault lines (block, buffer, ext4, SCSI, NVMe) and ordinary chatter, as raw
// /dev/kmsg records; each is parsed, filtered by facility, classified and its device resolved
// through sysfs (cached), exactly as the follower does. Usage: node dist/bench/kmsg.js [records]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { pino } from "pino";
import { loadConfig } from "../core/config/load.js";
import { HistoryStore } from "../core/history/store.js";
import { CoreMetrics } from "../core/metrics/registry.js";
import { classify } from "../collectors/kmsg/classify.js";
import { kmsgSinks } from "../collectors/kmsg/sink.js";
import { Router } from "../core/router.js";
import type { KernelFault } from "../collectors/kmsg/observation.js";
import { parseRecord } from "../collectors/kmsg/record.js";
import { DeviceResolver } from "../collectors/kmsg/resolve.js";

const n = Number(process.argv[2] ?? 1_000_000);
const templates = [
  "3,%s,5123,-;I/O error, dev sd%d, sector %n op 0x1:(WRITE) flags 0x800 phys_seg 16 prio class 2",
  "3,%s,5124,-;Buffer I/O error on dev sd%d1, logical block %n, lost sync page write",
  "2,%s,5125,-;EXT4-fs error (device sd%d1): ext4_find_entry:1613: inode #%n: comm cat: reading directory lblock 0",
  "6,%s,5126,-;sd 2:0:0:%n: [sd%d] tag#3 Sense Key : Medium Error [current]",
  "4,%s,5127,-;nvme nvme%n: I/O %n QID 6 timeout, aborting",
  "6,%s,5128,-;usb 1-1: new high-speed USB device number %n using xhci_hcd",
  "6,%s,5129,-;EXT4-fs (sd%d1): mounted filesystem %n r/w with ordered data mode. Quota mode: none.",
  "4,%s,5130,-;blk_print_req_error: %n callbacks suppressed",
];
const lines: string[] = [];
for (let i = 0; i < 10_000; i++) {
  const t = templates[i % templates.length] as string;
  lines.push(
    t
      .replace("%s", String(i))
      .replace(/%d/g, String.fromCharCode(97 + (i % 12)))
      .replace(/%n/g, String(i % 977)),
  );
}
const resolver = new DeviceResolver("/sys");
const allowed = new Set([0]);
const rss0 = process.memoryUsage().rss;
let faults = 0;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < n; i++) {
  const r = parseRecord(lines[i % lines.length] as string);
  if (typeof r === "string" || !allowed.has(r.facility)) continue;
  const c = classify(r.text);
  if (c && !("suppressed" in c)) {
    resolver.resolve(c);
    faults++;
  }
}
const secs = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
// Then the publishing side: counters, the per-(device, class) history limiter, history rows.
const log = pino({ level: "silent" });
const dir = mkdtempSync(join(tmpdir(), "bench-kmsg-"));
const cfg = loadConfig({ env: {}, defaultFile: "/nonexistent" });
if (!cfg.ok) throw new Error(cfg.problems.join("\n"));
const history = new HistoryStore({
  stateDir: dir,
  retention: cfg.loaded.config.history,
  log,
  metrics: new CoreMetrics(),
});
const col = new Router("kmsg", kmsgSinks(new Registry()), history, log);
const batch: KernelFault[] = Array.from({ length: 10_000 }, (_, i) => ({
  seq: i,
  class: "buffer_io_error",
  severity: "crit",
  device: `sd${String.fromCharCode(97 + (i % 12))}`,
  logical: null,
  count: 1,
  line: lines[1] as string,
  atMs: i,
}));
const p0 = performance.now();
const rounds = Math.max(1, Math.floor(n / 10_000));
for (let i = 0; i < rounds; i++) {
  col.observation({
    source: "kmsg",
    records: batch.length,
    faults: batch,
    lost: 0,
    suppressed: 0,
    resume: { boot_id: "x", next_seq: i },
  });
  if (i % 10 === 0) history.flush();
}
history.flush();
const publishRate = Math.round((rounds * batch.length) / ((performance.now() - p0) / 1000));
col.close();
history.close();
rmSync(dir, { recursive: true, force: true });

const result = {
  bench: "kmsg",
  publish_faults_per_second: publishRate,
  records: n,
  faults,
  lines_per_second: Math.round(n / secs),
  cpu_seconds: Number(((cpu.user + cpu.system) / 1e6).toFixed(2)),
  rss_mib_before: Number((rss0 / 1048576).toFixed(1)),
  rss_mib_after: Number((process.memoryUsage().rss / 1048576).toFixed(1)),
};
console.log(
  `kernel log storm: ${n} records (${faults} faults) parsed and classified in ${secs.toFixed(2)} s = ` +
    `${result.lines_per_second.toLocaleString("en")} lines/s; faults published (counters + rate-limited ` +
    `history) at ${publishRate.toLocaleString("en")}/s; RSS ${result.rss_mib_before} -> ` +
    `${result.rss_mib_after} MiB`,
);
console.log(JSON.stringify(result));
