// The running agent: builds collectors, schedules them, keeps history, serves /metrics and the
// control socket, reloads on SIGHUP and shuts down cleanly. Owns time and state; collectors
// only observe.
import { dirname, join } from "node:path";
import {
  buildCollectors,
  type CollectorDeps,
  type CollectorEntry,
  collectorFingerprints,
  collectorSpecs,
} from "../collectors/index.js";
import { stallLimits } from "../core/stalls.js";
import type { Observations } from "../collectors/observations.js";
import type { LoadedConfig } from "../core/config/load.js";
import { Latest, type LatestView } from "../core/latest.js";
import { closeRouted } from "../core/router.js";
import type { Config } from "../core/config/schema.js";
import { BadRequest, ControlServer, type RouteHandler } from "./control/server.js";
import { errorMessage } from "../core/errors.js";
import { HistoryStore } from "../core/history/store.js";
import type { Logger } from "../core/log.js";
import { CoreMetrics } from "../core/metrics/registry.js";
import { SelfMetrics } from "../core/metrics/self.js";
import { type Health, MetricsServer } from "./metrics-server.js";
import { type CollectorStatus, Scheduler } from "../core/scheduler.js";
import { type Area, type AreaVerdict, buildAreas, worst } from "./status/areas.js";
import { type Diagnosis, diagnose, walFsync } from "./status/diagnose.js";
import { findRunbook, type RunbookId, runbookList } from "./status/runbooks.js";
import { writeTest, type WriteTestOutcome } from "./status/write-test.js";
import { eventsQuery, historyQuery, sinceMs, topIoQuery } from "./status/queries.js";
import { VERSION } from "../core/version.js";
import {
  ActionRefused,
  Journal,
  RemediationMetrics,
  type Remediator,
  type RemediatorSummary,
} from "../remediators/framework.js";
import {
  BACKUP_PAUSE,
  BALLAST,
  buildRemediators,
  type RemediatorEntry,
} from "../remediators/index.js";
import { COLLECTOR_JUDGE } from "../judge/index.js";
import { bundleRoutes } from "./bundle/routes.js";
import { SmartCollector } from "../collectors/smart/collector.js";

const TICK_MS = 1000;
/** /healthz fails when the core loop has not ticked for this long. */
const STALE_TICK_MS = 5 * TICK_MS;
const MAINTAIN_EVERY_MS = 60_000;

export type AgentVerdict = "healthy" | "degraded" | "critical";

export interface AgentHealth {
  readonly verdict: AgentVerdict;
  readonly reasons: string[];
}

export interface StatusReport {
  readonly schema: 1;
  readonly agent: {
    readonly version: string;
    readonly node_version: string;
    readonly pid: number;
    readonly started_at: string;
    readonly uptime_seconds: number;
    readonly config_file: string | null;
    readonly listen: string;
    readonly control_socket: string;
    readonly state_dir: string;
    /** Not 0: status says what the agent cannot see without root. */
    readonly uid: number;
  };
  readonly health: AgentHealth;
  /** The node's storage, worst area first is not implied: the order is fixed (see README). */
  readonly verdict: AreaVerdict;
  readonly areas: Area[];
  readonly collectors: CollectorStatus[];
  readonly history: ReturnType<HistoryStore["stats"]>;
}

export type DiagnoseReport = Diagnosis & { readonly schema: 2; readonly generated_at: string };

/** `?runbook=NAME` (its id, file name or alert, any case), or all five; a 400 naming them otherwise. */
function runbooksOf(u: URL): RunbookId[] | undefined {
  const name = u.searchParams.get("runbook");
  if (name === null || name === "") return undefined;
  const r = findRunbook(name);
  if (!r) throw new BadRequest(`no runbook ${JSON.stringify(name)} (known: ${runbookList()})`);
  return [r.runbook];
}

