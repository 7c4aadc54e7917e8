// pass | warn | fail | unknown for one device, with the reasons. Pure.
//
// Sources (named per rule below and in the README SMART table):
// - The drive's own verdict: smart_status.passed (ATA SMART RETURN STATUS, NVMe critical
//   warning, SCSI informational exceptions). false => fail.
// - Backblaze (2014, 2016 drive-stats posts): the raw values of ATA 5, 187, 188, 197, 198 are
//   the counters that predict failure while SMART still says PASSED; any of them > 0 is their
//   trigger to investigate => warn. Backblaze Q3 2019: non-zero 197/198 mark failing media.
// - 184 End-to-End (IOEDC) errors: parity failed inside the drive's data path => warn.
// - 199 UDMA CRC errors (and 188 on SSDs) are link signals: warn only while rising
//   (trend.ts), a static count is info.
// - SATA SSD wear (device statistics, 233/177/202/231 by drivedb name) like NVMe wear.
// The full table with sources: README "SMART".
// - NVMe (NVMe base spec; scrutiny's rules): critical_warning != 0 or spare below its own
//   threshold => fail; media_errors > 0 => warn; percentage_used >= 80 => warn, >= 100 => fail
//   (the vendor's endurance estimate is spent); error-log entries are usually benign => info.
// - SCSI: grown defects and uncorrected errors never flip `passed` => warn when > 0.
// - Temperature against the drive's own limit (SCSI drive_trip, ATA SCT op_limit_max):
//   at or above it => fail, within 5 degrees of it => warn.
// - Exit bits 5, 6, 7 (attribute below threshold in the past; error log; self-test log) => warn.
import { type AtaAttribute, nvmeCriticalBits, type SmartReport } from "./parse.js";
import { RISE_WINDOW_MS, type Trends } from "./trend.js";

export type SmartVerdict = "pass" | "warn" | "fail" | "unknown";

export interface Reason {
  readonly level: "fail" | "warn" | "info";
  readonly code: string;
  readonly message: string;
}

export interface VerdictResult {
  readonly verdict: SmartVerdict;
  readonly reasons: Reason[];
}

type CounterRule =
  /** any raw > 0 warns (Backblaze's "reason to investigate") */
  | "any"
  /** harmless once, harmful when it grows: warn only while rising */
  | "rising"
  /** "any" on spinning disks (Backblaze's data), "rising" on SSDs */
  | "any-hdd";

interface AtaCounter {
  readonly id: number;
  readonly key: string;
  readonly what: string;
  readonly rule: CounterRule;
  /** Attribute names smartctl gives this meaning; other drives reuse the ID (drivedb.h). */
  readonly names?: RegExp;
}

/** The ATA counters that are judged. Sources: README "SMART verdict". */
export const ATA_COUNTERS: readonly AtaCounter[] = [
  { id: 5, key: "reallocated_sectors", what: "reallocated sectors", rule: "any" },
  // IOEDC: parity over the drive's internal data path (buffer, FIFO) failed; on writes
  // the drive may have stored bad data (Seagate Barracuda ES+ product manual, 4.3.3).
  {
    id: 184,
    key: "end_to_end_errors",
    what: "end-to-end (IOEDC) parity errors inside the drive",
    rule: "any",
    names: /End-to-End/i,
  },
  { id: 187, key: "reported_uncorrectable", what: "reported uncorrectable errors", rule: "any" },
  // Micron and other SSDs count host-side aborts here; healthy ones show tens.
  {
    id: 188,
    key: "command_timeouts",
    what: "command timeouts",
    rule: "any-hdd",
    names: /Command_Timeout/i,
  },
  { id: 197, key: "pending_sectors", what: "sectors pending reallocation", rule: "any" },
  { id: 198, key: "offline_uncorrectable", what: "offline uncorrectable sectors", rule: "any" },
  // 199 is "Host_Writes_GiB" on some SSDs: only the CRC meanings count.
  {
    id: 199,
    key: "udma_crc_errors",
    what: "UDMA CRC errors (cable, connector or backplane)",
    rule: "rising",
    names: /CRC/i,
  },
];

/** [id, key, what] of the judged ATA counters (the old table's shape). */
export const ATA_PREDICTIVE: ReadonlyArray<readonly [number, string, string]> = ATA_COUNTERS.map(
  (c) => [c.id, c.key, c.what] as const,
);

const W16 = 0x10000;
const W32 = 0x100000000;

