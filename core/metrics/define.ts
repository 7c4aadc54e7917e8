// Metric definitions that survive a collector being rebuilt on reload: the second definition
// of a name returns the first one instead of throwing "already registered".
import {
  Counter,
  type CounterConfiguration,
  Gauge,
  type GaugeConfiguration,
  Histogram,
  type HistogramConfiguration,
  type Registry,
} from "prom-client";

export function counter<L extends string>(
  registry: Registry,
  cfg: Omit<CounterConfiguration<L>, "registers">,
): Counter<L> {
  return (
    (registry.getSingleMetric(cfg.name) as Counter<L> | undefined) ??
    new Counter<L>({ ...cfg, registers: [registry] })
  );
}

export function gauge<L extends string>(
  registry: Registry,
  cfg: Omit<GaugeConfiguration<L>, "registers">,
): Gauge<L> {
  return (
    (registry.getSingleMetric(cfg.name) as Gauge<L> | undefined) ??
    new Gauge<L>({ ...cfg, registers: [registry] })
  );
}

export function histogram<L extends string>(
  registry: Registry,
  cfg: Omit<HistogramConfiguration<L>, "registers">,
): Histogram<L> {
  return (
    (registry.getSingleMetric(cfg.name) as Histogram<L> | undefined) ??
    new Histogram<L>({ ...cfg, registers: [registry] })
  );
}
