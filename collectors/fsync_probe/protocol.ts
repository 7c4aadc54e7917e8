// What the fsync probe's main side and its worker thread share.

/** The probe's file in each probed directory: hidden, and never matching a WAL segment pattern. */
export const PROBE_FILE = ".stemedb-agent-fsync-probe";
/** Probes cycle through a file of this size written once: never extended, so no metadata commit per probe. */
export const PROBE_FILE_SIZE = 1024 * 1024;

export interface ProbeRequest {
  readonly id: number;
}

export type ProbeReply =
  | { readonly id: number; readonly ok: true; readonly seconds: number; readonly prepared: boolean }
  | { readonly id: number; readonly ok: false; readonly code: string; readonly message: string };
