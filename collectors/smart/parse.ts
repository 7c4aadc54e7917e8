import { errorMessage } from "../../core/errors.js";
// smartctl --json output (smartmontools 7.0-7.5), parsed into what the agent uses. Pure.
// Every field is optional; SCSI identity keys moved in 7.3 (scsi_model_name) and back in 7.5;
// counters above 2^53 come with a decimal "KEY_s" twin, which is preferred when present.

export type Protocol = "ATA" | "NVMe" | "SCSI";
export type SmartctlSeverity = "information" | "warning" | "error";

export interface SmartMessage {
  readonly string: string;
  readonly severity: SmartctlSeverity;
}

export interface AtaAttribute {
  readonly id: number;
  readonly name: string;
  readonly value: number | null;
  readonly worst: number | null;
  readonly thresh: number | null;
  readonly whenFailed: "" | "now" | "past";
  readonly prefailure: boolean;
  readonly raw: number;
  readonly rawString: string;
}

export interface SmartReport {
  readonly version: readonly [number, number] | null;
  /** smartctl.exit_status as printed in the JSON (equals the process exit code). */
  readonly exitStatus: number | null;
  readonly messages: readonly SmartMessage[];
  readonly device: {
    readonly name: string;
    readonly type: string;
    readonly protocol: Protocol | null;
    readonly infoName: string;
  } | null;
  /** Set when `-n` skipped the device: "STANDBY", "SLEEP", "IDLE_A", ... */
  readonly lowPowerMode: string | null;
  readonly identity: {
    readonly model: string | null;
    readonly family: string | null;
    readonly serial: string | null;
    readonly firmware: string | null;
    readonly capacityBytes: number | null;
    readonly rotationRate: number | null;
  };
  /** smart_status.passed; null when smartctl could not tell (absent is not failed). */
  readonly passed: boolean | null;
  readonly temperature: {
    readonly current: number | null;
    /** the drive's own limit: SCSI drive_trip, ATA SCT op_limit_max */ readonly limit:
      number | null;
  };
  readonly powerOnHours: number | null;
  readonly ata: {
    readonly attributes: readonly AtaAttribute[];
    readonly errorLogCount: number | null;
    readonly selfTestErrors: number | null;
    /** Device statistics page 7 "Percentage Used Endurance Indicator" (ACS-3; `-x` or `-l devstat`). */
    readonly enduranceUsed: number | null;
  } | null;
  readonly nvme: {
    readonly criticalWarning: number;
    readonly availableSpare: number | null;
    readonly availableSpareThreshold: number | null;
    readonly percentageUsed: number | null;
    readonly mediaErrors: number | null;
    readonly numErrLogEntries: number | null;
  } | null;
  readonly scsi: {
    readonly grownDefects: number | null;
    readonly uncorrectedRead: number | null;
    readonly uncorrectedWrite: number | null;
    readonly uncorrectedVerify: number | null;
  } | null;
}

export interface ScanEntry {
  readonly name: string;
  readonly type: string;
  readonly protocol: string | null;
  readonly openError: string | null;
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | null =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Obj) : null;
const str = (o: Obj | null, k: string): string | null =>
  o && typeof o[k] === "string" ? o[k] : null;
const bool = (o: Obj | null, k: string): boolean | null =>
  o && typeof o[k] === "boolean" ? o[k] : null;
