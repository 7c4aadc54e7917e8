// Issue 17: SATA SSD wear, packed raw values, 184, and static vs rising counters,
// checked on the captured public fixtures (MANIFEST.txt) and on pure trend state.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import { Registry } from "prom-client";
import { parseSmart, type SmartReport } from "../collectors/smart/parse.js";
import {
  advanceTrend,
  readTrendState,
  RISE_WINDOW_MS,
  trendView,
} from "../collectors/smart/trend.js";
import {
  enduranceUsed,
  EXPORTED_ATTRIBUTES,
  judge,
  phisonRaw231,
  predictiveCounters,
} from "../collectors/smart/verdict.js";
import { SmartCollector } from "../collectors/smart/collector.js";
import { smartSinks } from "../collectors/smart/sink.js";
import { tempDir } from "./helpers/agent-process.js";
import { fakeSmartctl, SMART_FIXTURES } from "./helpers/fake-smartctl.js";
import { quietLog, routed } from "./helpers/quiet.js";

const DAY = 86_400_000;

function load(name: string): SmartReport {
  const r = parseSmart(readFileSync(join(SMART_FIXTURES, name), "utf8"));
  if ("error" in r) throw new Error(r.error);
  return r;
}

/** A fixture with attribute `id` changed by `edit`. */
function edited(name: string, id: number, edit: (a: Record<string, unknown>) => void): SmartReport {
  const doc = JSON.parse(readFileSync(join(SMART_FIXTURES, name), "utf8")) as {
    ata_smart_attributes: { table: Array<Record<string, unknown>> };
  };
  for (const a of doc.ata_smart_attributes.table) if (a["id"] === id) edit(a);
  const r = parseSmart(JSON.stringify(doc));
  if ("error" in r) throw new Error(r.error);
  return r;
}

const reason = (r: SmartReport, code: string, trends = {}) =>
  judge(r, trends).reasons.find((x) => x.code === code);

