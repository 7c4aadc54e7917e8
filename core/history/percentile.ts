/** Nearest-rank percentile of an ascending-sorted, non-empty array. */
export function percentileSorted(sorted: readonly number[], q: number): number {
  const n = sorted.length;
  const rank = Math.min(n, Math.max(1, Math.ceil(q * n)));
  return sorted[rank - 1] as number;
}

export interface Summary {
  readonly count: number;
  readonly sum: number;
  readonly min: number;
  readonly max: number;
  readonly p50: number;
  readonly p99: number;
}

export function summarize(values: readonly number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: sorted.length,
    sum,
    min: sorted[0] as number,
    max: sorted[sorted.length - 1] as number,
    p50: percentileSorted(sorted, 0.5),
    p99: percentileSorted(sorted, 0.99),
  };
}
