// kmsg observation: storage faults read from the kernel log since the previous tick.
// Pure types: what the core, status, diagnose and remediators read; no implementation.
import type { Classified } from "./classify.js";

export interface KernelFault {
  readonly seq: number | null;
  readonly class: Classified["class"];
  readonly severity: Classified["severity"];
  readonly device: string;
  readonly logical: string | null;
  readonly count: number;
  readonly line: string;
  /** Record time in ms (kmsg's monotonic clock, the journal's, or the wall clock). */
  readonly atMs: number;
  readonly sector?: string;
  readonly request?: string;
  readonly repeats?: true;
}

export interface KmsgObservation {
  readonly source: "kmsg" | "journal";
  readonly records: number;
  readonly faults: KernelFault[];
  readonly lost: number;
  readonly suppressed: number;
  /** Where to resume: committed with this observation's events. */
  readonly resume:
    { readonly boot_id: string; readonly next_seq: number } | { readonly cursor: string } | null;
}