test("SATA SSD wear: each vendor attribute read in its own direction, the field named in the reason", (t) => {
  const cases: Array<[string, number, RegExp]> = [
    [
      "ata-ssd-WEAR-85pct-mwi15_intel-s3500-ssdsc2bb016t4_exporter.json",
      85,
      /233 Media_Wearout_Indicator normalised 15/,
    ],
    ["ata-ssd-wear-78pct-mwi22_intel-s3500-ssdsc2bb240g4_exporter.json", 78, /233/],
    [
      "ata-ssd-healthy-ssd-timeouts8_micron-5300-mtfddak960tds_exporter.json",
      1,
      /202 Percent_Lifetime_Remain normalised 99/,
    ],
    ["ata-ssd-exit4-life-left98_kingston-sa400m8120g_exporter.json", 2, /231 SSD_Life_Left/],
    [
      "ata-ssd-LOOKALIKE-202-exception-mode_samsung-sm843t_exporter.json",
      9,
      /177 Wear_Leveling_Count/,
    ],
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
  t.regex(
    worn.reasons.find((x) => x.code === "ata_wear")?.message ?? "",
    /endurance used 85% \(ATA 233/,
  );
  t.is(reason(load(cases[1]?.[0] ?? ""), "ata_wear")?.level, "info", "78 % is under the 80 % line");
});

test("SATA wear thresholds are the NVMe ones: 80 warn, 100 fail; a normalised 1 is all used", (t) => {
  const f = "ata-ssd-WEAR-85pct-mwi15_intel-s3500-ssdsc2bb016t4_exporter.json";
  const at = (v: number) => judge(edited(f, 233, (a) => (a["value"] = v)));
  t.is(at(21).verdict, "pass", "79 % used: info only");
  t.is(
    reason(
      edited(f, 233, (a) => (a["value"] = 21)),
      "ata_wear",
    )?.level,
    "info",
  );
  t.is(
    reason(
      edited(f, 233, (a) => (a["value"] = 20)),
      "ata_wear",
    )?.level,
    "warn",
    "80 % used",
  );
  t.is(at(2).verdict, "warn", "98 %");
  t.is(at(1).verdict, "fail", "Intel's floor: rated endurance reached");
  t.is(at(0).verdict, "fail");
});

test("wear look-alikes: 233 Total_LBAs_Written, 202 Exception_Mode_Status, 177 on an HDD name are not wear", (t) => {
  t.is(
    enduranceUsed(load("ata-ssd-LOOKALIKE-233-is-lbas-written_dell-intel-s3520_exporter.json")),
    null,
  );
  t.is(
    enduranceUsed(load("ata-hdd-healthy-packed-rates_seagate-st10000nm0016_exporter.json")),
    null,
  );
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
  t.regex(
    reason(load(cases[0]?.[0] ?? ""), "attribute_188")?.message ?? "",
    /^4 command timeouts .*decoded from raw 17180131332/,
  );
  // The example: 0x0005_0005_0005.
  const five = edited(
    cases[0]?.[0] ?? "",
    188,
    (a) => (a["raw"] = { value: 21475164165, string: "21475164165" }),
  );
  t.is(predictiveCounters(five)["command_timeouts"], 5);
  // smartctl's raw16 string is "w2 w1 w0": the total is the last number.
  const str = edited(cases[0]?.[0] ?? "", 188, (a) => (a["raw"] = { value: 3, string: "0 0 3" }));
  t.is(predictiveCounters(str)["command_timeouts"], 3);
  // Words that do not nest (high > low) are not Seagate's packing: kept as is.
  const odd = edited(
    cases[0]?.[0] ?? "",
    188,
    (a) => (a["raw"] = { value: 0x0009_0001_0002, string: String(0x0009_0001_0002) }),
  );
  t.is(predictiveCounters(odd)["command_timeouts"], 0x0009_0001_0002);
});

test("Seagate 1/7/195 raw24/raw32: the error count is the top 16 bits; other vendors are not decoded", (t) => {
  const c = predictiveCounters(
    load("ata-hdd-seek-errors-12-packed_seagate-st32000644ns_exporter.json"),
  );
  t.is(c["seek_errors"], 12, "52383508216 >> 32");
  t.is(c["read_errors"], 0);
  const healthy = predictiveCounters(
    load("ata-hdd-healthy-packed-rates_seagate-st10000nm0016_exporter.json"),
  );
  t.is(healthy["seek_errors"], 0, "2675401001 seeks, 0 errors");
  t.is(
    predictiveCounters(load("ata-hdd-reallocated304-passed_st3500418as_exporter.json"))[
      "seek_errors"
    ],
    2988,
  );
  t.is(
    predictiveCounters(load("ata-hdd-healthy-rre786446_hitachi-hds721010cla332_exporter.json"))[
      "read_errors"
    ],
    undefined,
  );
  t.is(
    judge(load("ata-hdd-healthy-packed-rates_seagate-st10000nm0016_exporter.json")).verdict,
    "pass",
  );
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
  t.regex(
    rising.reasons.find((x) => x.code === "attribute_199")?.message ?? "",
    /rose by 3 within 7 d \(rising rule/,
  );
  // A week later without growth: back to static.
  const s3 = advanceTrend(s2, grown, t0 + 31 * DAY + RISE_WINDOW_MS + 1).state;
  t.is(judge(r, trendView(s3, t0 + 31 * DAY + RISE_WINDOW_MS + 1)).verdict, "pass");
  // Just inside the window it still counts.
  t.true(trendView(s2, t0 + 31 * DAY + RISE_WINDOW_MS)["udma_crc_errors"]?.rising);
});

test("188 on a spinning disk warns at any count (Backblaze); on an SSD only while rising", (t) => {
  t.is(
    reason(load("ata-hdd-command-timeout-1_seagate-st3500418as_exporter.json"), "attribute_188")
      ?.level,
    "warn",
  );
  const ssd = load("ata-ssd-crc2-timeouts27_micron-5300-mtfddak480tds_exporter.json");
  t.is(reason(ssd, "attribute_188")?.level, "info");
  const rising = { command_timeouts: { rising: true, delta: 2, watchedMs: DAY } };
  t.is(reason(ssd, "attribute_188", rising)?.level, "warn");
  // The Backblaze counters ignore the trend: a static reallocation count still warns.
  t.is(
    reason(load("ata-hdd-reallocated304-passed_st3500418as_exporter.json"), "attribute_5", {
      reallocated_sectors: { rising: false, delta: 0, watchedMs: 90 * DAY },
    })?.level,
    "warn",
  );
});

test("trend state: a counter that goes down is a new baseline, and malformed stored state is no history", (t) => {
  const s0 = advanceTrend(null, { udma_crc_errors: 10 }, 1000).state;
  const up = advanceTrend(s0, { udma_crc_errors: 12 }, 2000);
  t.deepEqual(
    up.increases.map((i) => [i.name, i.previous, i.current, i.sinceMs]),
    [["udma_crc_errors", 10, 12, 1000]],
  );
  const down = advanceTrend(up.state, { udma_crc_errors: 1 }, 3000);
  t.deepEqual(down.increases, []);
  t.false(trendView(down.state, 3000)["udma_crc_errors"]?.rising, "a reset is not growth");
  for (const junk of [undefined, "", "{", "null", "[]", '{"at":"x","counters":{}}', '{"at":1}'])
    t.is(readTrendState(junk), null, String(junk));
  // The old baseline format ({at, counters}) still reads.
  const old = readTrendState('{"at":5,"counters":{"udma_crc_errors":3,"bad":"x"}}');
  t.deepEqual(old?.counters, { udma_crc_errors: 3 });
  t.deepEqual(
    JSON.parse(JSON.stringify(readTrendState(JSON.stringify(up.state)))),
    JSON.parse(JSON.stringify(up.state)),
  );
});

test(
  "collector: a CRC count that grows between polls turns the verdict to warn; " +
    "the wear gauge is exported",
  async (t) => {
    const { dir } = tempDir();
    const base = JSON.parse(
      readFileSync(
        join(SMART_FIXTURES, "ata-ssd-crc3-static_intel-s3500-ssdsc2bb480g4_exporter.json"),
        "utf8",
      ),
    ) as {
      ata_smart_attributes: {
        table: Array<{ id: number; raw: { value: number; string: string } }>;
      };
    };
    const grown = structuredClone(base);
    for (const a of grown.ata_smart_attributes.table)
      if (a.id === 199) a.raw = { value: 5, string: "5" };
    writeFileSync(join(dir, "grown.json"), JSON.stringify(grown));
    const fake = fakeSmartctl(dir, {
      "/dev/sdc": "ata-ssd-crc3-static_intel-s3500-ssdsc2bb480g4_exporter.json",
    });
    const registry = new Registry();
    mkdirSync(join(dir, "sys", "block"), { recursive: true });
    const { col, once } = routed(
      smartSinks(registry, quietLog),
      null,
      (emit) =>
        new SmartCollector({
          smartctl: fake.path,
          isolateWith: null,
          interval: 1,
          timeout: 10_000,
          devices: ["/dev/sdc"],
          sysPath: join(dir, "sys"),
          devPath: "/dev",
          waitForRuns: true,
          state: null,
          emit,
          log: quietLog,
        }),
    );
    t.teardown(() => col.close());
    t.is((await once()).devices[0]?.verdict, "pass", "3 old CRC errors: static");
    fake.set("/dev/sdc", join(dir, "grown.json"));
    await new Promise((r) => setTimeout(r, 5));
    const d = (await once()).devices[0];
    t.is(d?.verdict, "warn");
    t.regex(
      d?.reasons.find((x) => x.code === "attribute_199")?.message ?? "",
      /rose by 2 within 7 d/,
    );
    t.deepEqual(d?.wear, {
      percent_used: 5,
      source: "ATA 233 Media_Wearout_Indicator normalised 95 (life left)",
    });
    t.regex(
      await registry.metrics(),
      /stemedb_agent_smart_endurance_used_percent\{device="sdc"\} 5/,
    );
  },
);

/** A fixture document with `edit` applied, parsed. */
function editedDoc(name: string, edit: (d: Record<string, unknown>) => void): SmartReport {
  const doc = JSON.parse(readFileSync(join(SMART_FIXTURES, name), "utf8")) as Record<
    string,
    unknown
  >;
  edit(doc);
  const r = parseSmart(JSON.stringify(doc));
  if ("error" in r) throw new Error(r.error);
  return r;
}

const KC400 = "ata-ssd-phison-231-raw74-norm100_kingston-kc400-skc400s371t_exporter.json";

test(
  "Kingston KC400 (Phison): 231 SSD_Life_Left is the raw value (74 % left = 26 % used), " +
    "not the normalised 100",
  (t) => {
    const r = load(KC400);
    t.true(phisonRaw231(r));
    const w = enduranceUsed(r);
    t.is(w?.percentUsed, 26);
    t.regex(w?.source ?? "", /^ATA 231 SSD_Life_Left raw 74 \(life left; Phison/);
    t.is(predictiveCounters(r)["percentage_used"], 26);
    // The A400 (Phison too) has normalised = raw = 98: still 2 % used.
    t.is(
      enduranceUsed(load("ata-ssd-exit4-life-left98_kingston-sa400m8120g_exporter.json"))
        ?.percentUsed,
      2,
    );
    // An installed drivedb without the Phison entry: the Kingston model name still says Phison.
    const noFamily = editedDoc(KC400, (d) => delete d["model_family"]);
    t.is(enduranceUsed(noFamily)?.percentUsed, 26);
    // Worn out: raw 15 left = 85 % used warns, raw 0 fails; a raw that is no percentage is not wear.
    const at = (raw: number) =>
      editedDoc(KC400, (d) => {
        for (const a of (d["ata_smart_attributes"] as { table: Array<Record<string, unknown>> })
          .table)
          if (a["id"] === 231) a["raw"] = { value: raw, string: String(raw) };
      });
    t.is(reason(at(15), "ata_wear")?.level, "warn");
    t.is(reason(at(0), "ata_wear")?.level, "fail");
    t.is(enduranceUsed(at(840)), null);
  },
);

test("231 SSD_Life_Left elsewhere (SandForce, Kingston SF-2281 drives) stays the normalised value", (t) => {
  const sandforce = editedDoc(KC400, (d) => {
    d["model_family"] = "SandForce Driven SSDs";
    d["model_name"] = "KINGSTON SV300S37A240G";
  });
  t.false(phisonRaw231(sandforce));
  t.is(enduranceUsed(sandforce)?.percentUsed, 0, "normalised 100 = nothing used");
  const worn = editedDoc(KC400, (d) => {
    d["model_family"] = "SandForce Driven SSDs";
    d["model_name"] = "KINGSTON SV300S37A240G";
    for (const a of (d["ata_smart_attributes"] as { table: Array<Record<string, unknown>> }).table)
      if (a["id"] === 231) a["value"] = 10;
  });
  t.is(enduranceUsed(worn)?.percentUsed, 90);
});

test(
  "which rule applies, per counter: count rule for 5/197/198/187/184, NVMe media errors and SCSI, " +
    "static or rising; growth rule only for 199 and SSD 188; NVMe error-log entries never judged",
  (t) => {
    const STATIC = { rising: false, delta: 0, watchedMs: 90 * DAY };
    const RISING = { rising: true, delta: 2, watchedMs: 90 * DAY };
    // 5 / 197: non-zero and static for 90 days still warns (not weakened), and says the rule.
    const failing = load("ata-hdd-FAILING-usbjmicron_hitachi-hds721050dle630_scrutiny.json");
    for (const [code, key] of [
      ["attribute_5", "reallocated_sectors"],
      ["attribute_197", "pending_sectors"],
    ] as const) {
      const st = reason(failing, code, { [key]: STATIC });
      t.is(st?.level, "warn", code);
      t.regex(st?.message ?? "", /\(count rule: any non-zero count warns, static or not\)$/, code);
      const up = reason(failing, code, { [key]: RISING });
      t.is(up?.level, "warn", code);
      t.regex(up?.message ?? "", /count rule: .*, rose by 2 within 7 d\)$/, code);
    }
    const f198 = editedDoc("ata-hdd-reallocated304-passed_st3500418as_exporter.json", (d) => {
      for (const a of (d["ata_smart_attributes"] as { table: Array<Record<string, unknown>> })
        .table)
        if (a["id"] === 198) a["raw"] = { value: 4, string: "4" };
    });
    t.is(reason(f198, "attribute_198", { offline_uncorrectable: STATIC })?.level, "warn");
    t.is(
      reason(load("ata-hdd-reported-uncorrect-1_hp-mb0500ebncr_exporter.json"), "attribute_187", {
        reported_uncorrectable: STATIC,
      })?.level,
      "warn",
    );
    // NVMe media errors: unrecovered data, static is not harmless.
    const media = load("nvme-media-errors_samsung-970evo_scrutiny.json");
    const ms = reason(media, "nvme_media_errors", { media_errors: STATIC });
    t.is(ms?.level, "warn");
    t.regex(ms?.message ?? "", /unrecovered media errors \(count rule/);
    t.regex(
      reason(media, "nvme_media_errors", { media_errors: RISING })?.message ?? "",
      /rose by 2 within 7 d/,
    );
    // NVMe error-log entries: info whether static or rising, and the reason says why.
    const errlog = load("nvme-healthy-errlog4871-v7.4_sabrent-rocket4_telegraf.json");
    for (const tr of [STATIC, RISING]) {
      const e = judge(errlog, { error_log_entries: tr });
      t.is(e.verdict, "pass");
      t.is(e.reasons.find((x) => x.code === "nvme_error_log")?.level, "info");
      t.regex(
        e.reasons.find((x) => x.code === "nvme_error_log")?.message ?? "",
        /not judged, static or rising/,
      );
    }
    // SCSI grown defects / uncorrected: count rule.
    const scsi = load("scsi-grown-defects-260-uncorrected_seagate-st373453lc_exporter.json");
    t.regex(
      reason(scsi, "scsi_grown_defects", { grown_defects: STATIC })?.message ?? "",
      /count rule/,
    );
    t.is(reason(scsi, "scsi_uncorrected", { uncorrected_errors: STATIC })?.level, "warn");
    // The growth window in the reasons follows the configured one.
    const crc = load("ata-hdd-crc-cable-3M_wd2003fyys_exporter.json");
    t.regex(
      judge(crc, { udma_crc_errors: RISING }, { growthWindowMs: 90_000 }).reasons.find(
        (x) => x.code === "attribute_199",
      )?.message ?? "",
      /rose by 2 within 2 min \(rising rule/,
    );
    t.regex(
      judge(crc, {}, { growthWindowMs: 12_000 }).reasons.find((x) => x.code === "attribute_199")
        ?.message ?? "",
      /first look, no history \(static rule: info; warns if it grows within 12 s\)/,
    );
  },
);

test(
  "smart_attribute_raw: every attribute any fixture exports is in its help text and the README, " +
    "and every listed one is exported by some fixture",
  async (t) => {
    const { readdirSync } = await import("node:fs");
    const files = readdirSync(SMART_FIXTURES).filter(
      (f) => f.endsWith(".json") && !f.startsWith("scan-"),
    );
    const seen = new Set<string>();
    for (const f of files) {
      const r = parseSmart(readFileSync(join(SMART_FIXTURES, f), "utf8"));
      if (!("error" in r)) for (const k of Object.keys(predictiveCounters(r))) seen.add(k);
    }
    const listed = EXPORTED_ATTRIBUTES.map(([k]) => k);
    t.deepEqual(
      [...seen].filter((k) => !listed.includes(k)),
      [],
      "exported but not listed",
    );
    t.deepEqual(
      listed.filter((k) => !seen.has(k)),
      [],
      "listed but never exported",
    );
    const registry = new Registry();
    // The help text is the sink's: the collector itself registers no metrics.
    smartSinks(registry, quietLog);
    const help =
      (await registry.getSingleMetric("stemedb_agent_smart_attribute_raw")?.get())?.help ?? "";
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    const metricsSection = readme.slice(
      readme.indexOf("### SMART\n"),
      readme.indexOf("### Kernel log"),
    );
    for (const k of listed) {
      t.true(new RegExp(`\\b${k} \\(`).test(help), `${k} in the help text: ${help}`);
      t.true(metricsSection.includes(`\`${k}\``), `${k} in the README's SMART metrics`);
    }
  },
);
