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
