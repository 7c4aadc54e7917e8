// Which remediators exist, and how each is built from its part of the configuration. The agent
// iterates this list (start, tick, reload, status, operator routes, stop); a remediator never
// sees the whole configuration, only its own options.
import type { Config } from "../core/config/schema.js";
import {
  BackupPauseRemediator,
  backupPauseOptions,
  NAME as BACKUP_PAUSE,
} from "./backup_pause/remediator.js";
import { BallastRemediator, ballastOptions, NAME as BALLAST } from "./ballast/remediator.js";
import type { Remediator, RemediatorDeps } from "./framework.js";
import {
  NAME as WAL_COMPRESS,
  WalCompressRemediator,
  walCompressOptions,
} from "./wal_compress/remediator.js";

export type { RemediatorDeps } from "./framework.js";

interface Factory<Options> {
  readonly name: string;
  /** This remediator's part of the configuration (handed to it again at every reload). */
  options(c: Config): Options;
  create(options: Options, deps: RemediatorDeps): Remediator<Options>;
}

/** A built remediator and the way to hand it its new options at a reload. */
export interface RemediatorEntry {
  readonly remediator: Remediator;
  reconfigure(c: Config): void;
}

/** The options type stays inside the entry: the agent handles every remediator alike. */
function entry<Options>(f: Factory<Options>) {
  return {
    name: f.name,
    build(c: Config, deps: RemediatorDeps): RemediatorEntry {
      const remediator = f.create(f.options(c), deps);
      return { remediator, reconfigure: (next) => remediator.setOptions(f.options(next)) };
    },
  };
}

/** In this order everywhere: status, diagnose, agentctl remediations. */
const FACTORIES = [
  entry({
    name: WAL_COMPRESS,
    options: walCompressOptions,
    create: (o, deps) => new WalCompressRemediator(o, deps),
  }),
  entry({
    name: BACKUP_PAUSE,
    options: backupPauseOptions,
    create: (o, deps) => new BackupPauseRemediator(o, deps),
  }),
  entry({
    name: BALLAST,
    options: ballastOptions,
    create: (o, deps) => new BallastRemediator(o, deps),
  }),
];

export function remediatorNames(): string[] {
  return FACTORIES.map((f) => f.name);
}

export function buildRemediators(c: Config, deps: RemediatorDeps): RemediatorEntry[] {
  return FACTORIES.map((f) => f.build(c, deps));
}

export { BACKUP_PAUSE, BALLAST, WAL_COMPRESS };
