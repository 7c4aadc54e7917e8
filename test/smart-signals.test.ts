// Issue 17: SATA SSD wear, packed raw values, 184, and static vs rising counters,
// checked on the captured public fixtures (MANIFEST.txt) and on pure trend state.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import { Registry } from "prom-client";
import { parseSmart, type SmartReport } from "../collectors/smart/parse.js";
import { advanceTrend, readTrendState, RISE_WINDOW_MS, trendView } from "../collectors/smart/trend.js";
import { enduranceUsed, judge, predictiveCounters } from "../collectors/smart/verdict.js";
import { SmartCollector } from "../collectors/smart/collector.js";
import { tempDir } from "./helpers/agent-process.js";
import { fakeSmartctl, SMART_FIXTURES } from "./helpers/fake-smartctl.js";
import { quietLog, sampler } from "./helpers/quiet.js";

const DAY = 86_400_000;

function load(name: string): SmartReport {
  const r = parseSmart(readFileSync(join(SMART_FIXTURES, name), "utf8"));
  if ("error" in r) throw new Error(r.error);
  return r;
}

/** A fixture with attribute `id` changed by `edit`. */
function edited(name: string, id: number, edit: (a: Record<string, unknown>) => void): SmartReport {
  const doc = JSON.parse(readFileSync(join(SMART_FIXTURES, name), "utf8")) as { ata_smart_attributes: { table: Array<Record<string, unknown>> } };
  for (const a of doc.ata_smart_attributes.table) if (a["id"] === id) edit(a);
  const r = parseSmart(JSON.stringify(doc));
  if ("error" in r) throw new Error(r.error);
  return r;
}

const reason = (r: SmartReport, code: string, trends = {}) => judge(r, trends).reasons.find((x) => x.code === code);

