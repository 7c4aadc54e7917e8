// A Prometheus histogram whose buckets were counted elsewhere (in the kernel, by a BPF program):
// prom-client's Histogram only counts what it observes itself, so this one prints the
// `_bucket`, `_sum` and `_count` series of counts it is handed, at the bounds it was built with.
import { Histogram, type Registry } from "prom-client";

export interface BucketedSeries<L extends string> {
  readonly labels: Readonly<Record<L, string>>;
  /** Cumulative counts at each bound, then the total (the +Inf bucket and `_count`). */
  readonly cumulative: readonly number[];
  readonly sum: number;
}

export class BucketedHistogram extends Histogram {
  /** Where the series come from at each scrape; replaced by a rebuilt sink on reload. */
  source: () => Iterable<BucketedSeries<string>> = () => [];

  constructor(
    private readonly cfg: { name: string; help: string; bounds: readonly number[] },
    registry: Registry,
  ) {
    // No label names: this histogram never observes; its series come from `source`.
    super({ name: cfg.name, help: cfg.help, buckets: [...cfg.bounds], registers: [registry] });
    this.shape = new Histogram({ name: cfg.name, help: cfg.help, registers: [] });
  }

  /** An unregistered histogram of the same name: where the exposition's type and help come from. */
  private readonly shape: Histogram;

  override get(): ReturnType<Histogram["get"]> {
    return this.build();
  }

  /** What the registry reads for the text exposition (prom-client calls it before get()). */
  getForPromString(): ReturnType<Histogram["get"]> {
    return this.build();
  }

  private async build(): ReturnType<Histogram["get"]> {
    const { name, bounds } = this.cfg;
    const values: Awaited<ReturnType<Histogram["get"]>>["values"] = [];
    for (const s of this.source()) {
      if (s.cumulative.length !== bounds.length + 1)
        throw new Error(`${name}: ${s.cumulative.length} counts for ${bounds.length} bounds`);
      bounds.forEach((le, k) =>
        values.push({
          labels: { ...s.labels, le },
          value: s.cumulative[k] as number,
          metricName: `${name}_bucket`,
        }),
      );
      const count = s.cumulative[bounds.length] as number;
      values.push({
        labels: { ...s.labels, le: "+Inf" },
        value: count,
        metricName: `${name}_bucket`,
      });
      values.push({ labels: { ...s.labels }, value: s.sum, metricName: `${name}_sum` });
      values.push({ labels: { ...s.labels }, value: count, metricName: `${name}_count` });
    }
    // The type, help and aggregator as prom-client's own histogram gives them; our values.
    return { ...(await this.shape.get()), values };
  }
}

/** The registered one of that name (a reload rebuilds sinks, not metrics), or a new one. */
export function bucketedHistogram<L extends string>(
  registry: Registry,
  cfg: { name: string; help: string; bounds: readonly number[] },
): { source: () => Iterable<BucketedSeries<L>> } {
  const got = registry.getSingleMetric(cfg.name);
  return got instanceof BucketedHistogram ? got : new BucketedHistogram(cfg, registry);
}