/** The three 16-bit words of a 48-bit raw value, lowest first. */
export function rawWords(raw: number): [number, number, number] {
  const r = Number.isFinite(raw) && raw > 0 ? Math.floor(raw) : 0;
  return [r % W16, Math.floor(r / W16) % W16, Math.floor(r / W32) % W16];
}

/** Seagate spinning disks pack 1, 7 and 195 as raw24/raw32 (drivedb.h presets). */
function seagateHdd(r: SmartReport): boolean {
  const id = r.identity;
  return (
    id.rotationRate !== 0 && (/Seagate/i.test(id.family ?? "") || /^ST\d/.test(id.model ?? ""))
  );
}

/**
 * The count in an attribute's raw value, decoded as smartctl's -v formats do.
 * 188 raw16 ("-v 188,raw16", Seagate and others): three 16-bit counters, the lowest
 * the total (0x0005_0005_0005 is 5 timeouts, not 21475164165). 1, 7, 195 raw24/raw32
 * on Seagate: errors in the top 16 bits, operations in the low 32. raw.string shows
 * the decoded form when drivedb applied the preset, so it is read first.
 */
export function decodeRaw(a: AtaAttribute, seagate: boolean): number {
  const s = a.rawString.trim();
  if (a.id === 188) {
    const m = /^(\d+) (\d+) (\d+)$/.exec(s);
    if (m) return Number(m[3]);
    const [w0, w1, w2] = rawWords(a.raw);
    // Packed only when the words nest like the counters do (total >= >5 s >= >7.5 s).
    if (a.raw >= W16 && w0 >= w1 && w1 >= w2 && w2 > 0) return w0;
    return a.raw;
  }
  if (a.id === 1 || a.id === 7 || a.id === 195) {
    const m = /^(\d+)\/(\d+)$/.exec(s);
    if (m) return Number(m[1]);
    if (seagate) return rawWords(a.raw)[2];
  }
  return a.raw;
}

function counterOf(r: SmartReport, c: AtaCounter): { a: AtaAttribute; value: number } | null {
  const a = r.ata?.attributes.find((x) => x.id === c.id && (!c.names || c.names.test(x.name)));
  return a ? { a, value: decodeRaw(a, seagateHdd(r)) } : null;
}

export interface Wear {
  /** Percent of the rated endurance used (may exceed 100). */
  readonly percentUsed: number;
  /** Which field it came from, for the reason. */
  readonly source: string;
}

/**
 * SATA SSD wear attributes by ID and drivedb name, and how to read them.
 * "remaining": normalised value = percent of life left (counts down from 100);
 * "used": raw value = percent of rated life used (counts up).
 */
const WEAR_ATTRS: ReadonlyArray<{ id: number; name: string; read: "remaining" | "used" }> = [
  { id: 233, name: "Media_Wearout_Indicator", read: "remaining" }, // Intel: 100 down to 1
  { id: 177, name: "Wear_Leveling_Count", read: "remaining" }, // Samsung: 100 down
  { id: 202, name: "Percent_Lifetime_Remain", read: "remaining" }, // Micron: norm = 100 - raw
  // SandForce (Kingston SF-2281 too); Phison: raw, see phisonRaw231
  { id: 231, name: "SSD_Life_Left", read: "remaining" },
  { id: 202, name: "Percent_Lifetime_Used", read: "used" }, // ATP
  { id: 202, name: "Perc_Rated_Life_Used", read: "used" }, // Crucial/Micron RealSSD, others
];

/**
 * Phison-controller SSDs (drivedb.h "Phison Driven SSDs" and "Phison Driven OEM SSDs": Kingston
 * KC400, A400, UV300, DC400/DC500/DC600M, HyperX Savage, Goodram, Patriot, ...) declare
 * "-v 231,raw48,SSD_Life_Left": the life left is the raw value, and their normalised values sit
 * at 100 (KC400: normalised 100, raw 74). Known by the family smartctl printed, or, when the
 * installed drivedb predates the entry, by the Kingston Phison model names from that record.
 */
const PHISON_FAMILY = /^Phison Driven/i;
const KINGSTON_PHISON = new RegExp(
  "^KINGSTON +(SKC400S37|SA400(M8|S37)|SUV300S37A|SKC310S3|SV310S3|SHSS3|SM2280S3|" +
    "SEDC(400S37|450R|500[MR]|600ME?)|SS200S3|O(C|M[48S])P0S3|RBUSNS)",
  "i",
);
export function phisonRaw231(r: SmartReport): boolean {
  return (
    PHISON_FAMILY.test(r.identity.family ?? "") || KINGSTON_PHISON.test(r.identity.model ?? "")
  );
}

