import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import { Registry } from "prom-client";
import { HistoryStore } from "../core/history/store.js";
import { CoreMetrics } from "../core/metrics/registry.js";
import { SmartCollector } from "../collectors/smart/collector.js";
import { smartSinks } from "../collectors/smart/sink.js";
import { decodeExitStatus, parseSmart } from "../collectors/smart/parse.js";
import { judge } from "../collectors/smart/verdict.js";
import { spawnSync } from "node:child_process";
import { fetchText, hasCommand, startAgent, tempDir } from "./helpers/agent-process.js";
import { type FakeBehaviour, fakeSmartctl, SMART_FIXTURES } from "./helpers/fake-smartctl.js";
import { alive, defaultRetention, quietLog, routed, sleep } from "./helpers/quiet.js";
import { isolatedCommand, shouldIsolate } from "../collectors/smart/isolate.js";
import { withHistoryFile } from "./helpers/history-file.js";

/** What each fixture's MANIFEST entry describes, as (collect state, verdict, reason codes that must be present). */
const EXPECTED: Record<string, [string, string, string[]]> = {
  "ata-hdd-FAILING-usbjmicron_hitachi-hds721050dle630_scrutiny.json": [
    "ok",
    "fail",
    ["smart_status", "attribute_5_failing", "attribute_197", "error_log", "selftest_log"],
  ],
  // A CRC count seen once, with no growth, is info (the rising rule); was "warn".
  "ata-hdd-crc-cable-3M_wd2003fyys_exporter.json": ["ok", "pass", ["attribute_199"]],
  "ata-hdd-errorlog-exit64-crc12_hgst-hus724020ale640_exporter.json": [
    "ok",
    "warn",
    ["error_log", "attribute_199"],
  ],
  "ata-hdd-healthy_wdc-wuh721818ale6l4_exporter.json": ["ok", "pass", []],
  "ata-hdd-megaraid-reallocated-attrcheck-exit4_wd4000fyyx_scrutiny.json": [
    "ok",
    "warn",
    ["attribute_5"],
  ],
  "ata-hdd-reallocated304-passed_st3500418as_exporter.json": ["ok", "warn", ["attribute_5"]],
  "ata-ssd-healthy-xall_samsung-860evo_scrutiny.json": ["ok", "pass", []],
  "ata-ssd-healthy_samsung-mz7lh1t9hmlt_exporter.json": ["ok", "pass", []],
  "error-open-failed-exit2_windows_scrutiny.json": ["error", "unknown", []],
  "error-raid-volume-exit4_intel-raid1_scrutiny.json": ["ok", "unknown", ["no_health"]],
  "nvme-CRITICAL-WARNING-exit8_samsung-mzwll3t2hajq_exporter.json": [
    "ok",
    "fail",
    ["smart_status", "nvme_critical_warning"],
  ],
  "nvme-healthy-errlog4871-v7.4_sabrent-rocket4_telegraf.json": ["ok", "pass", ["nvme_error_log"]],
  "nvme-healthy_samsung-mzql21t9hcjr_exporter.json": ["ok", "pass", []],
  "nvme-media-errors_samsung-970evo_scrutiny.json": ["ok", "warn", ["nvme_media_errors"]],
  "nvme-wear-75pct_intel-ssdpe2kx020t7_exporter.json": ["ok", "pass", ["nvme_wear"]],
  "sas-healthy_hitachi-h109060sesun600g_exporter.json": ["ok", "pass", []],
  "scsi-grown-defects-260-uncorrected_seagate-st373453lc_exporter.json": [
    "ok",
    "warn",
    ["scsi_grown_defects", "scsi_uncorrected"],
  ],
  "usb-sat-ssd_sandisk-pssd_telegraf.json": ["ok", "pass", []],
  // Issue 17: wear, packed raw values, 184, static vs rising counters, look-alikes.
  "ata-ssd-WEAR-85pct-mwi15_intel-s3500-ssdsc2bb016t4_exporter.json": ["ok", "warn", ["ata_wear"]],
  "ata-ssd-wear-78pct-mwi22_intel-s3500-ssdsc2bb240g4_exporter.json": ["ok", "pass", ["ata_wear"]],
  "ata-ssd-wear-50pct-mwi50_intel-s3510-ssdsc2bb240g6_exporter.json": ["ok", "pass", ["ata_wear"]],
  "ata-ssd-crc3-static_intel-s3500-ssdsc2bb480g4_exporter.json": ["ok", "pass", ["attribute_199"]],
  "ata-ssd-healthy-wear18_intel-s3520-ssdsc2bb800g7_exporter.json": ["ok", "pass", []],
  "ata-ssd-wear45_intel-s4500-ssdsc2kb240g7_exporter.json": ["ok", "warn", ["attribute_5"]],
  "ata-ssd-healthy_intel-s4510-ssdsc2kb019t8_exporter.json": ["ok", "pass", []],
  "ata-ssd-LOOKALIKE-233-is-lbas-written_dell-intel-s3520_exporter.json": ["ok", "pass", []],
  "ata-ssd-E2E-ERROR-184_micron-5300-mtfddak1t9tds_exporter.json": [
    "ok",
    "warn",
    ["attribute_184", "attribute_188", "attribute_199"],
  ],
  "ata-ssd-healthy-ssd-timeouts8_micron-5300-mtfddak960tds_exporter.json": [
    "ok",
    "pass",
    ["attribute_188"],
  ],
  "ata-ssd-crc2-timeouts27_micron-5300-mtfddak480tds_exporter.json": [
    "ok",
    "pass",
    ["attribute_188", "attribute_199"],
  ],
  "ata-ssd-healthy_micron-5210-mtfddak960qde_exporter.json": ["ok", "pass", []],
  "ata-ssd-exit4-life-left98_kingston-sa400m8120g_exporter.json": ["ok", "pass", []],
  // Phison: 231 life left is the raw value (74), the normalised one stays at 100; 5 Retired_Block_Count 1 warns.
  "ata-ssd-phison-231-raw74-norm100_kingston-kc400-skc400s371t_exporter.json": [
    "ok",
    "warn",
    ["attribute_5"],
  ],
  "ata-ssd-healthy-wlc98_samsung-pm893-mz7l3240hchq_exporter.json": ["ok", "pass", []],
  "ata-ssd-healthy_samsung-pm883-mz7lh480hahq_exporter.json": ["ok", "pass", []],
  "ata-ssd-LOOKALIKE-202-exception-mode_samsung-sm843t_exporter.json": ["ok", "pass", []],
  "ata-ssd-healthy-smi_transcend-mts400_exporter.json": ["ok", "pass", []],
  "ata-hdd-PACKED-188-raw17180131332-is-4_seagate-st3000nm0033_exporter.json": [
    "ok",
    "warn",
    ["attribute_188"],
  ],
  "ata-hdd-PACKED-188-raw51540393996-is-12_seagate-exos-x16_exporter.json": [
    "ok",
    "warn",
    ["attribute_188"],
  ],
  "ata-hdd-PACKED-188-string-2-2-2_seagate-st2000nm0008_exporter.json": [
    "ok",
    "warn",
    ["attribute_188"],
  ],
  "ata-hdd-healthy-packed-rates_seagate-st10000nm0016_exporter.json": ["ok", "pass", []],
  "ata-hdd-seek-errors-12-packed_seagate-st32000644ns_exporter.json": ["ok", "pass", []],
  "ata-hdd-command-timeout-1_seagate-st3500418as_exporter.json": ["ok", "warn", ["attribute_188"]],
  "ata-hdd-errorlog-exit64_seagate-st3200820as_exporter.json": ["ok", "warn", ["error_log"]],
  "ata-hdd-reported-uncorrect-1_hp-mb0500ebncr_exporter.json": ["ok", "warn", ["attribute_187"]],
  "ata-hdd-healthy-rre114_wdc-wd20efrx_exporter.json": ["ok", "pass", []],
  "ata-hdd-healthy-rre786446_hitachi-hds721010cla332_exporter.json": ["ok", "pass", []],
  "ata-hdd-errorlog-exit64_toshiba-mg05aca800e_exporter.json": ["ok", "warn", ["error_log"]],
  "nvme-wear-73pct_intel-p4510-ssdpe2kx010t8_exporter.json": ["ok", "pass", ["nvme_wear"]],
  "nvme-wear-51pct_intel-p3700-ssdpedmd800g4_exporter.json": ["ok", "pass", ["nvme_wear"]],
  "nvme-wear-69pct_micron-9200-mtfdhax1t6mce_exporter.json": ["ok", "pass", ["nvme_wear"]],
  "nvme-healthy_toshiba-xg6-kxg60znv512g_exporter.json": ["ok", "pass", []],
  "scsi-healthy_hp-mas3735nc_exporter.json": ["ok", "pass", []],
  "ata-ssd-crc108-static_samsung-840_scrutiny.json": ["ok", "pass", ["attribute_199"]],
  "ata-ssd-healthy_samsung-850pro_scrutiny.json": ["ok", "pass", []],
  "nvme-healthy_corsair-mp510_scrutiny.json": ["ok", "pass", []],
  "sas-healthy_seagate-st1200mm0088_scrutiny.json": ["ok", "pass", []],
  "local-smartctl-7.3/bad-option-exit1.json": ["error", "unknown", []],
  "local-smartctl-7.3/loop-d-nvme-identify-failed-exit2.json": ["error", "unknown", []],
  "local-smartctl-7.3/loop-d-sat-T-permissive-exit6.json": ["error", "unknown", []],
  "local-smartctl-7.3/loop-d-sat-n-standby-SLEEP-exit2.json": ["standby", "unknown", []],
  "local-smartctl-7.3/loop-d-sat-n-standby7-SLEEP-exit7.json": ["standby", "unknown", []],
  "local-smartctl-7.3/loop-d-scsi-inquiry-failed-exit2-no-message.json": ["error", "unknown", []],
  "local-smartctl-7.3/nonexistent-unable-to-detect-exit1.json": ["unsupported", "unknown", []],
  "local-smartctl-7.3/vda-d-sat-open-failed-eperm-exit2.json": ["error", "unknown", []],
  "local-smartctl-7.3/vda-virtio-unable-to-detect-exit1.json": ["unsupported", "unknown", []],
};

