// One map from collector name to the type of its observation: `latest.get("wal")` is a
// WalObservation with no cast, and a collector's name and observation cannot disagree.
import type { LatestView } from "../core/latest.js";
import type { BioObservation } from "./bio/observation.js";
import type { DiskstatsObservation } from "./diskstats/observation.js";
import type { ErrcountersObservation } from "./errcounters/observation.js";
import type { FsyncProbeObservation } from "./fsync_probe/observation.js";
import type { KmsgObservation } from "./kmsg/observation.js";
import type { MountsObservation } from "./mounts/observation.js";
import type { NetstatObservation } from "./netstat/observation.js";
import type { ProcessObservation } from "./process/observation.js";
import type { ProcioObservation } from "./procio/observation.js";
import type { SmartObservation } from "./smart/observation.js";
import type { StallsObservation } from "./stalls/observation.js";
import type { WalObservation } from "./wal/observation.js";

export interface Observations {
  diskstats: DiskstatsObservation;
  fsync_probe: FsyncProbeObservation;
  procio: ProcioObservation;
  smart: SmartObservation;
  kmsg: KmsgObservation;
  mounts: MountsObservation;
  wal: WalObservation;
  process: ProcessObservation;
  netstat: NetstatObservation;
  errcounters: ErrcountersObservation;
  stalls: StallsObservation;
  bio: BioObservation;
}

export type CollectorName = keyof Observations;

/** The latest observation of each collector, as status, diagnose and remediators read it. */
export type Latest = LatestView<Observations>;