/** Endurance used: NVMe percentage_used, ATA device statistics, then vendor attributes. */
export function enduranceUsed(r: SmartReport): Wear | null {
  const nvme = r.nvme?.percentageUsed;
  if (nvme !== null && nvme !== undefined)
    return { percentUsed: nvme, source: "NVMe percentage_used" };
  if (!r.ata) return null;
  if (r.ata.enduranceUsed !== null)
    return {
      percentUsed: r.ata.enduranceUsed,
      source: "ATA device statistics, Percentage Used Endurance Indicator",
    };
  const phison = phisonRaw231(r);
  for (const w of WEAR_ATTRS) {
    const a = r.ata.attributes.find((x) => x.id === w.id && x.name === w.name);
    if (!a) continue;
    if (a.id === 231 && phison) {
      // Phison: the raw value is the percent of life left; the normalised value stays at 100.
      if (a.raw >= 0 && a.raw <= 100)
        return {
          percentUsed: 100 - a.raw,
          source: `ATA 231 ${a.name} raw ${a.raw} (life left; Phison reports it in the raw value)`,
        };
      continue;
    }
    if (w.read === "used") {
      if (a.raw >= 0 && a.raw <= 255)
        return { percentUsed: a.raw, source: `ATA ${a.id} ${a.name} raw ${a.raw}` };
      continue;
    }
    // Normalised values above 100 are not percentages; at 1 they bottom out (Intel:
    // 233 falls to 1 at the rated endurance), so <= 1 is "all used".
    if (a.value === null || a.value < 0 || a.value > 100) continue;
    return {
      percentUsed: a.value <= 1 ? 100 : 100 - a.value,
      source: `ATA ${a.id} ${a.name} normalised ${a.value} (life left)`,
    };
  }
  return null;
}

/** The failure-predicting counters of a report, by attribute name (kept in history for trends). */
export function predictiveCounters(r: SmartReport): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of ATA_COUNTERS) {
    const v = counterOf(r, c);
    if (v) out[c.key] = v.value;
  }
  if (r.ata && seagateHdd(r)) {
    // Decoded error counts of Seagate's packed rates (not judged: rates, not events).
    for (const [id, key] of [
      [1, "read_errors"],
      [7, "seek_errors"],
      [195, "ecc_recovered"],
    ] as const) {
      const a = r.ata.attributes.find((x) => x.id === id);
      if (a) out[key] = decodeRaw(a, true);
    }
  }
  const wear = enduranceUsed(r);
  if (wear) out["percentage_used"] = wear.percentUsed;
  if (r.nvme) {
    out["critical_warning"] = r.nvme.criticalWarning;
    if (r.nvme.mediaErrors !== null) out["media_errors"] = r.nvme.mediaErrors;
    if (r.nvme.availableSpare !== null) out["available_spare_percent"] = r.nvme.availableSpare;
    if (r.nvme.numErrLogEntries !== null) out["error_log_entries"] = r.nvme.numErrLogEntries;
  }
  if (r.scsi) {
    if (r.scsi.grownDefects !== null) out["grown_defects"] = r.scsi.grownDefects;
    const unc = [r.scsi.uncorrectedRead, r.scsi.uncorrectedWrite, r.scsi.uncorrectedVerify].filter(
      (v): v is number => v !== null,
    );
    if (unc.length > 0) out["uncorrected_errors"] = unc.reduce((a, b) => a + b, 0);
  }
  return out;
}

/**
 * Every `attribute` label value of smart_attribute_raw (what predictiveCounters can return), and
 * what it is: the metric's help text and the README list are built from / checked against this.
 */
export const EXPORTED_ATTRIBUTES: ReadonlyArray<readonly [string, string]> = [
  ...ATA_COUNTERS.map((c) => [c.key, `ATA ${c.id}`] as const),
  ["read_errors", "Seagate ATA 1 error count"],
  ["seek_errors", "Seagate ATA 7 error count"],
  ["ecc_recovered", "Seagate ATA 195 error count"],
  ["percentage_used", "SSD endurance used, NVMe or SATA"],
  ["critical_warning", "NVMe"],
  ["media_errors", "NVMe"],
  ["available_spare_percent", "NVMe"],
  ["error_log_entries", "NVMe"],
  ["grown_defects", "SCSI"],
  ["uncorrected_errors", "SCSI read+write+verify"],
];

