// stemedb-agent --once: every enabled collector once, observations as JSON (like telegraf --test).
// Touches neither history nor any port; observations are not published (background results go
// to the throwaway registry).
import { Registry } from "prom-client";
import { buildCollectors } from "../collectors/index.js";
import type { LoadedConfig } from "../core/config/load.js";
import { errorMessage, TimeoutError } from "../core/errors.js";
import { closeRouted } from "../core/router.js";
import type { Logger } from "../core/log.js";
import { COLLECTOR_JUDGE } from "../judge/index.js";

export interface OnceResult {
  readonly report: Record<
    string,
    | { ok: true; seconds: number; observation: unknown }
    | { ok: false; seconds: number; error: string }
  >;
  readonly failed: string[];
}

export async function runOnce(loaded: LoadedConfig, log: Logger): Promise<OnceResult> {
  const entries = buildCollectors({
    config: loaded.config,
    log,
    registry: new Registry(),
    history: null,
    once: true,
    judge: COLLECTOR_JUDGE,
  });
  const report: OnceResult["report"] = {};
  const failed: string[] = [];
  await Promise.all(
    entries.map(async (entry) => {
      const { collector, spec } = entry;
      const ac = new AbortController();
      const budget = spec.timeout + (collector.onceWarmupMs ?? 0);
      const timer = setTimeout(
        () => ac.abort(new TimeoutError(`timed out after ${budget / 1000}s`)),
        budget,
      );
      const started = performance.now();
      try {
        const aborted = new Promise<never>((_, reject) =>
          ac.signal.addEventListener("abort", () => reject(ac.signal.reason as Error), {
            once: true,
          }),
        );
        if (collector.onceWarmupMs !== undefined) {
          await Promise.race([collector.collect({ signal: ac.signal }), aborted]);
          await new Promise((r) => setTimeout(r, collector.onceWarmupMs));
        }
        const observation = await Promise.race([collector.collect({ signal: ac.signal }), aborted]);
        report[collector.name] = {
          ok: true,
          seconds: (performance.now() - started) / 1000,
          observation,
        };
      } catch (e) {
        report[collector.name] = {
          ok: false,
          seconds: (performance.now() - started) / 1000,
          error: errorMessage(e),
        };
        failed.push(`${collector.name}: ${errorMessage(e)}`);
      } finally {
        clearTimeout(timer);
        await closeRouted(entry);
      }
    }),
  );
  return { report, failed };
}
