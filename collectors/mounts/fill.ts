// Time until a filesystem is full, from its recent used-bytes history. Pure.
// A Theil-Sen fit (the median of pairwise slopes) ignores the odd burst or deletion that would
// swing a least-squares line, so one large file written or removed does not page anyone.

export interface UsedSample {
  readonly ts: number; // ms
  readonly used: number; // bytes
}

export interface FillEstimate {
  /** Bytes per second; 0 or negative when not filling. null when there is too little data. */
  readonly bytesPerSecond: number | null;
  /** Seconds until available space is gone at that rate; Infinity when not filling or unknown. */
  readonly fullInSeconds: number;
}

const MAX_POINTS = 60;

/** Reduce to at most MAX_POINTS by taking the median of equal-sized chunks (keeps the fit O(60²)). */
function thin(samples: readonly UsedSample[]): UsedSample[] {
  if (samples.length <= MAX_POINTS) return [...samples];
  const out: UsedSample[] = [];
  const size = samples.length / MAX_POINTS;
  for (let i = 0; i < MAX_POINTS; i++) {
    const chunk = samples.slice(Math.floor(i * size), Math.floor((i + 1) * size));
    const mid = chunk[Math.floor(chunk.length / 2)];
    if (mid) out.push(mid);
  }
  return out;
}

export function theilSenSlope(samples: readonly UsedSample[]): number | null {
  const pts = thin(samples);
  const slopes: number[] = [];
  for (let i = 0; i < pts.length; i++) {
    for (let j = i + 1; j < pts.length; j++) {
      const a = pts[i] as UsedSample;
      const b = pts[j] as UsedSample;
      const dt = (b.ts - a.ts) / 1000;
      if (dt > 0) slopes.push((b.used - a.used) / dt);
    }
  }
  if (slopes.length === 0) return null;
  slopes.sort((x, y) => x - y);
  const m = slopes.length >> 1;
  return slopes.length % 2
    ? (slopes[m] as number)
    : ((slopes[m - 1] as number) + (slopes[m] as number)) / 2;
}

export function estimateFill(
  samples: readonly UsedSample[],
  availableBytes: number,
  minSpanMs: number,
  minPoints = 5,
): FillEstimate {
  const sorted = [...samples].sort((a, b) => a.ts - b.ts);
  const span =
    sorted.length > 1 ? (sorted.at(-1) as UsedSample).ts - (sorted[0] as UsedSample).ts : 0;
  if (sorted.length < minPoints || span < minSpanMs)
    return { bytesPerSecond: null, fullInSeconds: Infinity };
  const slope = theilSenSlope(sorted);
  if (slope === null || slope <= 0) return { bytesPerSecond: slope, fullInSeconds: Infinity };
  return { bytesPerSecond: slope, fullInSeconds: Math.max(0, availableBytes) / slope };
}
