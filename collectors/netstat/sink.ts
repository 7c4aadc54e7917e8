// netstat's sinks: the kernel's TCP counters and each interface's errors and drops as Prometheus
// counters that mirror the kernel's values (moved by the difference from the last value
// exported; a counter that went back restarts its series, read by Prometheus as a reset), the
// retransmitted share and errors per second into history. At most MAX_INTERFACES interfaces (by
// name) carry the interface label; how many were left out is a gauge.
import type { Counter, Registry } from "prom-client";
import type { HistoryRow, Sinks } from "../../core/collector.js";
import { counter, gauge } from "../../core/metrics/define.js";
import { NS } from "../../core/metrics/registry.js";
import type { InterfaceFigures, NetstatObservation, TcpFigures } from "./observation.js";

/** Interfaces exported at most: the interface label stays bounded on hosts with many veths. */
export const MAX_INTERFACES = 32;

const SERIES = [
  ["rx", "errors", "rx_errors"],
  ["tx", "errors", "tx_errors"],
  ["rx", "dropped", "rx_dropped"],
  ["tx", "dropped", "tx_dropped"],
] as const;

export function netstatSinks(registry: Registry): Sinks<NetstatObservation> {
  const r = registry;
  const tcp: Array<[Counter, (t: TcpFigures) => number]> = [
    [
      counter(r, {
        name: `${NS}tcp_sent_segments_total`,
        help: "TCP segments sent, retransmissions excluded (OutSegs in /proc/net/snmp).",
      }),
      (t) => t.out_segs,
    ],
    [
      counter(r, {
        name: `${NS}tcp_retransmitted_segments_total`,
        help: "TCP segments retransmitted (RetransSegs in /proc/net/snmp).",
      }),
      (t) => t.retrans_segs,
    ],
    [
      counter(r, {
        name: `${NS}tcp_in_errors_total`,
        help: "TCP segments received in error, bad checksums included (InErrs in /proc/net/snmp).",
      }),
      (t) => t.in_errs,
    ],
  ];
  const netErrors = counter(r, {
    name: `${NS}network_errors_total`,
    help:
      "Errors and drops per interface and direction (/proc/net/dev; loopback excluded, " +
      `at most ${MAX_INTERFACES} interfaces).`,
    labelNames: ["interface", "direction", "kind"],
  });
  const omitted = gauge(r, {
    name: `${NS}network_interfaces_omitted`,
    help: `Interfaces beyond the first ${MAX_INTERFACES} by name, whose errors are not exported.`,
  });
  /** The kernel's values last exported: the TCP counters by position, interfaces by name. */
  const lastTcp: Array<number | undefined> = tcp.map(() => undefined);
  const lastIf = new Map<string, InterfaceFigures>();
  const forget = (name: string) => {
    for (const [direction, kind] of SERIES) netErrors.remove(name, direction, kind);
    lastIf.delete(name);
  };
  const noLabels = {};

  return {
    observation: {
      metrics(o) {
        if (o.tcp) {
          const t = o.tcp;
          tcp.forEach(([c, value], i) => {
            const cur = value(t);
            const prev = lastTcp[i];
            if (prev !== undefined && cur < prev) c.reset();
            c.inc(prev === undefined || cur < prev ? cur : cur - prev);
            lastTcp[i] = cur;
          });
        }
        const shown = o.interfaces.slice(0, MAX_INTERFACES);
        omitted.set(o.interfaces.length - shown.length);
        const present = new Set(shown.map((i) => i.name));
        for (const name of [...lastIf.keys()]) if (!present.has(name)) forget(name);
        for (const i of shown) {
          const prev = lastIf.get(i.name);
          const reset = prev !== undefined && SERIES.some(([, , k]) => i[k] < prev[k]);
          if (reset) forget(i.name);
          const base = reset ? undefined : prev;
          for (const [direction, kind, k] of SERIES)
            netErrors.labels(i.name, direction, kind).inc(i[k] - (base ? base[k] : 0));
          lastIf.set(i.name, i);
        }
      },
      *history(o): Iterable<HistoryRow> {
        const ts = Date.now();
        if (o.tcp?.retrans_ratio !== null && o.tcp?.retrans_ratio !== undefined)
          yield { series: "tcp_retrans_ratio", labels: noLabels, value: o.tcp.retrans_ratio, ts };
        const known = o.interfaces.filter((i) => i.errors_per_second !== null);
        if (known.length > 0)
          yield {
            series: "net_errors_per_second",
            labels: noLabels,
            value: known.reduce((a, i) => a + (i.errors_per_second ?? 0), 0),
            ts,
          };
      },
    },
  };
}
