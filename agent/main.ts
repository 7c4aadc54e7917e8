#!/usr/bin/env node
// stemedb-agent [--config FILE] [--once] [--print-config] [--log-pretty]
import { parseArgs } from "node:util";
import { Agent } from "./agent.js";
import { loadConfig, type LoadResult, printConfig } from "../core/config/load.js";
import { configFileProblem, prepareStateDir, runningAsRoot } from "../core/config/trust.js";
import { DEFAULT_CONFIG_FILE } from "../core/config/schema.js";
import { errorMessage } from "../core/errors.js";
import { createLogger, type Logger } from "../core/log.js";
import { runOnce } from "./once.js";
import { resumePaused } from "../remediators/backup_pause/remediator.js";
import { SystemdNotifier } from "./systemd/notify.js";
import { attachSystemd, reloadWithNotify } from "./systemd/wire.js";
import { VERSION } from "../core/version.js";

const USAGE = `usage: stemedb-agent [--config FILE] [--once] [--print-config] [--resume-paused] [--log-pretty]

  --config FILE    configuration file (default ${DEFAULT_CONFIG_FILE} if it exists, else embedded defaults)
  --once           run every enabled collector once, print the observations as JSON, exit
  --print-config   print the effective configuration as TOML and exit
  --resume-paused  resume every backup unit the agent holds paused, then exit (the unit's ExecStopPost)
  --log-pretty     human-readable logs instead of JSON lines
  --version        print the version and exit

environment: STEMEDB_AGENT_LISTEN and STEMEDB_AGENT_STATE_DIR override agent.listen and agent.state_dir.
signals: SIGHUP reloads the configuration; SIGTERM/SIGINT stop the agent.`;

const SHUTDOWN_DEADLINE_MS = 4500;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        config: { type: "string" },
        once: { type: "boolean", default: false },
        "print-config": { type: "boolean", default: false },
        "resume-paused": { type: "boolean", default: false },
        "log-pretty": { type: "boolean", default: false },
        version: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    process.stderr.write(`stemedb-agent: ${errorMessage(e)}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (args.version) {
    process.stdout.write(`stemedb-agent ${VERSION}\n`);
    return 0;
  }
  // As root, a configuration anyone else could have written is refused, at start and at reload
  // (not for --print-config, which runs nothing).
  const load = (check = true): LoadResult => {
    const res = loadConfig({ file: args.config });
    if (!check || !res.ok || res.loaded.file === null || !runningAsRoot()) return res;
    const p = configFileProblem(res.loaded.file);
    return p === null ? res : { ok: false, problems: [p], untrusted: true };
  };
  const r = load(!args["print-config"]);
  if (!r.ok) {
    if (r.untrusted) {
      process.stderr.write(`stemedb-agent: refusing to run as root: ${r.problems[0]}\n`);
      return 2;
    }
    for (const p of r.problems) process.stderr.write(`stemedb-agent: config: ${p}\n`);
    process.stderr.write(
      `stemedb-agent: not started: ${r.problems.length} configuration problem(s)\n`,
    );
    return 2;
  }
  if (args["print-config"]) {
    process.stdout.write(
      `# effective configuration (${r.loaded.file ?? "embedded defaults"})\n${printConfig(r.loaded.config)}`,
    );
    return 0;
  }
  // The state directory: what --resume-paused acts on and where history is kept.
  let stateNotes: string[] = [];
  if (runningAsRoot()) {
    const st = prepareStateDir(r.loaded.config.agent.state_dir);
    if ("problem" in st) {
      process.stderr.write(`stemedb-agent: refusing to run as root: ${st.problem}\n`);
      return 2;
    }
    stateNotes = st.notes;
  }
  const format = args["log-pretty"] ? "pretty" : r.loaded.config.agent.log_format;

  if (args["resume-paused"]) {
    const log = createLogger(r.loaded.config.agent.log_level, format);
    for (const n of stateNotes) log.warn(n);
    const res = await resumePaused(r.loaded.config, log);
    const held = res.resumed.length + res.left.length + res.not_listed.length;
    log.info(
      res,
      held === 0 ? "resume-paused: the agent held nothing paused" : "resume-paused: done",
    );
    await flush(log);
    // A unit still paused (left to its dead-man's switch) is a failure worth the exit status.
    return res.left.length + res.not_listed.length > 0 ? 1 : 0;
  }

  if (args.once) {
    // Logs go to stderr so stdout stays pure JSON.
    const log = createLogger(
      r.loaded.config.agent.log_level === "info" ? "warn" : r.loaded.config.agent.log_level,
      format,
    );
    for (const n of stateNotes) log.warn(n);
    const res = await runOnce(r.loaded, log);
    process.stdout.write(`${JSON.stringify(res.report, null, 2)}\n`);
    for (const f of res.failed) process.stderr.write(`stemedb-agent: collector failed: ${f}\n`);
    return res.failed.length > 0 ? 1 : 0;
  }

  const log = createLogger(r.loaded.config.agent.log_level, format);
  for (const n of stateNotes) log.warn(n);
  // Before anything spawns: takes NOTIFY_SOCKET/WATCHDOG_* out of the environment children inherit.
  const sd = new SystemdNotifier({ log });
  let agent: Agent;
  try {
    agent = await Agent.start(r.loaded, log);
  } catch (e) {
    log.fatal({ err: errorMessage(e) }, "cannot start");
    await flush(log);
    return 1;
  }
  attachSystemd(sd, agent, log);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, "stopping");
      sd.stopping();
      const deadline = setTimeout(() => {
        log.error("shutdown took too long; exiting anyway");
        resolve(1);
      }, SHUTDOWN_DEADLINE_MS);
      deadline.unref();
      agent.stop().then(
        async () => {
          clearTimeout(deadline);
          // STOPPING=1 went out synchronously in stop().
          await flush(log);
          resolve(0);
        },
        (e: unknown) => {
          log.error({ err: errorMessage(e) }, "error while stopping");
          clearTimeout(deadline);
          resolve(1);
        },
      );
    };
    // A bug in one promise chain is logged, not fatal: the rest of the agent keeps serving.
    process.on("unhandledRejection", (e) =>
      log.error({ err: errorMessage(e) }, "unhandled rejection (bug)"),
    );
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGHUP", () => {
      log.info("SIGHUP: reloading configuration");
      reloadWithNotify(sd, agent, log, () => agent.reload(() => load())).catch((e: unknown) =>
        log.error({ err: errorMessage(e) }, "reload failed"),
      );
    });
  });
}

function flush(log: Logger): Promise<void> {
  return new Promise((resolve) => {
    try {
      log.flush(() => resolve());
    } catch {
      resolve();
    }
  });
}

main().then(
  (code) => {
    process.exitCode = code;
    // Exit explicitly: a collector's stray handle must not keep a stopped agent alive.
    setImmediate(() => process.exit(code));
  },
  (e: unknown) => {
    process.stderr.write(`stemedb-agent: fatal: ${errorMessage(e)}\n`);
    process.exit(1);
  },
);