test("SATA SSD wear: each vendor attribute read in its own direction, the field named in the reason", (t) => {
  const cases: Array<[string, number, RegExp]> = [
    ["ata-ssd-WEAR-85pct-mwi15_intel-s3500-ssdsc2bb016t4_exporter.json", 85, /233 Media_Wearout_Indicator normalised 15/],
    ["ata-ssd-wear-78pct-mwi22_intel-s3500-ssdsc2bb240g4_exporter.json", 78, /233/],
    ["ata-ssd-healthy-ssd-timeouts8_micron-5300-mtfddak960tds_exporter.json", 1, /202 Percent_Lifetime_Remain normalised 99/],
    ["ata-ssd-exit4-life-left98_kingston-sa400m8120g_exporter.json", 2, /231 SSD_Life_Left/],
    ["ata-ssd-LOOKALIKE-202-exception-mode_samsung-sm843t_exporter.json", 9, /177 Wear_Leveling_Count/],
    // -x output with device statistics: preferred over 177 (which says 19 too).
    ["ata-ssd-healthy-xall_samsung-860evo_scrutiny.json", 19, /device statistics/],
  ];
  for (const [f, pct, src] of cases) {
    const w = enduranceUsed(load(f));
    t.is(w?.percentUsed, pct, f);
    t.regex(w?.source ?? "", src, f);
    t.is(predictiveCounters(load(f))["percentage_used"], pct, `${f}: exported`);
  }
  const worn = judge(load(cases[0]?.[0] ?? ""));
  t.is(worn.verdict, "warn");
  t.regex(worn.reasons.find((x) => x.code === "ata_wear")?.message ?? "", /endurance used 85% \(ATA 233/);
  t.is(reason(load(cases[1]?.[0] ?? ""), "ata_wear")?.level, "info", "78 % is under the 80 % line");
});

test("SATA wear thresholds are the NVMe ones: 80 warn, 100 fail; a normalised 1 is all used", (t) => {
  const f = "ata-ssd-WEAR-85pct-mwi15_intel-s3500-ssdsc2bb016t4_exporter.json";
  const at = (v: number) => judge(edited(f, 233, (a) => (a["value"] = v)));
  t.is(at(21).verdict, "pass", "79 % used: info only");
  t.is(reason(edited(f, 233, (a) => (a["value"] = 21)), "ata_wear")?.level, "info");
  t.is(reason(edited(f, 233, (a) => (a["value"] = 20)), "ata_wear")?.level, "warn", "80 % used");
  t.is(at(2).verdict, "warn", "98 %");
  t.is(at(1).verdict, "fail", "Intel's floor: rated endurance reached");
  t.is(at(0).verdict, "fail");
});

test("wear look-alikes: 233 Total_LBAs_Written, 202 Exception_Mode_Status, 177 on an HDD name are not wear", (t) => {
  t.is(enduranceUsed(load("ata-ssd-LOOKALIKE-233-is-lbas-written_dell-intel-s3520_exporter.json")), null);
  t.is(enduranceUsed(load("ata-hdd-healthy-packed-rates_seagate-st10000nm0016_exporter.json")), null);
  const sm = load("ata-ssd-LOOKALIKE-202-exception-mode_samsung-sm843t_exporter.json");
  t.regex(enduranceUsed(sm)?.source ?? "", /^ATA 177/, "202 Exception_Mode_Status is skipped");
});

test("packed 188: Seagate's three 16-bit counters decode to the total, raw or string form", (t) => {
  const cases: Array<[string, number]> = [
    ["ata-hdd-PACKED-188-raw17180131332-is-4_seagate-st3000nm0033_exporter.json", 4],
    ["ata-hdd-PACKED-188-raw51540393996-is-12_seagate-exos-x16_exporter.json", 12],
    ["ata-hdd-PACKED-188-string-2-2-2_seagate-st2000nm0008_exporter.json", 2],
    ["ata-hdd-command-timeout-1_seagate-st3500418as_exporter.json", 1],
    ["ata-ssd-healthy-ssd-timeouts8_micron-5300-mtfddak960tds_exporter.json", 8],
  ];
  for (const [f, n] of cases) t.is(predictiveCounters(load(f))["command_timeouts"], n, f);
  t.regex(reason(load(cases[0]?.[0] ?? ""), "attribute_188")?.message ?? "", /^4 command timeouts .*decoded from raw 17180131332/);
  // The example: 0x0005_0005_0005.
  const five = edited(cases[0]?.[0] ?? "", 188, (a) => (a["raw"] = { value: 21475164165, string: "21475164165" }));
  t.is(predictiveCounters(five)["command_timeouts"], 5);
  // smartctl's raw16 string is "w2 w1 w0": the total is the last number.
  const str = edited(cases[0]?.[0] ?? "", 188, (a) => (a["raw"] = { value: 3, string: "0 0 3" }));
  t.is(predictiveCounters(str)["command_timeouts"], 3);
  // Words that do not nest (high > low) are not Seagate's packing: kept as is.
  const odd = edited(cases[0]?.[0] ?? "", 188, (a) => (a["raw"] = { value: 0x0009_0001_0002, string: String(0x0009_0001_0002) }));
  t.is(predictiveCounters(odd)["command_timeouts"], 0x0009_0001_0002);
});

test("Seagate 1/7/195 raw24/raw32: the error count is the top 16 bits; other vendors are not decoded", (t) => {
  const c = predictiveCounters(load("ata-hdd-seek-errors-12-packed_seagate-st32000644ns_exporter.json"));
  t.is(c["seek_errors"], 12, "52383508216 >> 32");
  t.is(c["read_errors"], 0);
  const healthy = predictiveCounters(load("ata-hdd-healthy-packed-rates_seagate-st10000nm0016_exporter.json"));
  t.is(healthy["seek_errors"], 0, "2675401001 seeks, 0 errors");
  t.is(predictiveCounters(load("ata-hdd-reallocated304-passed_st3500418as_exporter.json"))["seek_errors"], 2988);
  t.is(predictiveCounters(load("ata-hdd-healthy-rre786446_hitachi-hds721010cla332_exporter.json"))["read_errors"], undefined);
  t.is(judge(load("ata-hdd-healthy-packed-rates_seagate-st10000nm0016_exporter.json")).verdict, "pass");
});

test("184 End-to-End_Error > 0 warns; the Error_Correction_Count that some SSDs put at 184 does not", (t) => {
  const f = "ata-ssd-E2E-ERROR-184_micron-5300-mtfddak1t9tds_exporter.json";
  const r = reason(load(f), "attribute_184");
  t.is(r?.level, "warn");
  t.regex(r?.message ?? "", /1 end-to-end \(IOEDC\) parity errors/);
  const renamed = edited(f, 184, (a) => (a["name"] = "Error_Correction_Count"));
  t.is(reason(renamed, "attribute_184"), undefined);
});

test("199 CRC: static is info, rising within the window warns, and the reason says which rule", (t) => {
  const f = "ata-hdd-crc-cable-3M_wd2003fyys_exporter.json";
  const r = load(f);
  const first = reason(r, "attribute_199");
  t.is(first?.level, "info");
  t.regex(first?.message ?? "", /static rule.*within 7 d/);
  t.is(judge(r).verdict, "pass");
  const c = predictiveCounters(r);
  const t0 = 1_700_000_000_000;
  const s0 = advanceTrend(null, c, t0).state;
  // Unchanged for 30 days: still static.
  const s1 = advanceTrend(s0, c, t0 + 30 * DAY).state;
  const still = reason(r, "attribute_199", trendView(s1, t0 + 30 * DAY));
  t.is(still?.level, "info");
  t.regex(still?.message ?? "", /not grown in 30 d watched \(static rule/);
  // It grows: warn, with the rising rule named.
  const grown = { ...c, udma_crc_errors: (c["udma_crc_errors"] ?? 0) + 3 };
  const s2 = advanceTrend(s1, grown, t0 + 31 * DAY).state;
  const rising = judge(r, trendView(s2, t0 + 31 * DAY));
  t.is(rising.verdict, "warn");
  t.regex(rising.reasons.find((x) => x.code === "attribute_199")?.message ?? "", /rose by 3 within 7 d \(rising rule/);
  // A week later without growth: back to static.
  const s3 = advanceTrend(s2, grown, t0 + 31 * DAY + RISE_WINDOW_MS + 1).state;
  t.is(judge(r, trendView(s3, t0 + 31 * DAY + RISE_WINDOW_MS + 1)).verdict, "pass");
  // Just inside the window it still counts.
  t.true(trendView(s2, t0 + 31 * DAY + RISE_WINDOW_MS)["udma_crc_errors"]?.rising);
});

test("188 on a spinning disk warns at any count (Backblaze); on an SSD only while rising", (t) => {
  t.is(reason(load("ata-hdd-command-timeout-1_seagate-st3500418as_exporter.json"), "attribute_188")?.level, "warn");
  const ssd = load("ata-ssd-crc2-timeouts27_micron-5300-mtfddak480tds_exporter.json");
  t.is(reason(ssd, "attribute_188")?.level, "info");
  const rising = { command_timeouts: { rising: true, delta: 2, watchedMs: DAY } };
  t.is(reason(ssd, "attribute_188", rising)?.level, "warn");
  // The Backblaze counters ignore the trend: a static reallocation count still warns.
  t.is(reason(load("ata-hdd-reallocated304-passed_st3500418as_exporter.json"), "attribute_5", { reallocated_sectors: { rising: false, delta: 0, watchedMs: 90 * DAY } })?.level, "warn");
});

test("trend state: a counter that goes down is a new baseline, and malformed stored state is no history", (t) => {
  const s0 = advanceTrend(null, { udma_crc_errors: 10 }, 1000).state;
  const up = advanceTrend(s0, { udma_crc_errors: 12 }, 2000);
  t.deepEqual(up.increases.map((i) => [i.name, i.previous, i.current, i.sinceMs]), [["udma_crc_errors", 10, 12, 1000]]);
  const down = advanceTrend(up.state, { udma_crc_errors: 1 }, 3000);
  t.deepEqual(down.increases, []);
  t.false(trendView(down.state, 3000)["udma_crc_errors"]?.rising, "a reset is not growth");
  for (const junk of [undefined, "", "{", "null", "[]", '{"at":"x","counters":{}}', '{"at":1}']) t.is(readTrendState(junk), null, String(junk));
  // The old baseline format ({at, counters}) still reads.
  const old = readTrendState('{"at":5,"counters":{"udma_crc_errors":3,"bad":"x"}}');
  t.deepEqual(old?.counters, { udma_crc_errors: 3 });
  t.deepEqual(JSON.parse(JSON.stringify(readTrendState(JSON.stringify(up.state)))), JSON.parse(JSON.stringify(up.state)));
});

test("collector: a CRC count that grows between polls turns the verdict to warn; the wear gauge is exported", async (t) => {
  const { dir } = tempDir();
  const base = JSON.parse(readFileSync(join(SMART_FIXTURES, "ata-ssd-crc3-static_intel-s3500-ssdsc2bb480g4_exporter.json"), "utf8")) as { ata_smart_attributes: { table: Array<{ id: number; raw: { value: number; string: string } }> } };
  const grown = structuredClone(base);
  for (const a of grown.ata_smart_attributes.table) if (a.id === 199) a.raw = { value: 5, string: "5" };
  writeFileSync(join(dir, "grown.json"), JSON.stringify(grown));
  const fake = fakeSmartctl(dir, { "/dev/sdc": "ata-ssd-crc3-static_intel-s3500-ssdsc2bb480g4_exporter.json" });
  const registry = new Registry();
  mkdirSync(join(dir, "sys", "block"), { recursive: true });
  const col = new SmartCollector({ smartctl: fake.path, isolateWith: null, interval: 1, timeout: 10_000, devices: ["/dev/sdc"], sysPath: join(dir, "sys"), devPath: "/dev", waitForRuns: true, registry, history: null, log: quietLog });
  t.teardown(() => col.close());
  const once = sampler(col);
  t.is((await once()).devices[0]?.verdict, "pass", "3 old CRC errors: static");
  fake.set("/dev/sdc", join(dir, "grown.json"));
  await new Promise((r) => setTimeout(r, 5));
  const d = (await once()).devices[0];
  t.is(d?.verdict, "warn");
  t.regex(d?.reasons.find((x) => x.code === "attribute_199")?.message ?? "", /rose by 2 within 7 d/);
  t.deepEqual(d?.wear, { percent_used: 5, source: "ATA 233 Media_Wearout_Indicator normalised 95 (life left)" });
  t.regex(await registry.metrics(), /stemedb_agent_smart_endurance_used_percent\{device="sdc"\} 5/);
});
