// Issue 17: a RISING verdict (a 199 CRC count that grew within the growth window) survives an
// agent restart. The real agent binary, the fake smartctl, the history in the agent's state dir;
// between runs only the fixture changes. After the restart the verdict must come from the
// persisted trend: warn while the rise is within collectors.smart.growth_window, pass (199 back
// to info, static rule) once the window has passed, and a further rise is measured against the
// persisted count (rose by 1), not taken as a first look.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import { HistoryStore } from "../core/history/store.js";
import { CoreMetrics } from "../core/metrics/registry.js";
import { fetchText, startAgent, tempDir } from "./helpers/agent-process.js";
import { fakeSmartctl, SMART_FIXTURES } from "./helpers/fake-smartctl.js";
import { defaultRetention, quietLog, sleep } from "./helpers/quiet.js";
import { withHistoryFile } from "./helpers/history-file.js";

const FIXTURE = "ata-ssd-crc3-static_intel-s3500-ssdsc2bb480g4_exporter.json";
const WINDOW_S = 12;

/** The fixture with 199 set to `crc`. */
function withCrc(dir: string, crc: number): string {
  const doc = JSON.parse(readFileSync(join(SMART_FIXTURES, FIXTURE), "utf8")) as {
    ata_smart_attributes: { table: Array<{ id: number; raw: { value: number; string: string } }> };
  };
  for (const a of doc.ata_smart_attributes.table)
    if (a.id === 199) a.raw = { value: crc, string: String(crc) };
  const file = join(dir, "fx", `crc${crc}.json`);
  writeFileSync(file, JSON.stringify(doc));
  return file;
}

/** Waits until smartctl has been run for the device `n` times in all, and its result handled. */
async function polls(calls: () => string[], n: number, timeoutMs = 30_000): Promise<void> {
  const t0 = Date.now();
  while (calls().filter((c) => c.endsWith("/dev/sdc")).length < n) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`poll ${n} not seen within ${timeoutMs} ms`);
    await sleep(50);
  }
  await sleep(500); // the fake prints at once; the agent judges and persists right after
}

/** The smart.verdict events the agent recorded, oldest first (read after it stopped). */
function verdictEvents(
  stateDir: string,
): Array<{ ts: number; verdict: string; reason199: string | undefined }> {
  const h = new HistoryStore({
    stateDir,
    retention: defaultRetention(),
    log: quietLog,
    metrics: new CoreMetrics(),
  });
  try {
    const rows = withHistoryFile(
      h,
      (db) =>
        db
          .prepare("SELECT ts, data FROM events WHERE kind = 'smart.verdict' ORDER BY id")
          .all() as Array<{ ts: number; data: string }>,
    );
    return rows.map((r) => {
      const d = JSON.parse(r.data) as {
        verdict: string;
        reasons: Array<{ code: string; message: string }>;
      };
      return {
        ts: r.ts,
        verdict: d.verdict,
        reason199: d.reasons.find((x) => x.code === "attribute_199")?.message,
      };
    });
  } finally {
    h.close();
  }
}

test(
  "a rising 199 verdict survives a restart: warn from the persisted rise within growth_window, " +
    "pass after it, a new rise measured from the persisted count",
  async (t) => {
    const { dir } = tempDir();
    mkdirSync(join(dir, "fx"));
    mkdirSync(join(dir, "sys", "block"), { recursive: true });
    const fake = fakeSmartctl(dir, { "/dev/sdc": FIXTURE });
    const start = () =>
      startAgent({
        dir,
        extraToml:
          `[host]\nsys_path = "${join(dir, "sys")}"\n[collectors.smart]\nsmartctl = "${fake.path}"\n` +
          `interval = "1s"\ngrowth_window = "${WINDOW_S}s"\ndevices = ["/dev/sdc"]\n` +
          `[collectors.diskstats]\nenabled = false\n[collectors.procio]\nenabled = false\n` +
          `[collectors.kmsg]\nenabled = false\n`,
      });

    const calls = () => fake.calls();
    // Run 1: 3 old CRC errors (first look: static rule, pass); then they grow to 5 (rising: warn).
    const a = await start();
    t.teardown(() => a.stop("SIGKILL").catch(() => undefined));
    await polls(calls, 1);
    fake.set("/dev/sdc", withCrc(dir, 5));
    await polls(calls, 2);
    await a.stop("SIGTERM");
    const rose = Date.now();

    // Run 2: the count stays at 5. Without the persisted trend this first poll would be a first
    // look (pass). Kept running until a poll has certainly happened after the window.
    const b = await start();
    t.teardown(() => b.stop("SIGKILL").catch(() => undefined));
    await polls(calls, 3);
    while (Date.now() - rose < WINDOW_S * 1000 + 12_000) await sleep(200);
    const shown = (await fetchText(`${b.url}/metrics`)).text;
    await b.stop("SIGTERM");

    // Run 3: it grows again, by one; measured from the persisted 5.
    fake.set("/dev/sdc", withCrc(dir, 6));
    const c = await start();
    t.teardown(() => c.stop("SIGKILL").catch(() => undefined));
    await polls(calls, calls().filter((x) => x.endsWith("/dev/sdc")).length + 1);
    await c.stop("SIGTERM");

    const ev = verdictEvents(join(dir, "state"));
    t.deepEqual(
      ev.map((e) => e.verdict),
      ["pass", "warn", "warn", "pass", "warn"],
      JSON.stringify(ev, null, 1),
    );
    const [, up, kept, back] = ev;
    t.true(
      (kept?.ts ?? Infinity) - (up?.ts ?? 0) < WINDOW_S * 1000,
      "the restarted agent's warn is within the window of the rise",
    );
    t.true(
      (back?.ts ?? 0) - (up?.ts ?? Infinity) > WINDOW_S * 1000,
      "pass only once the window has passed",
    );
    t.regex(
      shown,
      /stemedb_agent_smart_verdict\{device="sdc",verdict="pass"\} 1/,
      "and /metrics says so",
    );
    t.regex(
      ev[0]?.reason199 ?? "",
      /^3 UDMA CRC errors .*first look, no history \(static rule: info; warns if it grows within 12 s\)/,
    );
    t.regex(ev[1]?.reason199 ?? "", /^5 UDMA CRC errors .*rose by 2 within 12 s \(rising rule/);
    t.regex(
      ev[2]?.reason199 ?? "",
      /^5 UDMA CRC errors .*rose by 2 within 12 s \(rising rule/,
      "after the restart: the persisted rise",
    );
    t.regex(
      ev[3]?.reason199 ?? "",
      /^5 UDMA CRC errors .*not grown in \d+ (s|min) watched \(static rule/,
      "the window has passed",
    );
    t.regex(
      ev[4]?.reason199 ?? "",
      /^6 UDMA CRC errors .*rose by 1 within 12 s \(rising rule/,
      "measured from the persisted count",
    );
  },
);