function smart(
  dir: string,
  smartctl: string,
  devices: string[],
  extra: {
    timeout?: number;
    interval?: number;
    wait?: boolean;
    history?: HistoryStore;
    registry?: Registry;
  } = {},
) {
  const sys = join(dir, "empty-sys");
  mkdirSync(join(sys, "block"), { recursive: true }); // no physical disks: only the listed ones
  const registry = extra.registry ?? new Registry();
  const history = extra.history ?? null;
  const { col, once } = routed(
    smartSinks(registry, quietLog),
    history,
    (emit) =>
      new SmartCollector({
        smartctl,
        isolateWith: null,
        interval: extra.interval ?? 600_000,
        timeout: extra.timeout ?? 10_000,
        devices,
        sysPath: sys,
        devPath: "/dev",
        waitForRuns: extra.wait ?? true,
        state: history,
        emit,
        log: quietLog,
      }),
  );
  return { col, registry, once };
}

test("every captured fixture yields the state and verdict its MANIFEST entry describes", async (t) => {
  const { dir } = tempDir();
  const devices: Record<string, FakeBehaviour> = {};
  const names = Object.keys(EXPECTED).map((f, i) => {
    devices[`/dev/fx${i}`] = f;
    return `/dev/fx${i}`;
  });
  const fake = fakeSmartctl(dir, devices);
  const { once, col } = smart(dir, fake.path, names);
  t.teardown(() => col.close());
  const o = await once();
  const byName = new Map(o.devices.map((d) => [d.name, d]));
  const table: string[] = [];
  for (const [i, [file, [state, verdict, codes]]] of Object.entries(EXPECTED).entries()) {
    const d = byName.get(`/dev/fx${i}`);
    table.push(`${file.padEnd(72)} ${d?.state.padEnd(12)} ${d?.verdict}`);
    t.is<string | undefined, string>(d?.state, state, file);
    t.is<string | undefined, string>(d?.verdict, verdict, file);
    for (const c of codes)
      t.true(
        d?.reasons.some((r) => r.code === c),
        `${file}: reason ${c} in ${JSON.stringify(d?.reasons.map((r) => r.code))}`,
      );
  }
  t.log(`\n${table.join("\n")}`);
  // Every device was polled with the documented arguments: JSON, all, never wake a sleeping disk.
  t.true(
    fake
      .calls()
      .filter((c) => !c.includes("--scan-open"))
      .every((c) => c.startsWith("--json=c -a -n standby")),
  );
});

