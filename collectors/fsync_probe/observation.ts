// fsync_probe observation: one probe outcome per probed directory.
// Pure types: what the core, status, diagnose and remediators read; no implementation.

export type ProbeOutcome =
  | {
      readonly dir: string;
      readonly mountpoint: string;
      readonly state: "ok";
      readonly seconds: number;
    }
  | {
      readonly dir: string;
      readonly mountpoint: string;
      readonly state: "error";
      readonly errno: string;
      readonly message: string;
    }
  | {
      readonly dir: string;
      readonly mountpoint: string;
      readonly state: "stalled";
      readonly stalled_seconds: number;
    };

export interface FsyncProbeObservation {
  readonly probes: ProbeOutcome[];
}

/** A probe that came back after its deadline (reported stalled): emitted when it returns. */
export interface LateProbe {
  readonly dir: string;
  readonly mountpoint: string;
  readonly reply:
    | { readonly ok: true; readonly seconds: number }
    | { readonly ok: false; readonly code: string; readonly message: string };
}

/**
 * Each second from the probe's ticker: the probes in flight now with their age, and those that
 * ended since the last tick with their real duration (null when they failed), so the stall
 * detector (core/stalls.ts) sees a slow probe while it lasts and its end.
 */
export interface ProbeTick {
  readonly in_flight: ReadonlyArray<{
    readonly dir: string;
    readonly mountpoint: string;
    readonly age_seconds: number;
  }>;
  readonly ended: ReadonlyArray<{
    readonly dir: string;
    readonly mountpoint: string;
    readonly seconds: number | null;
  }>;
}

export type ProbeUpdate = LateProbe | ProbeTick;