/** A number, from the exact "KEY_s" twin when smartctl wrote one (values beyond 2^53). */
function num(o: Obj | null, k: string): number | null {
  if (!o) return null;
  const s = o[`${k}_s`];
  // 309+ digits would be Infinity
  if (typeof s === "string" && /^\d+$/.test(s) && Number.isFinite(Number(s))) return Number(s);
  const v = o[k];
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

const MAX_OUTPUT = 8 * 1024 * 1024;

/**
 * The JSON object smartctl printed, or a reason. Tolerates a stray text line before it
 * (smartctl < 7.3 on some SCSI disks).
 */
function parseJsonObject(text: string): Obj | string {
  if (text.length > MAX_OUTPUT) return `output larger than ${MAX_OUTPUT} bytes`;
  const start = text.indexOf("{");
  if (start < 0)
    return text.trim() === ""
      ? "no output"
      : `not JSON: ${JSON.stringify(text.trim().slice(0, 80))}`;
  try {
    const v = obj(JSON.parse(text.slice(start)));
    return v ?? "not a JSON object";
  } catch (e) {
    return `not JSON: ${errorMessage(e)}`;
  }
}

/** The device-statistics endurance entry, unless its flags say it is not valid. */
function enduranceIndicator(ds: Obj | null): number | null {
  const pages = Array.isArray(ds?.["pages"]) ? (ds?.["pages"] as unknown[]) : [];
  for (const p of pages) {
    const rows = obj(p)?.["table"];
    for (const e of Array.isArray(rows) ? (rows as unknown[]) : []) {
      const o = obj(e);
      if (str(o, "name") !== "Percentage Used Endurance Indicator") continue;
      if (bool(obj(o?.["flags"] ?? null), "valid") === false) return null;
      const v = num(o, "value");
      // One byte, 0-255 (ACS-3): anything else is not this field.
      return v !== null && v >= 0 && v <= 255 ? v : null;
    }
  }
  return null;
}

export function parseScan(text: string): { devices: ScanEntry[] } | { error: string } {
  const root = parseJsonObject(text);
  if (typeof root === "string") return { error: root };
  const list = Array.isArray(root["devices"]) ? (root["devices"] as unknown[]) : []; // no devices: the key is absent
  const devices: ScanEntry[] = [];
  for (const d of list) {
    const o = obj(d);
    const name = str(o, "name");
    if (!name) continue;
    devices.push({
      name,
      type: str(o, "type") ?? "auto",
      protocol: str(o, "protocol"),
      openError: str(o, "open_error"),
    });
  }
  return { devices };
}

export function parseSmart(text: string): SmartReport | { error: string } {
  const root = parseJsonObject(text);
  if (typeof root === "string") return { error: root };
  const sc = obj(root["smartctl"]);
  if (!sc && !obj(root["device"])) return { error: "no smartctl envelope in the JSON" };
  const ver = Array.isArray(sc?.["version"]) ? (sc?.["version"] as unknown[]) : null;
  const messages: SmartMessage[] = [];
  for (const m of Array.isArray(sc?.["messages"]) ? (sc?.["messages"] as unknown[]) : []) {
    const o = obj(m);
    const s = str(o, "string");
    const sev = str(o, "severity");
    if (s !== null)
      messages.push({
        string: s,
        severity: sev === "error" || sev === "warning" ? sev : "information",
      });
  }
  const dev = obj(root["device"]);
  const proto = str(dev, "protocol");
  const protocol: Protocol | null =
    proto === "ATA" || proto === "NVMe" || proto === "SCSI" ? proto : null;

  let lowPowerMode: string | null = null;
  for (const m of messages) {
    const lp = /^Device is in (.+) mode, exit\(\d+\)$/.exec(m.string);
    if (lp) lowPowerMode = lp[1] ?? null;
  }
  const pm = obj(root["power_mode"]); // 7.5
  if (lowPowerMode === null && pm && messages.some((m) => m.string.startsWith("Device is in")))
    lowPowerMode = str(pm, "name");

  const temp = obj(root["temperature"]);
  let current = num(temp, "current");
  let limit =
    num(temp, "drive_trip") ??
    num(obj(obj(root["ata_sct_status"])?.["temperature"]), "op_limit_max") ??
    num(temp, "op_limit_max");
  // "not available" (RAID volumes)
  if (current === 0 && (limit === 0 || limit === null) && protocol === "SCSI") current = null;
  if (limit === 0) limit = null;
  if (current === null) current = num(obj(root["scsi_temperature"]), "current"); // 7.3 regression name

  const capacity = num(obj(root["user_capacity"]), "bytes") ?? num(root, "nvme_total_capacity");
  const identity = {
    model:
      str(root, "model_name") ??
      str(root, "scsi_model_name") ??
      (str(root, "vendor") && str(root, "product")
        ? `${str(root, "vendor")} ${str(root, "product")}`
        : null),
    family: str(root, "model_family"),
    serial: str(root, "serial_number") || null,
    firmware: str(root, "firmware_version") ?? str(root, "scsi_revision") ?? str(root, "revision"),
    capacityBytes: capacity,
    rotationRate: num(root, "rotation_rate"),
  };

  const attrs = obj(root["ata_smart_attributes"]);
  const table = Array.isArray(attrs?.["table"]) ? (attrs?.["table"] as unknown[]) : null;
  const ata = table
    ? {
        attributes: table.flatMap((a): AtaAttribute[] => {
          const o = obj(a);
          const id = num(o, "id");
          if (!o || id === null) return [];
          const raw = obj(o["raw"]);
          const wf = str(o, "when_failed");
          return [
            {
              id,
              name: str(o, "name") ?? `attribute_${id}`,
              value: num(o, "value"),
              worst: num(o, "worst"),
              thresh: num(o, "thresh"),
              whenFailed: wf === "now" || wf === "past" ? wf : "",
              prefailure: bool(obj(o["flags"]), "prefailure") ?? false,
              raw: num(raw, "value") ?? 0,
              rawString: str(raw, "string") ?? "",
            },
          ];
        }),
        errorLogCount:
          num(obj(obj(root["ata_smart_error_log"])?.["summary"]), "count") ??
          num(obj(obj(root["ata_smart_error_log"])?.["extended"]), "count"),
        selfTestErrors:
          num(obj(obj(root["ata_smart_self_test_log"])?.["standard"]), "error_count_total") ??
          num(obj(obj(root["ata_smart_self_test_log"])?.["extended"]), "error_count_total"),
        enduranceUsed: enduranceIndicator(obj(root["ata_device_statistics"])),
      }
    : null;

  const nl = obj(root["nvme_smart_health_information_log"]);
  const nvme = nl
    ? {
        criticalWarning: num(nl, "critical_warning") ?? 0,
        availableSpare: num(nl, "available_spare"),
        availableSpareThreshold: num(nl, "available_spare_threshold"),
        percentageUsed: num(nl, "percentage_used"),
        mediaErrors: num(nl, "media_errors"),
        numErrLogEntries: num(nl, "num_err_log_entries"),
      }
    : null;

  const ecl = obj(root["scsi_error_counter_log"]);
  const hasScsi = root["scsi_grown_defect_list"] !== undefined || ecl !== null;
  const scsi = hasScsi
    ? {
        grownDefects: num(root, "scsi_grown_defect_list"),
        uncorrectedRead: num(obj(ecl?.["read"]), "total_uncorrected_errors"),
        uncorrectedWrite: num(obj(ecl?.["write"]), "total_uncorrected_errors"),
        uncorrectedVerify: num(obj(ecl?.["verify"]), "total_uncorrected_errors"),
      }
    : null;

  return {
    version:
      ver && typeof ver[0] === "number" && typeof ver[1] === "number" ? [ver[0], ver[1]] : null,
    exitStatus: num(sc, "exit_status"),
    messages,
    device: dev
      ? {
          name: str(dev, "name") ?? "",
          type: str(dev, "type") ?? "",
          protocol,
          infoName: str(dev, "info_name") ?? "",
        }
      : null,
    lowPowerMode,
    identity,
    passed: bool(obj(root["smart_status"]), "passed"),
    temperature: { current, limit },
    powerOnHours: num(obj(root["power_on_time"]), "hours"),
    ata,
    nvme,
    scsi,
  };
}

/** smartctl(8) EXIT STATUS, bit by bit. */
export const EXIT_BITS: readonly string[] = [
  "command line did not parse (or device type not detected)",
  "device open failed, identify failed, or device in a low-power mode (-n)",
  "a SMART or other command to the disk failed, or a checksum error: data may be partial",
  "SMART status check returned DISK FAILING",
  "prefail attributes at or below threshold",
  "SMART status OK, but usage or prefail attributes were at or below threshold in the past",
  "the device error log contains records of errors",
  "the device self-test log contains records of errors",
];

export function decodeExitStatus(status: number): Array<{ bit: number; meaning: string }> {
  const out: Array<{ bit: number; meaning: string }> = [];
  for (let bit = 0; bit < 8; bit++)
    if (status & (1 << bit)) out.push({ bit, meaning: EXIT_BITS[bit] as string });
  return out;
}

/** Names of the NVMe critical warning bits set (NVMe base spec, SMART/Health log byte 0). */
export function nvmeCriticalBits(value: number): string[] {
  const names = [
    "available spare below threshold",
    "temperature above or below threshold",
    "NVM subsystem reliability degraded",
    "media placed in read-only mode",
    "volatile memory backup device failed",
    "persistent memory region read-only or unreliable",
  ];
  const out = names.filter((_, i) => value & (1 << i));
  if (value & 0xc0) out.push(`other bits (0x${(value & 0xc0).toString(16)})`);
  return out;
}
