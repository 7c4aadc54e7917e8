// mounts observation: each watched mount's options, findings, space and time-to-full.
// Pure types: what the core, status, diagnose and remediators read; no implementation.
import type { Space } from "../../core/host/statfs.js";
import type { MountFinding } from "./policy.js";

/** A mount's space, as core/host computes it from statfs. */
export type FilesystemSpace = Space;

export interface MountState {
  readonly mountpoint: string;
  /** The configured paths on this mount, with their role. */
  readonly paths: ReadonlyArray<{
    readonly path: string;
    readonly role: string;
    readonly exists: boolean;
  }>;
  readonly source: string;
  readonly fs_type: string;
  readonly options: readonly string[];
  readonly findings: readonly MountFinding[];
  readonly read_only: boolean;
  readonly space: FilesystemSpace | null;
  readonly fill_bytes_per_second: number | null;
  readonly full_in_seconds: number;
  readonly error: string | null;
}

export interface MountsObservation {
  readonly mounts: MountState[];
}