/** The node's verdict: the worst known area; unknown only when nothing is known. */
function overall(areas: readonly Area[]): AreaVerdict {
  const known = areas.filter((a) => a.verdict !== "unknown");
  return known.length === 0 ? "unknown" : worst(known.map((a) => a.verdict));
}

export class Agent {
  private readonly metrics = new CoreMetrics();
  private readonly self: SelfMetrics;
  /** The latest observation of each collector, for status, diagnose and remediators. */
  private readonly latest = new Latest<Observations>();
  private ticks = 0;
  private readonly scheduler: Scheduler;
  private readonly history: HistoryStore;
  private metricsServer: MetricsServer | undefined;
  private control: ControlServer | undefined;
  private admin: ControlServer | undefined;
  private readonly remediators: readonly RemediatorEntry[];
  private config: Config;
  private configFile: string | null;
  /** The running collectors with their routes and the fingerprints they were built from. */
  private readonly entries = new Map<string, CollectorEntry>();
  private readonly startedAt = Date.now();
  private lastTick = Date.now();
  private lastTickMono: number | null = null;
  private lastFlush = Date.now();
  private lastMaintain = Date.now();
  private maintenance: Generator<void, void, void> | undefined;
  private ticker: NodeJS.Timeout | undefined;
  /** Called from every core-loop tick (systemd WATCHDOG=1 and STATUS= from main.ts); must not throw or block. */
  onTick: ((now: number) => void) | undefined;
  private stopping = false;
  private writeTestRunning = false;

  private constructor(
    loaded: LoadedConfig,
    private readonly log: Logger,
  ) {
    this.config = loaded.config;
    this.configFile = loaded.file;
    this.scheduler = new Scheduler(this.metrics, log);
    this.self = new SelfMetrics(this.metrics.registry, this.config.host.proc_path);
    this.scheduler.onLate = (ms) => this.self.late(ms);
    this.history = new HistoryStore({
      stateDir: this.config.agent.state_dir,
      retention: this.config.history,
      log,
      metrics: this.metrics,
      stalls: stallLimits(this.config),
    });
    this.remediators = buildRemediators(this.config, {
      history: this.history,
      metrics: new RemediationMetrics(this.metrics.registry),
      registry: this.metrics.registry,
      log,
    });
  }

  static async start(loaded: LoadedConfig, log: Logger): Promise<Agent> {
    const agent = new Agent(loaded, log);
    try {
      await agent.begin();
    } catch (e) {
      await agent.stop();
      throw e;
    }
    return agent;
  }

  private async begin(): Promise<void> {
    const c = this.config;
    // Half-done remediation work is resolved (or queued) before anything else runs.
    for (const r of this.each()) await r.start();
    this.addCollectors(buildCollectors(this.collectorDeps()));
    this.metricsServer = await MetricsServer.start({
      listen: c.agent.listen,
      registry: this.metrics.registry,
      health: () => this.health(),
      log: this.log,
    });
    this.control = await ControlServer.start({
      paths: [...new Set([c.agent.control_socket, join(c.agent.state_dir, "agentctl.sock")])],
      group: c.agent.socket_group,
      routes: this.routes(),
      log: this.log,
    });
    // Actions (root only): a second socket, mode 0600, next to the read-only one. Node cannot read a
    // unix peer's credentials, so who may act is decided by who may open the socket.
    this.admin = await ControlServer.start({
      paths: [
        ...new Set([
          join(dirname(this.control.path), "agentctl-admin.sock"),
          join(c.agent.state_dir, "agentctl-admin.sock"),
        ]),
      ],
      group: c.agent.socket_group,
      mode: 0o600,
      routes: this.adminRoutes(),
      log: this.log,
    });
    this.scheduler.start();
    this.ticker = setInterval(() => this.tick(), TICK_MS);
    this.tick();
    this.history.event({
      class: "agent",
      kind: "agent.started",
      severity: "info",
      message: `stemedb-agent ${VERSION} started`,
      data: { config_file: this.configFile, pid: process.pid },
    });
    this.log.info(
      {
        version: VERSION,
        config_file: this.configFile ?? "(embedded defaults)",
        metrics: this.metricsAddress(),
        control_socket: this.control.path,
        state_dir: c.agent.state_dir,
        collectors: this.scheduler.names(),
      },
      "stemedb-agent started",
    );
  }