test("the exit-status bitmask is decoded bit by bit", (t) => {
  t.deepEqual(
    decodeExitStatus(216).map((b) => b.bit),
    [3, 4, 6, 7],
  );
  t.regex(decodeExitStatus(64)[0]?.meaning ?? "", /error log/);
  t.deepEqual(decodeExitStatus(0), []);
});

test("big counters are read from their _s twins (128-bit NVMe counters do not fit a JSON number)", (t) => {
  // smartctl writes a >64-bit counter's JSON number truncated and the exact value as "KEY_s".
  const text =
    '{"smartctl":{"version":[7,4],"exit_status":0},"device":{"name":"/dev/nvme0","type":"nvme","proto' +
    'col":"NVMe"},"smart_status":{"passed":true},' +
    ('"nvme_smart_health_information_log":{"critical_warning":0,"media_errors":123,"media_errors_s":"1' +
      '8446744073709551739","media_errors_le":[123,0,0,0,0,0,0,0,1]}}');
  const r = parseSmart(text);
  if ("error" in r) return t.fail(r.error);
  t.is(r.nvme?.mediaErrors, Number("18446744073709551739"), "not the truncated 123");
});

test(
  "a hung smartctl is killed with its process group at the timeout, marks the device unresponsive, " +
    "and never delays the others",
  async (t) => {
    const { dir } = tempDir();
    const fake = fakeSmartctl(dir, {
      "/dev/hang": "hang",
      "/dev/ok": "ata-hdd-healthy_wdc-wuh721818ale6l4_exporter.json",
    });
    const { once, col, registry } = smart(dir, fake.path, ["/dev/hang", "/dev/ok"], {
      timeout: 1000,
      wait: false,
    });
    t.teardown(() => col.close());
    // Ordering, not a duration (a loaded CI machine makes any time limit flaky): the first tick
    // comes back before smartctl's timeout has even judged the hung device.
    const first = await once();
    t.not(
      first.devices.find((d) => d.name === "/dev/hang")?.state,
      "unresponsive",
      "the tick does not wait for smartctl",
    );
    await sleep(400);
    const early = await once();
    t.is(
      early.devices.find((d) => d.name === "/dev/ok")?.verdict,
      "pass",
      "the healthy disk's result is there while the other hangs",
    );
    const sleeper = Number(readFileSync(fake.hangPidFile, "utf8"));
    t.true(alive(sleeper));
    await sleep(1500);
    const late = await once();
    const hung = late.devices.find((d) => d.name === "/dev/hang");
    t.is(hung?.state, "unresponsive");
    t.regex(hung?.detail ?? "", /did not finish within 1s; killed/);
    t.false(alive(sleeper), "smartctl's child was killed with the group");
    t.is(
      fake.calls().filter((c) => c.endsWith("/dev/hang")).length,
      1,
      "never a second smartctl for the same device",
    );
    t.regex(
      await registry.metrics(),
      /stemedb_agent_smart_collect_state\{device="hang",state="unresponsive"\} 1/,
    );
  },
);

