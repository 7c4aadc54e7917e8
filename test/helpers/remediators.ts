// A remediator built as the agent builds it: a history store in the configuration's state dir,
// fresh metrics; at teardown it is stopped (what must not outlive it is undone) and closed.
import type { ExecutionContext } from "ava";
import type { Config } from "../../core/config/schema.js";
import { HistoryStore } from "../../core/history/store.js";
import { CoreMetrics } from "../../core/metrics/registry.js";
import {
  RemediationMetrics,
  type Remediator,
  type RemediatorDeps,
} from "../../remediators/framework.js";
import { quietLog } from "./quiet.js";

export function buildRemediator<R extends Remediator>(
  t: ExecutionContext,
  config: Config,
  create: (deps: RemediatorDeps) => R,
): { rem: R; history: HistoryStore } {
  const core = new CoreMetrics();
  const history = new HistoryStore({
    stateDir: config.agent.state_dir,
    retention: config.history,
    log: quietLog,
    metrics: core,
  });
  const rem = create({
    history,
    metrics: new RemediationMetrics(core.registry),
    registry: core.registry,
    log: quietLog,
  });
  t.teardown(async () => {
    await rem.stop?.("test over").catch(() => undefined);
    await rem.close();
    history.close();
  });
  return { rem, history };
}