  metricsAddress(): string {
    const a = this.metricsServer?.address();
    if (!a) return "";
    return a.family === "IPv6" ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  controlPath(): string {
    return this.control?.path ?? "";
  }

  /** SIGHUP: re-read the same file; a bad file keeps the running config. Returns the problems, if any. */
  async reload(
    load: () => { ok: true; loaded: LoadedConfig } | { ok: false; problems: string[] },
  ): Promise<string[]> {
    const r = load();
    if (!r.ok) {
      for (const p of r.problems)
        this.log.error({ problem: p }, "reload refused: keeping the running configuration");
      this.history.event({
        class: "agent",
        kind: "config.reload_failed",
        severity: "warn",
        message: `configuration reload refused: ${r.problems.length} problem(s)`,
        data: { problems: r.problems },
      });
      return r.problems;
    }
    const prev = this.config;
    const next = r.loaded.config;
    this.config = next;
    this.configFile = r.loaded.file;
    this.log.level = next.agent.log_level;
    this.history.setRetention(next.history);
    this.history.setStallLimits(stallLimits(next));
    for (const e of this.remediators) e.reconfigure(next);
    for (const key of ["state_dir", "control_socket", "socket_group"] as const) {
      if (prev.agent[key] !== next.agent[key])
        this.log.warn(
          { key: `agent.${key}` },
          "this key changes only at restart; the running value stays",
        );
    }
    if (prev.agent.listen !== next.agent.listen) {
      try {
        const fresh = await MetricsServer.start({
          listen: next.agent.listen,
          registry: this.metrics.registry,
          health: () => this.health(),
          log: this.log,
        });
        await this.metricsServer?.close();
        this.metricsServer = fresh;
      } catch (e) {
        this.log.error(
          { listen: next.agent.listen, err: errorMessage(e) },
          "cannot listen on the new address; still serving on the old one",
        );
      }
    }
    // Rebuild only the collectors whose configuration changed.
    const wanted = collectorFingerprints(next);
    for (const [name, e] of this.entries) {
      if (wanted.get(name) !== e.fingerprint) {
        this.scheduler.remove(name);
        this.entries.delete(name);
        await closeRouted(e);
      }
    }
    this.addCollectors(buildCollectors(this.collectorDeps(), (name) => !this.entries.has(name)));
    // A changed interval, timeout or jitter alone does not rebuild a collector: apply it to its schedule.
    for (const [name, spec] of collectorSpecs(next)) this.scheduler.update(name, spec);
    this.history.event({
      class: "agent",
      kind: "config.reloaded",
      severity: "info",
      message: "configuration reloaded",
    });
    this.log.info({ collectors: this.scheduler.names() }, "configuration reloaded");
    return [];
  }

  /** Stops scheduling, flushes history, closes sockets. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.ticker);
    // Nothing the agent paused stays paused behind it (ExecStopPost and the dead-man timers cover a crash).
    await Promise.race([
      Promise.allSettled(
        this.each().flatMap((r) => (r.stop ? [r.stop("the agent is stopping")] : [])),
      ),
      new Promise((r) => setTimeout(r, 3000).unref()),
    ]);
    await this.scheduler.stop(2000);
    for (const name of this.scheduler.names()) {
      this.scheduler.remove(name);
      const entry = this.entries.get(name);
      this.entries.delete(name);
      try {
        if (entry) await closeRouted(entry);
      } catch (e) {
        this.log.warn({ collector: name, err: errorMessage(e) }, "collector close failed");
      }
    }
    await Promise.allSettled([
      this.metricsServer?.close(),
      this.control?.close(),
      this.admin?.close(),
      ...this.each().map((r) => r.close()),
    ]);
    this.history.event({
      class: "agent",
      kind: "agent.stopped",
      severity: "info",
      message: "stemedb-agent stopped",
    });
    this.history.close();
    this.self.stop();
    this.log.info("stemedb-agent stopped");
  }

  health(): Health {
    const age = Date.now() - this.lastTick;
    if (this.stopping) return { ok: false, reason: "agent is stopping" };
    if (age > STALE_TICK_MS)
      return { ok: false, reason: `core loop last ticked ${(age / 1000).toFixed(1)}s ago` };
    return {
      ok: true,
      reason: `core loop ticking; ${this.scheduler.names().length} collectors scheduled`,
    };
  }

  status(): StatusReport {
    const c = this.config;
    const health = this.agentHealth();
    const areas = buildAreas(
      c,
      this.latestView(),
      this.history,
      health,
      Date.now(),
      this.states(),
      this.configFile,
      process.getuid?.() ?? 0,
    );
    return {
      schema: 1,
      agent: {
        version: VERSION,
        node_version: process.version,
        pid: process.pid,
        started_at: new Date(this.startedAt).toISOString(),
        uptime_seconds: Math.round((Date.now() - this.startedAt) / 1000),
        config_file: this.configFile,
        listen: this.metricsAddress(),
        control_socket: this.controlPath(),
        state_dir: c.agent.state_dir,
        uid: process.getuid?.() ?? 0,
      },
      health,
      verdict: overall(areas),
      areas,
      collectors: this.scheduler.status(),
      history: this.history.stats(),
    };
  }

  private agentHealth(): AgentHealth {
    const reasons: string[] = [];
    let verdict: AgentVerdict = "healthy";
    const worse = (v: AgentVerdict, why: string) => {
      reasons.push(why);
      if (v === "critical" || verdict === "healthy") verdict = v;
    };
    const h = this.health();
    if (!h.ok) worse("critical", h.reason);
    const cols = this.scheduler.status();
    const failing = cols.filter((s) => s.consecutive_failures > 0);
    for (const s of failing)
      worse(
        "degraded",
        `collector ${s.name} failing (${s.consecutive_failures}x): ${s.last_error?.message ?? "unknown"}`,
      );
    if (
      cols.length > 0 &&
      failing.length === cols.length &&
      failing.every((s) => s.consecutive_failures >= 3)
    ) {
      worse("critical", "every collector is failing");
    }
    const hs = this.history.stats();
    if (hs.write_state !== "ok")
      worse("degraded", `history not being written (${hs.write_state}): ${hs.last_error ?? ""}`);
    return { verdict, reasons };
  }

  private latestView(): LatestView<Observations> {
    return this.latest;
  }

  private routes(): Map<string, RouteHandler> {
    const limit = (u: URL, d: number) =>
      Math.min(10_000, Math.max(1, Number(u.searchParams.get("limit") ?? d) || d));
    const routes = new Map<string, RouteHandler>([
      ["GET /v1/status", () => this.status()],
      ["GET /v1/health", () => this.agentHealth()],
      ["GET /v1/diagnose", (u) => this.diagnosis(runbooksOf(u))],
      [
        "GET /v1/history",
        (u) =>
          historyQuery(
            this.history,
            this.config,
            u.searchParams.get("metric") ?? "",
            u.searchParams.get("device"),
            sinceMs(u.searchParams.get("since"), "6h"),
          ),
      ],
      [
        "GET /v1/events",
        (u) => ({
          events: eventsQuery(
            this.history,
            sinceMs(u.searchParams.get("since"), "24h"),
            u.searchParams.get("class"),
            limit(u, 200),
          ),
        }),
      ],
      [
        "GET /v1/top-io",
        (u) => ({
          top: topIoQuery(this.history, sinceMs(u.searchParams.get("since"), "10m"), limit(u, 20)),
        }),
      ],
      [
        "GET /v1/remediations",
        () => ({
          remediators: this.states(),
          journal: new Journal(this.history).recent(20),
        }),
      ],
      [
        "GET /v1/backups",
        async () => ({ schema: 1, ...(await this.remediator(BACKUP_PAUSE).detailed?.()) }),
      ],
      ["GET /v1/ballast", () => ({ schema: 1, ...this.remediator(BALLAST).state() })],
    ]);
    // Answers include what happened a moment ago: rows buffered for the next flush are written
    // first (an operator who just paused a unit must see the event now, not in 10 s).
    for (const [key, handler] of routes)
      if (key !== "GET /v1/health") routes.set(key, (u) => (this.history.flush(), handler(u)));
    return routes;
  }

  private adminRoutes(): Map<string, RouteHandler> {
    return new Map<string, RouteHandler>([
      [
        "POST /v1/remediations/reset-breaker",
        (u) => {
          const name = u.searchParams.get("name");
          this.named(name, this.each()).resetBreaker();
          return { reset: name };
        },
      ],
      [
        "POST /v1/remediations/undo",
        async (u) => {
          const name = u.searchParams.get("name");
          const target = u.searchParams.get("target") ?? "";
          const r = this.named(
            name,
            this.each().filter((x) => x.undo !== undefined),
          );
          try {
            return { undone: await r.undo?.(target) };
          } catch (e) {
            throw new BadRequest(errorMessage(e));
          }
        },
      ],
      ["POST /v1/diagnose/active", (u) => this.activeDiagnosis(runbooksOf(u))],
      ["POST /v1/backups/pause", (u) => this.action(BACKUP_PAUSE, "pause", u)],
      ["POST /v1/backups/resume", (u) => this.action(BACKUP_PAUSE, "resume", u)],
      // The emergency ballast: given back at once, in any mode (the admin socket: root only).
      ["POST /v1/ballast/release", (u) => this.action(BALLAST, "release", u, "ballast")],
      // agentctl bundle: root only, as it carries the configuration and the history.
      ...bundleRoutes({
        config: () => this.config,
        configFile: () => this.configFile,
        history: this.history,
        metricsText: () => this.metrics.registry.metrics(),
        smart: () => {
          const c = this.entries.get("smart")?.collector;
          return c instanceof SmartCollector ? c.rawReports() : [];
        },
      }),
    ]);
  }

  private diagnosis(only: RunbookId[] | undefined, writeTest?: WriteTestOutcome): DiagnoseReport {
    return {
      schema: 2,
      generated_at: new Date().toISOString(),
      ...diagnose(this.config, this.latestView(), this.history, Date.now(), this.states(), {
        ...(only ? { only } : {}),
        ...(writeTest ? { writeTest } : {}),
      }),
    };
  }

  /**
   * agentctl diagnose --active (root, admin socket): the WAL write test, journalled as events
   * before and after, then the diagnosis with its result. One at a time.
   */
  private async activeDiagnosis(only: RunbookId[] | undefined): Promise<DiagnoseReport> {
    if (this.writeTestRunning) throw new BadRequest("a write test is already running");
    this.writeTestRunning = true;
    try {
      const c = this.config;
      const d = c.diagnose;
      const fsync = walFsync(c, this.latestView(), this.history).verdict;
      this.history.event({
        class: "agent",
        kind: "write_test.started",
        severity: "info",
        subject: c.wal.dir,
        message:
          `WAL write test requested (agentctl diagnose --active): up to ` +
          `${Math.round(d.write_test_size / 1024 ** 2)} MiB of O_DIRECT writes on the WAL's filesystem, ` +
          `at most ${d.write_test_deadline / 1000} s`,
      });
      this.history.flush(); // journalled before it happens
      const t = await writeTest(c, this.latestView(), fsync);
      this.history.event({
        class: "agent",
        kind: `write_test.${t.state}`,
        severity:
          t.state === "failed" || (t.state === "done" && t.verdict !== "ok") ? "warn" : "info",
        subject: c.wal.dir,
        message:
          t.state === "done"
            ? `WAL write test: ${(t.bytes_per_second / 1e6).toFixed(0)} MB/s, ` +
              `${Math.round(t.bytes / 1024 ** 2)} MiB in ${t.seconds.toFixed(1)} s, p99 ` +
              `${(t.p99_seconds * 1000).toFixed(1)} ms per 1 MiB write (expected over ` +
              `${(t.expected_bytes_per_second / 1e6).toFixed(0)} MB/s); ${t.path} removed`
            : `WAL write test ${t.state}: ${t.reason}`,
        data: t,
      });
      return this.diagnosis(only, t);
    } finally {
      this.writeTestRunning = false;
    }
  }

  /** An operator's action: refusals are the operator's answer (400), not the agent's failure. */
  private async action(remediator: string, action: string, u: URL, key = "unit"): Promise<unknown> {
    const fn = this.remediator(remediator).actions?.get(action);
    if (!fn) throw new BadRequest(`${remediator} has no action ${action}`);
    try {
      return { [key]: await fn(u.searchParams) };
    } catch (e) {
      if (e instanceof ActionRefused || e instanceof BadRequest) throw new BadRequest(e.message);
      throw e;
    }
  }

  private each(): Remediator[] {
    return this.remediators.map((e) => e.remediator);
  }

  private states(): RemediatorSummary[] {
    return this.each().map((r) => r.state());
  }

  /** A registered remediator (the registry always holds the names the agent's routes use). */
  private remediator(name: string): Remediator {
    const r = this.each().find((x) => x.name === name);
    if (!r) throw new Error(`no remediator ${name} in the registry`);
    return r;
  }

  /** The one of `among` an operator named, or a 400 that lists the names that would do. */
  private named(name: string | null, among: readonly Remediator[]): Remediator {
    const r = among.find((x) => x.name === name);
    if (!r)
      throw new BadRequest(
        `no remediator named ${JSON.stringify(name)} (known: ${among.map((x) => x.name).join(", ")})`,
      );
    return r;
  }

  private collectorDeps(): CollectorDeps {
    return {
      config: this.config,
      log: this.log,
      registry: this.metrics.registry,
      history: this.history,
      once: false,
      judge: COLLECTOR_JUDGE,
      latest: this.latest,
    };
  }

  private addCollectors(entries: ReturnType<typeof buildCollectors>): void {
    for (const e of entries) {
      // The core routes each fresh observation to the collector's sinks, then keeps it as latest.
      e.schedule(this.scheduler, e.spec);
      this.entries.set(e.collector.name, e);
    }
  }

  private tick(): void {
    const now = Date.now();
    this.lastTick = now;
    // How late this 1 s tick came (Node re-arms an interval from when its callback ran).
    const mono = performance.now();
    if (this.lastTickMono !== null) this.self.late(mono - this.lastTickMono - TICK_MS);
    this.lastTickMono = mono;
    try {
      this.onTick?.(now);
    } catch (e) {
      this.log.warn({ err: errorMessage(e) }, "tick hook failed");
    }
    this.metrics.coreLoopLastTick.set(now / 1000);
    if (++this.ticks % 10 === 0) this.self.rollWindow();
    if (now - this.lastFlush >= this.config.history.flush_interval || now < this.lastFlush) {
      this.lastFlush = now;
      this.history.flush();
    }
    for (const r of this.each()) r.tick(this.latestView(), now);
    if (now - this.lastMaintain >= MAINTAIN_EVERY_MS || now < this.lastMaintain) {
      this.lastMaintain = now;
      this.maintenance = this.history.maintenanceSteps();
    }
    // One step per tick (see maintenanceSteps).
    if (this.maintenance?.next().done === true) this.maintenance = undefined;
  }
}