test("a device found without a type is polled with the type smartctl detected the first time", async (t) => {
  const { dir } = tempDir();
  const fake = fakeSmartctl(dir, {
    "/dev/sdy": "ata-hdd-healthy_wdc-wuh721818ale6l4_exporter.json",
  });
  const { once, col } = smart(dir, fake.path, ["/dev/sdy"], { interval: 1 });
  t.teardown(() => col.close());
  await once();
  await sleep(5);
  await once();
  const polls = fake.calls().filter((c) => c.endsWith("/dev/sdy"));
  t.deepEqual(polls, ["--json=c -a -n standby /dev/sdy", "--json=c -a -n standby -d sat /dev/sdy"]);
});

test("garbage output is an error state with a clear reason, not a crash", async (t) => {
  const { dir } = tempDir();
  const fake = fakeSmartctl(dir, { "/dev/junk": "garbage" });
  const { once, col } = smart(dir, fake.path, ["/dev/junk"]);
  t.teardown(() => col.close());
  const d = (await once()).devices[0];
  t.is(d?.state, "error");
  t.regex(d?.detail ?? "", /unreadable smartctl output \(exit 0\): not JSON/);
});

test("discovery uses --scan-open, and MegaRAID members sharing a name are two devices", async (t) => {
  const { dir } = tempDir();
  const fake = fakeSmartctl(dir, {}, "scan-megaraid_scrutiny.json");
  const { once, col, registry } = smart(dir, fake.path, []);
  t.teardown(() => col.close());
  const o = await once();
  t.deepEqual(o.devices.map((d) => d.device).sort(), ["bus_0_megaraid_0", "bus_0_megaraid_1"]);
  t.true(fake.calls().some((c) => c.endsWith("-d megaraid,1 /dev/bus/0")));
  t.regex(
    await registry.metrics(),
    /stemedb_agent_smart_verdict\{device="bus_0_megaraid_1",verdict="unknown"\} 1/,
  );
});

