// smart's sinks: verdict and collect state as state sets, temperature, exit status, counters,
// wear, power-on time, identity per device. Each device's poll (emitted when it ends, in the
// background) takes the same route: its counters and baseline into history, an event for each
// failure-predicting counter that rose, and for each change of a device's state or verdict.
import type { Registry } from "prom-client";
import type { HistoryRow, Sinks } from "../../core/collector.js";
import { Conditions } from "../../core/conditions.js";
import type { EventInput } from "../../core/history/store.js";
import type { Logger } from "../../core/log.js";
import { gauge } from "../../core/metrics/define.js";
import { NS } from "../../core/metrics/registry.js";
import { COLLECT_STATES, type CollectState } from "./classify.js";
import type { DeviceResult, SmartObservation, SmartPoll } from "./observation.js";
import { EXPORTED_ATTRIBUTES, RISING_IS_BAD, type SmartVerdict } from "./verdict.js";

const VERDICTS: readonly SmartVerdict[] = ["pass", "warn", "fail", "unknown"];

export function smartSinks(registry: Registry, log: Logger): Sinks<SmartObservation, SmartPoll> {
  const r = registry;
  const gVerdict = gauge(r, {
    name: `${NS}smart_verdict`,
    help:
      "SMART verdict of the device as a state set: 1 for the current verdict (pass, warn, fail, " +
      "unknown), 0 for the others.",
    labelNames: ["device", "verdict"],
  });
  const gState = gauge(r, {
    name: `${NS}smart_collect_state`,
    help:
      "How the last SMART poll went, as a state set: ok, standby (asleep, not woken), unsupported, " +
      "unresponsive (timed out), error.",
    labelNames: ["device", "state"],
  });
  const gTemp = gauge(r, {
    name: `${NS}smart_temperature_celsius`,
    help: "Drive temperature reported by SMART.",
    labelNames: ["device"],
  });
  const gExit = gauge(r, {
    name: `${NS}smart_exit_status`,
    help: "smartctl exit status bitmask of the last poll (see smartctl(8)).",
    labelNames: ["device"],
  });
  const gAttr = gauge(r, {
    name: `${NS}smart_attribute_raw`,
    help:
      `Failure-predicting SMART counters, packed raw values decoded (Seagate 188 raw16, ` +
      `1/7/195 raw24/raw32); attribute is one of: ` +
      `${EXPORTED_ATTRIBUTES.map(([k, what]) => `${k} (${what})`).join(", ")}.`,
    labelNames: ["device", "attribute"],
  });
  const gWear = gauge(r, {
    name: `${NS}smart_endurance_used_percent`,
    help:
      "Percent of the SSD's rated endurance used (NVMe percentage_used, ATA device statistics, " +
      "or the vendor's wear attribute); may exceed 100.",
    labelNames: ["device"],
  });
  const gHours = gauge(r, {
    name: `${NS}smart_power_on_seconds`,
    help: "Power-on time reported by SMART (whole hours).",
    labelNames: ["device"],
  });
  const gLast = gauge(r, {
    name: `${NS}smart_last_collection_timestamp_seconds`,
    help: "Unix time of the device's last completed SMART poll.",
    labelNames: ["device"],
  });
  const gInfo = gauge(r, {
    name: `${NS}smart_info`,
    help: "Identity of the device; always 1.",
    labelNames: ["device", "type", "protocol", "model", "serial", "firmware"],
  });
  const infoLabels = new Map<string, Record<string, string>>();
  /** Per device: how its last poll went, and its verdict. */
  const states = new Conditions<string, CollectState>();
  const verdicts = new Conditions<string, SmartVerdict>();

  /** One device's gauges: from each observation, and at once when a poll ends between runs. */
  const show = (d: DeviceResult): void => {
    for (const v of VERDICTS)
      gVerdict.set({ device: d.device, verdict: v }, v === d.verdict ? 1 : 0);
    for (const st of COLLECT_STATES)
      gState.set({ device: d.device, state: st }, st === d.state ? 1 : 0);
    if (d.exit_status !== null) gExit.set({ device: d.device }, d.exit_status);
    if (d.temperature_celsius !== null) gTemp.set({ device: d.device }, d.temperature_celsius);
    if (d.wear !== null) gWear.set({ device: d.device }, d.wear.percent_used);
    if (d.power_on_hours !== null) gHours.set({ device: d.device }, d.power_on_hours * 3600);
    for (const [attribute, v] of Object.entries(d.counters))
      gAttr.set({ device: d.device, attribute }, v);
    gLast.set({ device: d.device }, Date.parse(d.collected_at) / 1000);
    const info = {
      device: d.device,
      type: d.type || "auto",
      protocol: d.protocol ?? "",
      model: d.model ?? "",
      serial: d.serial ?? "",
      firmware: d.firmware ?? "",
    };
    const prev = infoLabels.get(d.device);
    if (prev && JSON.stringify(prev) !== JSON.stringify(info)) gInfo.remove(prev);
    if (d.state === "ok" || !prev) {
      gInfo.set(info, 1);
      infoLabels.set(d.device, info);
    }
  };

  return {
    observation: {
      metrics(o) {
        for (const d of o.devices) show(d);
      },
    },
    update: {
      // A poll ends between two runs of the collector: shown at once, not with the next
      // observation (which would leave /metrics one poll behind the events).
      metrics({ result }) {
        show(result);
      },
      *history({ result: r, baseline }): Iterable<HistoryRow> {
        if (!baseline) return;
        for (const [attribute, v] of Object.entries(r.counters))
          yield {
            series: "smart_attribute_raw",
            labels: { device: r.device, attribute },
            value: v,
            ts: baseline.at,
          };
        // At once, not with the batch: the baseline must survive a crash.
        yield { state: baseline.key, value: JSON.stringify(baseline.state), durable: true };
      },
      *events({ result: r, baseline }): Iterable<EventInput> {
        for (const inc of baseline?.increases ?? []) {
          if (!RISING_IS_BAD.has(inc.name)) continue;
          const hours = inc.sinceMs / 3_600_000;
          yield {
            class: "smart",
            kind: "smart.counter_increased",
            severity: "warn",
            subject: r.device,
            message:
              `${r.name}: ${inc.name} rose by ${inc.current - inc.previous} to ${inc.current} in ` +
              `${hours < 1 ? `${Math.round(hours * 60)} min` : `${hours.toFixed(1)} h`}`,
            data: {
              attribute: inc.name,
              previous: inc.previous,
              current: inc.current,
              delta: inc.current - inc.previous,
              since_seconds: Math.round(inc.sinceMs / 1000),
            },
          };
          log.warn(
            { device: r.name, attribute: inc.name, previous: inc.previous, current: inc.current },
            "smart: failure-predicting counter increased",
          );
        }
        const state = states.set(r.device, r.state);
        if (state) {
          const quiet = r.state === "ok" || r.state === "unsupported" || r.state === "standby";
          log[quiet ? "debug" : "warn"](
            { device: r.name, state: r.state, detail: r.detail },
            "smart: device state",
          );
          if (state.before !== undefined && !quiet)
            yield {
              class: "smart",
              kind: `smart.${r.state}`,
              severity: r.state === "unresponsive" ? "crit" : "warn",
              subject: r.device,
              message: `${r.name}: ${r.detail ?? r.state}`,
            };
        }
        // The verdict is remembered from every poll, and news only from one that read the disk.
        if (verdicts.set(r.device, r.verdict) && r.state === "ok") {
          const level = r.verdict === "fail" ? "crit" : r.verdict === "warn" ? "warn" : "info";
          const why = r.reasons
            .filter((x) => x.level !== "info")
            .map((x) => x.message)
            .join("; ");
          yield {
            class: "smart",
            kind: "smart.verdict",
            severity: level,
            subject: r.device,
            message: `${r.name} (${r.model ?? "?"}, ${r.serial ?? "?"}): SMART ${r.verdict}${why ? `: ${why}` : ""}`,
            data: { verdict: r.verdict, reasons: r.reasons },
          };
          if (r.verdict !== "pass")
            log.warn({ device: r.name, verdict: r.verdict, reasons: why }, "smart: verdict");
        }
      },
    },
  };
}
