import type { Collector, Sinks } from "../../core/collector.js";
import { closeRouted, type HistoryWriter, Router } from "../../core/router.js";
import { HistoryStore, type Retention } from "../../core/history/store.js";
import { CoreMetrics } from "../../core/metrics/registry.js";
import { loadConfig } from "../../core/config/load.js";
import { readFileSync } from "node:fs";
import { pino } from "pino";
import type { Logger } from "../../core/log.js";

/** A real logger that writes nowhere (tests assert on behaviour and metrics, not log text). */
export const quietLog: Logger = pino({ level: "silent" });

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** True while a process with this pid runs; a zombie (dead, not yet reaped by init) is not alive. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** The embedded default history settings (what the agent runs with absent a config file). */
export function defaultRetention(): Retention {
  const r = loadConfig({ env: {}, defaultFile: "/nonexistent" });
  if (!r.ok) throw new Error(r.problems.join("\n"));
  return r.loaded.config.history;
}

/** One collector run the way the scheduler does it: collect, then route; returns the observation. */
/** A history store in `stateDir` with the default retention, a quiet log and its own metrics. */
export function historyIn(stateDir: string, metrics = new CoreMetrics()): HistoryStore {
  return new HistoryStore({ stateDir, retention: defaultRetention(), log: quietLog, metrics });
}

export function sampler<O>(
  col: Collector<O>,
  route?: { observation(o: O): void },
): () => Promise<O> {
  const signal = new AbortController().signal;
  return async () => {
    const o = await col.collect({ signal });
    route?.observation(o);
    return o;
  };
}

/**
 * A collector wired the way collectors/index.ts does it: its sinks behind a core Router writing
 * to `history`, and `emit` (for background results) going into that route.
 */
export function routed<C extends Collector<O>, O, U = never>(
  sinks: Sinks<O, U>,
  history: HistoryWriter | null,
  make: (emit: (u: U) => void) => C,
): { col: C; route: Router<O, U>; once: () => Promise<O>; close: () => Promise<void> } {
  const route = new Router("test", sinks, history, quietLog);
  const col = make(route.update);
  return {
    col,
    route,
    once: sampler(col, route),
    close: () => closeRouted({ collector: col, route }),
  };
}
