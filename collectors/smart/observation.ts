// smart observation: the latest result of every disk's smartctl run.
// Pure types: what the core, status, diagnose and remediators read; no implementation.
import type { CollectState } from "./classify.js";
import type { Increase, TrendState } from "./trend.js";
import type { Reason, SmartVerdict } from "./verdict.js";

export interface DeviceResult {
  /** Metric label: "sda", "nvme0", "bus_0_megaraid_1". */
  readonly device: string;
  readonly name: string;
  readonly type: string;
  readonly state: CollectState;
  readonly detail: string | null;
  readonly verdict: SmartVerdict;
  readonly reasons: readonly Reason[];
  readonly exit_status: number | null;
  readonly exit_bits: ReadonlyArray<{ bit: number; meaning: string }>;
  readonly model: string | null;
  readonly serial: string | null;
  readonly firmware: string | null;
  readonly protocol: string | null;
  readonly temperature_celsius: number | null;
  readonly power_on_hours: number | null;
  readonly counters: Readonly<Record<string, number>>;
  /** Endurance used (NVMe percentage_used, ATA device statistics or vendor wear attribute). */
  readonly wear: { readonly percent_used: number; readonly source: string } | null;
  readonly collected_at: string;
  readonly seconds: number;
}

export interface SmartObservation {
  /** Set when smartctl itself cannot be run (not installed, wrong path). */
  readonly smartctl_error: string | null;
  readonly devices: DeviceResult[];
}

/** One device's poll, emitted by the collector when it ends (polls run in the background). */
export interface SmartPoll {
  readonly result: DeviceResult;
  /** The failure-predicting counters' baseline after an ok poll, kept by drive identity. */
  readonly baseline: {
    readonly key: string;
    readonly state: TrendState;
    readonly increases: readonly Increase[];
    readonly at: number;
  } | null;
}