/** Counters where a rise is bad news (the others, like spare, fall when things get worse). */
export const RISING_IS_BAD = new Set([
  "reallocated_sectors",
  "end_to_end_errors",
  "reported_uncorrectable",
  "command_timeouts",
  "pending_sectors",
  "offline_uncorrectable",
  "udma_crc_errors",
  "media_errors",
  "grown_defects",
  "uncorrected_errors",
  "critical_warning",
]);

/** Wear levels, the same for NVMe and SATA SSDs: >= 100 fail, >= 80 warn, >= 50 info. */
export const WEAR_FAIL = 100;
export const WEAR_WARN = 80;
export const WEAR_INFO = 50;

/** A span for a reason: "45 s", "12 min", "5 h", "7 d" (never NaN: bad input reads as 0). */
export function span(ms: number): string {
  const v = Number.isFinite(ms) && ms > 0 ? ms : 0;
  // BigInt: whole digits even past 1e21, where String() would switch to exponent notation.
  const n = (x: number) => BigInt(Math.round(x)).toString();
  if (v < 60_000) return `${n(v / 1000)} s`;
  if (v < 3_600_000) return `${n(v / 60_000)} min`;
  if (v < 86_400_000) return `${n(v / 3_600_000)} h`;
  return `${n(v / 86_400_000)} d`;
}

export interface JudgeOptions {
  /** How long a rise counts as current (collectors.smart.growth_window); the trend was computed with it. */
  readonly growthWindowMs?: number;
}

/** A trend entry as judge uses it: anything that is not a finite, positive number reads as none. */
function trendOf(
  trends: Trends,
  key: string,
): { rising: boolean; delta: number; watchedMs: number } | null {
  const t = Object.hasOwn(trends, key) ? trends[key] : undefined;
  if (typeof t !== "object" || t === null) return null;
  const pos = (n: unknown) => (typeof n === "number" && Number.isFinite(n) && n > 0 ? n : 0);
  const delta = pos(t.delta);
  // "Rising" without a rise to name is no rise (a damaged or hand-made trend).
  return { rising: t.rising === true && delta > 0, delta, watchedMs: pos(t.watchedMs) };
}

/** The count rule's reason: any non-zero count warns, and a rise within the window is said too. */
const COUNT_RULE = "count rule: any non-zero count warns, static or not";