test("a sleeping disk is standby, not an error, and keeps the verdict it had awake", async (t) => {
  const { dir } = tempDir();
  const fake = fakeSmartctl(dir, {
    "/dev/sdz": "ata-hdd-reallocated304-passed_st3500418as_exporter.json",
  });
  const { once, col, registry } = smart(dir, fake.path, ["/dev/sdz"], { interval: 1 });
  t.teardown(() => col.close());
  t.is((await once()).devices[0]?.verdict, "warn");
  fake.set("/dev/sdz", "local-smartctl-7.3/loop-d-sat-n-standby-SLEEP-exit2.json");
  await sleep(5);
  const asleep = (await once()).devices[0];
  t.is(asleep?.state, "standby");
  t.regex(asleep?.detail ?? "", /SLEEP mode; not woken/);
  t.is(asleep?.verdict, "warn", "the awake verdict is kept, not turned into unknown");
  t.is(asleep?.counters["reallocated_sectors"], 304);
  const text = await registry.metrics();
  t.regex(text, /stemedb_agent_smart_collect_state\{device="sdz",state="standby"\} 1/);
  t.regex(text, /stemedb_agent_smart_verdict\{device="sdz",verdict="warn"\} 1/);
});

test(
  "counter increases are remembered across restarts and raise an event with the delta and the " +
    "time since",
  async (t) => {
    const { dir } = tempDir();
    const base = JSON.parse(
      readFileSync(
        join(SMART_FIXTURES, "ata-hdd-reallocated304-passed_st3500418as_exporter.json"),
        "utf8",
      ),
    ) as {
      ata_smart_attributes: {
        table: Array<{ id: number; raw: { value: number; string: string } }>;
      };
    };
    const grown = structuredClone(base);
    for (const a of grown.ata_smart_attributes.table)
      if (a.id === 5) a.raw = { value: 310, string: "310" };
    mkdirSync(join(dir, "fx"));
    writeFileSync(join(dir, "fx", "grown.json"), JSON.stringify(grown));
    const fake = fakeSmartctl(dir, {
      "/dev/sdq": "ata-hdd-reallocated304-passed_st3500418as_exporter.json",
    });
    const open = () =>
      new HistoryStore({
        stateDir: join(dir, "state"),
        retention: defaultRetention(),
        log: quietLog,
        metrics: new CoreMetrics(),
      });

    const h1 = open();
    const a = smart(dir, fake.path, ["/dev/sdq"], { history: h1 });
    await a.once();
    a.col.close();
    h1.close(); // the agent restarts

    fake.set("/dev/sdq", join(dir, "fx", "grown.json"));
    const h2 = open();
    const b = smart(dir, fake.path, ["/dev/sdq"], { history: h2 });
    await b.once();
    b.col.close();
    h2.flush();
    const ev = withHistoryFile(
      h2,
      (db) =>
        db
          .prepare("SELECT message, data FROM events WHERE kind = 'smart.counter_increased'")
          .all() as Array<{ message: string; data: string }>,
    );
    h2.close();
    t.is(ev.length, 1);
    t.regex(ev[0]?.message ?? "", /reallocated_sectors rose by 6 to 310 in \d+ min/);
    t.like(JSON.parse(ev[0]?.data ?? "{}"), {
      attribute: "reallocated_sectors",
      previous: 304,
      current: 310,
      delta: 6,
    });
  },
);

