// pass | warn | fail | unknown for one device, with the reasons. Pure.
//
// Sources (shared/notes/smart.md section 3):
// - The drive's own verdict: smart_status.passed (ATA SMART RETURN STATUS, NVMe critical
//   warning, SCSI informational exceptions). false => fail.
// - Backblaze (2014, 2016 drive-stats posts): the raw values of ATA 5, 187, 188, 197, 198 are
//   the counters that predict failure while SMART still says PASSED; any of them > 0 is their
//   trigger to investigate => warn. Backblaze Q3 2019: non-zero 197/198 mark failing media.
// - 199 UDMA CRC errors are a cable/backplane signal, not media wear => warn, with that hint.
// - NVMe (NVMe base spec; scrutiny's rules): critical_warning != 0 or spare below its own
//   threshold => fail; media_errors > 0 => warn; percentage_used >= 80 => warn, >= 100 => fail
//   (the vendor's endurance estimate is spent); error-log entries are usually benign => info.
// - SCSI: grown defects and uncorrected errors never flip `passed` => warn when > 0.
// - Temperature against the drive's own limit (SCSI drive_trip, ATA SCT op_limit_max):
//   at or above it => fail, within 5 degrees of it => warn.
// - Exit bits 5, 6, 7 (attribute below threshold in the past; error log; self-test log) => warn.
import { nvmeCriticalBits, type SmartReport } from "./parse.js";

export type Verdict = "pass" | "warn" | "fail" | "unknown";

export interface Reason {
  readonly level: "fail" | "warn" | "info";
  readonly code: string;
  readonly message: string;
}

export interface VerdictResult {
  readonly verdict: Verdict;
  readonly reasons: Reason[];
}

/** The ATA attributes that predict failure (Backblaze's five) plus 199 for cabling. */
export const ATA_PREDICTIVE: ReadonlyArray<readonly [number, string, string]> = [
  [5, "reallocated_sectors", "reallocated sectors"],
  [187, "reported_uncorrectable", "reported uncorrectable errors"],
  [188, "command_timeouts", "command timeouts"],
  [197, "pending_sectors", "sectors pending reallocation"],
  [198, "offline_uncorrectable", "offline uncorrectable sectors"],
  [199, "udma_crc_errors", "UDMA CRC errors (cable, connector or backplane)"],
];

/** 188 on Seagate packs three 16-bit counters ("0 0 3"): the last one is the count (as scrutiny reads it). */
function ataRaw(id: number, raw: number, rawString: string): number {
  if (id === 188) {
    const parts = rawString.trim().split(/\s+/).map(Number);
    if (parts.length === 3 && parts.every(Number.isFinite) && (parts[0] ?? 0) <= (parts[1] ?? 0) && (parts[1] ?? 0) <= (parts[2] ?? 0)) return parts[2] ?? raw;
  }
  return raw;
}

/** The failure-predicting counters of a report, by attribute name (kept in history for trends). */
export function predictiveCounters(r: SmartReport): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of r.ata?.attributes ?? []) {
    const p = ATA_PREDICTIVE.find(([id]) => id === a.id);
    if (p) out[p[1]] = ataRaw(a.id, a.raw, a.rawString);
  }
  if (r.nvme) {
    out["critical_warning"] = r.nvme.criticalWarning;
    if (r.nvme.mediaErrors !== null) out["media_errors"] = r.nvme.mediaErrors;
    if (r.nvme.availableSpare !== null) out["available_spare_percent"] = r.nvme.availableSpare;
    if (r.nvme.percentageUsed !== null) out["percentage_used"] = r.nvme.percentageUsed;
    if (r.nvme.numErrLogEntries !== null) out["error_log_entries"] = r.nvme.numErrLogEntries;
  }
  if (r.scsi) {
    if (r.scsi.grownDefects !== null) out["grown_defects"] = r.scsi.grownDefects;
    const unc = [r.scsi.uncorrectedRead, r.scsi.uncorrectedWrite, r.scsi.uncorrectedVerify].filter((v): v is number => v !== null);
    if (unc.length > 0) out["uncorrected_errors"] = unc.reduce((a, b) => a + b, 0);
  }
  return out;
}