export function judge(r: SmartReport, trends: Trends = {}, opts: JudgeOptions = {}): VerdictResult {
  const reasons: Reason[] = [];
  const add = (level: Reason["level"], code: string, message: string) =>
    reasons.push({ level, code, message });
  const win = span(opts.growthWindowMs ?? RISE_WINDOW_MS);
  /** "; rose by N within W" when the trend says so (the count rule still decides the level). */
  const rose = (key: string) => {
    const t = trendOf(trends, key);
    return t?.rising && t.delta > 0 ? `, rose by ${t.delta} within ${win}` : "";
  };

  if (r.passed === false)
    add("fail", "smart_status", "the drive's own SMART health check says FAILING");
  for (const a of r.ata?.attributes ?? []) {
    if (a.whenFailed === "now" && a.prefailure)
      add(
        "fail",
        `attribute_${a.id}_failing`,
        `pre-fail attribute ${a.id} ${a.name} is at or below its threshold now (${a.value} <= ${a.thresh})`,
      );
  }
  for (const c of ATA_COUNTERS) {
    const got = counterOf(r, c);
    if (!got || got.value <= 0) continue;
    const { a, value } = got;
    const packed = value !== a.raw ? `, decoded from raw ${a.raw}` : "";
    const head = `${value} ${c.what} (ATA ${c.id} ${a.name}${packed})`;
    const rule = c.rule === "any-hdd" ? (r.identity.rotationRate === 0 ? "rising" : "any") : c.rule;
    if (rule === "any") {
      add("warn", `attribute_${c.id}`, `${head} (${COUNT_RULE}${rose(c.key)})`);
      continue;
    }
    const t = trendOf(trends, c.key);
    if (t?.rising)
      add(
        "warn",
        `attribute_${c.id}`,
        `${head}: rose by ${t.delta} within ${win} (rising rule: judged on growth)`,
      );
    else if (t && t.watchedMs > 0)
      add(
        "info",
        `attribute_${c.id}`,
        `${head}: not grown in ${span(t.watchedMs)} watched (static rule: info; warns if it grows within ${win})`,
      );
    else
      add(
        "info",
        `attribute_${c.id}`,
        `${head}: first look, no history (static rule: info; warns if it grows within ${win})`,
      );
  }
  const wear = r.nvme ? null : enduranceUsed(r);
  if (wear) {
    const p = wear.percentUsed;
    const why = `endurance used ${p}% (${wear.source})`;
    if (p >= WEAR_FAIL) add("fail", "ata_wear", `${why}: the vendor's rated life is spent`);
    else if (p >= WEAR_WARN) add("warn", "ata_wear", why);
    else if (p >= WEAR_INFO) add("info", "ata_wear", why);
  }
  if (r.nvme) {
    const n = r.nvme;
    if (n.criticalWarning !== 0)
      add(
        "fail",
        "nvme_critical_warning",
        `NVMe critical warning 0x${n.criticalWarning.toString(16)}: ${nvmeCriticalBits(n.criticalWarning).join(", ")}`,
      );
    if (
      n.availableSpare !== null &&
      n.availableSpareThreshold !== null &&
      n.availableSpare < n.availableSpareThreshold
    )
      add(
        "fail",
        "nvme_spare",
        `available spare ${n.availableSpare}% is below the drive's threshold ${n.availableSpareThreshold}%`,
      );
    if (n.mediaErrors !== null && n.mediaErrors > 0)
      add(
        "warn",
        "nvme_media_errors",
        `${n.mediaErrors} unrecovered media errors (${COUNT_RULE}${rose("media_errors")})`,
      );
    if (n.percentageUsed !== null && n.percentageUsed >= WEAR_FAIL)
      add(
        "fail",
        "nvme_wear",
        `endurance used ${n.percentageUsed}%: the vendor's rated life is spent`,
      );
    else if (n.percentageUsed !== null && n.percentageUsed >= WEAR_WARN)
      add("warn", "nvme_wear", `endurance used ${n.percentageUsed}%`);
    else if (n.percentageUsed !== null && n.percentageUsed >= WEAR_INFO)
      add("info", "nvme_wear", `endurance used ${n.percentageUsed}%`);
    if (n.numErrLogEntries !== null && n.numErrLogEntries > 0) {
      add(
        "info",
        "nvme_error_log",
        `${n.numErrLogEntries} error-log entries${rose("error_log_entries")} (not judged, static or ` +
          `rising: the count grows with the host probing optional features, "Invalid Field in Command")`,
      );
    }
  }
  if (r.scsi) {
    const s = r.scsi;
    if (s.grownDefects !== null && s.grownDefects > 0)
      add(
        "warn",
        "scsi_grown_defects",
        `${s.grownDefects} grown defects, sectors remapped since manufacture (${COUNT_RULE}${rose("grown_defects")})`,
      );
    const unc = [
      ["read", s.uncorrectedRead],
      ["write", s.uncorrectedWrite],
      ["verify", s.uncorrectedVerify],
    ].filter(([, v]) => typeof v === "number" && v > 0);
    if (unc.length > 0)
      add(
        "warn",
        "scsi_uncorrected",
        `uncorrected errors: ${unc.map(([k, v]) => `${v} ${k}`).join(", ")} ` +
          `(${COUNT_RULE}${rose("uncorrected_errors")})`,
      );
  }
  const t = r.temperature;
  if (t.current !== null && t.limit !== null) {
    if (t.current >= t.limit)
      add("fail", "temperature", `${t.current}°C is at or above the drive's limit ${t.limit}°C`);
    else if (t.current >= t.limit - 5)
      add("warn", "temperature", `${t.current}°C is within 5°C of the drive's limit ${t.limit}°C`);
  }
  const exit = r.exitStatus ?? 0;
  if (exit & 32) add("warn", "exit_bit5", "an attribute was at or below its threshold in the past");
  if (exit & 64)
    add("warn", "error_log", `the device error log has ${r.ata?.errorLogCount ?? "some"} errors`);
  if (exit & 128)
    add(
      "warn",
      "selftest_log",
      `the self-test log has ${r.ata?.selfTestErrors ?? "some"} failed tests`,
    );

  if (reasons.some((x) => x.level === "fail")) return { verdict: "fail", reasons };
  if (reasons.some((x) => x.level === "warn")) return { verdict: "warn", reasons };
  if (r.passed === null) {
    add(
      "info",
      "no_health",
      "smartctl reported no health status (RAID volume, virtual disk or unsupported transport)",
    );
    return { verdict: "unknown", reasons };
  }
  return { verdict: "pass", reasons };
}