test("smartctl missing is one clear error, not noise per device", async (t) => {
  const { dir } = tempDir();
  const { once, col } = smart(dir, join(dir, "no-such-smartctl"), []);
  t.teardown(() => col.close());
  const o = await once();
  t.regex(o.smartctl_error ?? "", /cannot run .*no-such-smartctl/);
  t.deepEqual(o.devices, []);
});

test("the real smartctl on this machine reports its disks as unsupported, cleanly", async (t) => {
  if (!hasCommand("smartctl"))
    return t.pass("skipped: smartctl not installed (npm test installs smartmontools as root)");
  const registry = new Registry();
  const { col, once } = routed(
    smartSinks(registry, quietLog),
    null,
    (emit) =>
      new SmartCollector({
        isolateWith: null,
        smartctl: "smartctl",
        interval: 600_000,
        timeout: 30_000,
        devices: [],
        sysPath: "/sys",
        devPath: "/dev",
        waitForRuns: true,
        state: null,
        emit,
        log: quietLog,
      }),
  );
  t.teardown(() => col.close());
  const o = await once();
  t.is(o.smartctl_error, null);
  t.true(o.devices.length > 0, "the physical disks from sysfs are tried");
  for (const d of o.devices) {
    t.true(
      d.state === "unsupported" || d.state === "ok" || d.state === "standby",
      `${d.name}: ${d.state} ${d.detail}`,
    );
  }
  t.log(o.devices.map((d) => `${d.name}: ${d.state} (${d.detail})`).join("\n"));
});

test(
  "through the running agent: SMART series on /metrics, promtool-clean, " +
    "and a hang never delays the scrape",
  async (t) => {
    const { dir } = tempDir();
    const fake = fakeSmartctl(dir, {
      "/dev/sda": "ata-hdd-FAILING-usbjmicron_hitachi-hds721050dle630_scrutiny.json",
      "/dev/nvme0": "nvme-CRITICAL-WARNING-exit8_samsung-mzwll3t2hajq_exporter.json",
      "/dev/sdb": "scsi-grown-defects-260-uncorrected_seagate-st373453lc_exporter.json",
      "/dev/sdh": "hang",
    });
    mkdirSync(join(dir, "sys", "block"), { recursive: true });
    const a = await startAgent({
      extraToml:
        `[host]\nsys_path = "${join(dir, "sys")}"\n[collectors.smart]\nsmartctl = "${fake.path}"\n` +
        `timeout = "30s"\ndevices = ["/dev/sda;sat", "/dev/nvme0;nvme", "/dev/sdb;scsi", "/dev/sdh"]\n` +
        `[collectors.diskstats]\nenabled = false\n[collectors.procio]\nenabled = false\n[collectors.kmsg]\n` +
        `enabled = false\n`,
    });
    // SIGTERM, not SIGKILL: stopping kills the hung smartctl's process group (systemd would kill the cgroup).
    t.teardown(() => a.stop("SIGTERM"));
    let text = "";
    for (let i = 0; i < 100 && !/device="sdb",verdict="warn"\} 1/.test(text); i++) {
      await sleep(200);
      const t0 = performance.now();
      text = (await fetchText(`${a.url}/metrics`)).text;
      t.true(performance.now() - t0 < 1000, "a scrape never waits for smartctl");
    }
    t.regex(text, /stemedb_agent_smart_verdict\{device="sda",verdict="fail"\} 1/);
    t.regex(text, /stemedb_agent_smart_verdict\{device="nvme0",verdict="fail"\} 1/);
    t.regex(
      text,
      /stemedb_agent_smart_attribute_raw\{device="sda",attribute="reallocated_sectors"\} 1975/,
    );
    t.regex(
      text,
      /stemedb_agent_smart_attribute_raw\{device="sdb",attribute="grown_defects"\} 260/,
    );
    t.regex(text, /stemedb_agent_smart_exit_status\{device="sda"\} 216/);
    t.regex(
      text,
      /stemedb_agent_smart_info\{device="nvme0",type="nvme",protocol="NVMe",model="SAMSUNG MZWLL3T2HAJQ-00005"/,
    );
    if (hasCommand("promtool")) {
      const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
      t.is(`${r.stdout}${r.stderr}`.trim(), "");
    }
  },
);