/** Counters where a rise is bad news (the others, like spare, fall when things get worse). */
export const RISING_IS_BAD = new Set(["reallocated_sectors", "reported_uncorrectable", "command_timeouts", "pending_sectors", "offline_uncorrectable", "udma_crc_errors", "media_errors", "grown_defects", "uncorrected_errors", "critical_warning"]);

export function judge(r: SmartReport): VerdictResult {
  const reasons: Reason[] = [];
  const add = (level: Reason["level"], code: string, message: string) => reasons.push({ level, code, message });

  if (r.passed === false) add("fail", "smart_status", "the drive's own SMART health check says FAILING");
  for (const a of r.ata?.attributes ?? []) {
    if (a.whenFailed === "now" && a.prefailure) add("fail", `attribute_${a.id}_failing`, `pre-fail attribute ${a.id} ${a.name} is at or below its threshold now (${a.value} <= ${a.thresh})`);
  }
  for (const [id, , what] of ATA_PREDICTIVE) {
    const a = r.ata?.attributes.find((x) => x.id === id);
    if (!a) continue;
    const v = ataRaw(a.id, a.raw, a.rawString);
    if (v > 0) add("warn", `attribute_${id}`, `${v} ${what} (ATA ${id} ${a.name})`);
  }
  if (r.nvme) {
    const n = r.nvme;
    if (n.criticalWarning !== 0) add("fail", "nvme_critical_warning", `NVMe critical warning 0x${n.criticalWarning.toString(16)}: ${nvmeCriticalBits(n.criticalWarning).join(", ")}`);
    if (n.availableSpare !== null && n.availableSpareThreshold !== null && n.availableSpare < n.availableSpareThreshold) add("fail", "nvme_spare", `available spare ${n.availableSpare}% is below the drive's threshold ${n.availableSpareThreshold}%`);
    if (n.mediaErrors !== null && n.mediaErrors > 0) add("warn", "nvme_media_errors", `${n.mediaErrors} unrecovered media errors`);
    if (n.percentageUsed !== null && n.percentageUsed >= 100) add("fail", "nvme_wear", `endurance used ${n.percentageUsed}%: the vendor's rated life is spent`);
    else if (n.percentageUsed !== null && n.percentageUsed >= 80) add("warn", "nvme_wear", `endurance used ${n.percentageUsed}%`);
    else if (n.percentageUsed !== null && n.percentageUsed >= 50) add("info", "nvme_wear", `endurance used ${n.percentageUsed}%`);
    if (n.numErrLogEntries !== null && n.numErrLogEntries > 0) add("info", "nvme_error_log", `${n.numErrLogEntries} error-log entries (usually the host probing optional features; see the trend)`);
  }
  if (r.scsi) {
    const s = r.scsi;
    if (s.grownDefects !== null && s.grownDefects > 0) add("warn", "scsi_grown_defects", `${s.grownDefects} grown defects (sectors remapped since manufacture)`);
    const unc = [["read", s.uncorrectedRead], ["write", s.uncorrectedWrite], ["verify", s.uncorrectedVerify]].filter(([, v]) => typeof v === "number" && v > 0);
    if (unc.length > 0) add("warn", "scsi_uncorrected", `uncorrected errors: ${unc.map(([k, v]) => `${v} ${k}`).join(", ")}`);
  }
  const t = r.temperature;
  if (t.current !== null && t.limit !== null) {
    if (t.current >= t.limit) add("fail", "temperature", `${t.current}°C is at or above the drive's limit ${t.limit}°C`);
    else if (t.current >= t.limit - 5) add("warn", "temperature", `${t.current}°C is within 5°C of the drive's limit ${t.limit}°C`);
  }
  const exit = r.exitStatus ?? 0;
  if (exit & 32) add("warn", "exit_bit5", "an attribute was at or below its threshold in the past");
  if (exit & 64) add("warn", "error_log", `the device error log has ${r.ata?.errorLogCount ?? "some"} errors`);
  if (exit & 128) add("warn", "selftest_log", `the self-test log has ${r.ata?.selfTestErrors ?? "some"} failed tests`);

  if (reasons.some((x) => x.level === "fail")) return { verdict: "fail", reasons };
  if (reasons.some((x) => x.level === "warn")) return { verdict: "warn", reasons };
  if (r.passed === null) {
    add("info", "no_health", "smartctl reported no health status (RAID volume, virtual disk or unsupported transport)");
    return { verdict: "unknown", reasons };
  }
  return { verdict: "pass", reasons };
}
