// Connects the running agent to systemd: READY=1 once started, WATCHDOG=1 and a refreshed STATUS=
// line from the core loop's tick, RELOADING=1/READY=1 around a SIGHUP reload, STOPPING=1.
import type { Agent } from "../agent.js";
import { errorMessage } from "../../core/errors.js";
import type { Logger } from "../../core/log.js";
import type { SystemdNotifier } from "./notify.js";

/** STATUS= is refreshed this often. */
export const STATUS_EVERY_MS = 30_000;

/** The one-line summary shown by `systemctl status` (StatusText). */
export function summary(agent: Agent): string {
  const s = agent.status();
  const failing = s.collectors.filter((c) => c.consecutive_failures > 0).length;
  const collectors = `${s.collectors.length} collectors${failing > 0 ? ` (${failing} failing)` : ""}`;
  return `node ${s.verdict}; agent ${s.health.verdict}; ${collectors}; metrics on ${s.agent.listen}`;
}

function safeSummary(agent: Agent, log: Logger): string {
  try {
    return summary(agent);
  } catch (e) {
    log.warn({ err: errorMessage(e) }, "cannot build the systemd status line");
    return "running (status unavailable)";
  }
}

/** Call after Agent.start resolved: collectors are scheduled and both ports are open. */
export function attachSystemd(sd: SystemdNotifier, agent: Agent, log: Logger): void {
  if (!sd.enabled) return;
  sd.ready(safeSummary(agent, log));
  let lastStatus = performance.now();
  // The tick runs on the main event loop: if the loop wedges, the pings stop and systemd's
  // watchdog restarts the agent. performance.now() is monotonic (wall-clock jumps don't matter).
  sd.watchdog(performance.now());
  agent.onTick = () => {
    const now = performance.now();
    sd.watchdog(now);
    if (now - lastStatus >= STATUS_EVERY_MS) {
      lastStatus = now;
      sd.status(safeSummary(agent, log));
    }
  };
  log.info(
    { watchdog_interval_ms: sd.watchdogIntervalMs, sent: sd.counts.sent, failed: sd.counts.failed },
    "systemd: READY=1 sent from the main PID",
  );
}

/** SIGHUP: RELOADING=1, reload, then READY=1 with a fresh status (also when the file was refused). */
export async function reloadWithNotify(
  sd: SystemdNotifier,
  agent: Agent,
  log: Logger,
  reload: () => Promise<unknown>,
): Promise<void> {
  sd.reloading();
  try {
    await reload();
  } finally {
    sd.ready(safeSummary(agent, log));
  }
}