test(
  "isolate: auto runs smartctl apart only as root under systemd without CAP_SYS_RAWIO; " +
    "the command keeps smartctl's args and bounds its life",
  (t) => {
    const { dir } = tempDir();
    const proc = (capEff: string) => {
      const p = join(dir, `proc-${capEff}`);
      mkdirSync(join(p, "self"), { recursive: true });
      writeFileSync(
        join(p, "self", "status"),
        `Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t${capEff}\nCapBnd:\t${capEff}\n`,
      );
      return p;
    };
    const hardened = proc("00000000000c0400"); // CAP_SYSLOG, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH
    const full = proc("000001ffffffffff");
    const root = { uid: 0, systemdRunning: true };
    t.true(shouldIsolate("auto", hardened, root));
    t.false(
      shouldIsolate("auto", full, root),
      "a root agent with every capability runs smartctl itself",
    );
    t.false(
      shouldIsolate("auto", hardened, { uid: 0, systemdRunning: false }),
      "no systemd to ask",
    );
    t.false(
      shouldIsolate("auto", hardened, { uid: 1000, systemdRunning: true }),
      "not root: PID 1 would ask polkit",
    );
    t.false(shouldIsolate("auto", join(dir, "nowhere"), root));
    t.true(shouldIsolate("always", full, { uid: 1000, systemdRunning: false }));
    t.false(shouldIsolate("never", hardened, root));
    const cmd = isolatedCommand(
      "/usr/bin/systemd-run",
      "/usr/sbin/smartctl",
      ["--json=c", "-a", "-n", "standby", "/dev/sda"],
      60_000,
    );
    t.is(cmd.file, "/usr/bin/systemd-run");
    t.deepEqual(cmd.args.slice(cmd.args.indexOf("--")), [
      "--",
      "/usr/sbin/smartctl",
      "--json=c",
      "-a",
      "-n",
      "standby",
      "/dev/sda",
    ]);
    t.true(cmd.args.includes("--wait") && cmd.args.includes("--pipe"));
    t.true(cmd.args.includes("RuntimeMaxSec=65"), "a smartctl the agent gave up on still ends");
    t.true(cmd.args.includes("CapabilityBoundingSet=CAP_SYS_RAWIO CAP_SYS_ADMIN"));
    t.true(cmd.args.includes("PrivateNetwork=yes") && cmd.args.includes("DevicePolicy=closed"));
  },
);

test("an NVMe critical warning fails the drive even when smartctl's overall status says passed", (t) => {
  // The captured CRITICAL-WARNING drive also fails smart_status, so it cannot show that the
  // critical warning alone decides: a healthy drive's report with only that field changed.
  const src = JSON.parse(
    readFileSync(join(SMART_FIXTURES, "nvme-healthy_samsung-mzql21t9hcjr_exporter.json"), "utf8"),
  ) as Record<string, Record<string, unknown>>;
  const healthy = parseSmart(JSON.stringify(src));
  if ("error" in healthy) return t.fail(healthy.error);
  t.is(judge(healthy).verdict, "pass", "the unchanged fixture passes");
  for (const bit of [0x01, 0x04, 0x08]) {
    const doc = structuredClone(src);
    (doc["nvme_smart_health_information_log"] as Record<string, unknown>)["critical_warning"] = bit;
    (doc["smart_status"] as Record<string, unknown>)["passed"] = true;
    const r = parseSmart(JSON.stringify(doc));
    if ("error" in r) return t.fail(r.error);
    t.is(r.passed, true, "smartctl's overall status still says passed");
    t.is(judge(r).verdict, "fail", `critical_warning 0x${bit.toString(16)}`);
  }
});
