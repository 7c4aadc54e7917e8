#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
// (agentctl only talks over a unix socket: a CA bundle named by NODE_EXTRA_CA_CERTS, as some
// shells export, would be parsed at every start, ~35 ms of a ~90 ms run on a 2-core VM.)
// agentctl [--socket PATH] [--config FILE] <command> [options]
// Exit codes: 0 ok, 1 warn, 2 crit, 3 agent unreachable, 64 usage error.
import { parseArgs } from "node:util";
import type { StatusReport } from "../agent.js";
import type { AreaVerdict } from "../status/areas.js";
import type { DiagnoseReport } from "../agent.js";
import { findRunbook, runbookList } from "../status/runbooks.js";
import type { EventRow, HistoryAnswer, TopIoSummary } from "../status/queries.js";
import {
  adminCandidates,
  ApiError,
  get,
  Refused,
  socketCandidates,
  Unreachable,
} from "./client.js";
import { detectStyle } from "./format.js";
import type {
  BackupPauseState,
  BackupUnitView,
} from "../../remediators/backup_pause/remediator.js";
import { type BallastState, renderBallastText } from "../../remediators/ballast/view.js";
import {
  renderBackups,
  renderDiagnosis,
  renderEvents,
  renderHistory,
  renderStatus,
  renderTopIo,
} from "./render.js";
import { errorMessage } from "../../core/errors.js";

export const EXIT = { ok: 0, warn: 1, crit: 2, unreachable: 3, usage: 64, refused: 77 } as const;

const USAGE =
  `usage: agentctl [--socket PATH] [--config FILE] <command> [options] [--json] [--no-color]

commands:
  status [-v]                          is this node's storage OK, and if not, why (one line per area)
  diagnose [RUNBOOK]                   walk the StemeDB runbooks (or one: slow-fsync, replication-lag,
                                       wal-fsync-failure, storage-errors, api-error-rate; its file
                                       name or alert will do) against current state and history
  diagnose [RUNBOOK] --active          (root) also run the WAL write test (writes real data, bounded)
  history METRIC [--device D] [--since 6h]
                                       a metric from history, as a table with a sparkline
  events [--since 24h] [--class C]     what happened (kernel, kernel_incident, errcounter, smart, mount, wal, ` +
  `disk, remediation, agent)
  top-io [--since 10m]                 the recent top I/O consumers, like iotop -o
  remediations                         modes, plans (dry-run), breakers, the journal
  remediations reset-breaker NAME      (root) let a stopped remediator act again
  remediations undo wal_compress SEGMENT
                                       (root) decompress one segment back to plain, crash-safely
  backups                              the listed backup units: paused or not, until when, budget left
  backups pause UNIT [--for 20m]       (root) pause a listed unit, with its dead-man's switch armed
  backups resume UNIT                  (root) resume a unit the agent paused
  ballast                              the emergency ballast on the WAL filesystem: held or not, where,
                                       when the agent gives it back
  ballast release                      (root) give the ballast back now: its space is free at once
  bundle [--since 1h] [--output FILE] [--max-size 64MiB] [--list]
                                       (root) a tar.gz for escalation: config (redacted), status,
                                       diagnose, events, history, journals, metrics, host inventory;
                                       --list shows what it would hold without collecting

options:
  --socket PATH   control socket (default: from the config, else /run/stemedb-agent/agentctl.sock,
                  then <state_dir>/agentctl.sock; or $STEMEDB_AGENT_SOCKET)
  --config FILE   agent configuration to read the socket path from
  --json          machine-readable output (stable schema, see README)

exit codes: 0 ok, 1 warn (or an action the agent declined, with its reason), 2 crit, 3 agent unreachable,
            64 usage error, 73 bundle file not created (exists), 77 action refused (not root)`;

const VERDICT_EXIT: Record<AreaVerdict, number> = {
  ok: EXIT.ok,
  unknown: EXIT.warn,
  warn: EXIT.warn,
  crit: EXIT.crit,
};

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        socket: { type: "string" },
        config: { type: "string" },
        json: { type: "boolean", default: false },
        "no-color": { type: "boolean", default: false },
        verbose: { type: "boolean", short: "v", default: false },
        device: { type: "string" },
        since: { type: "string" },
        class: { type: "string" },
        limit: { type: "string" },
        for: { type: "string" },
        active: { type: "boolean", default: false },
        output: { type: "string", short: "o" },
        "max-size": { type: "string" },
        list: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    process.stderr.write(`agentctl: ${errorMessage(e)}\n${USAGE}\n`);
    return EXIT.usage;
  }
  const { values: o, positionals } = parsed;
  if (o.help) {
    process.stdout.write(`${USAGE}\n`);
    return EXIT.ok;
  }
  const command = positionals[0] ?? "status";
  const candidates = socketCandidates({ socket: o.socket, config: o.config });
  const style = detectStyle(process.stdout, process.env, o["no-color"]);
  const q = (params: Record<string, string | undefined>) => {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined) u.set(k, v);
    const s = u.toString();
    return s ? `?${s}` : "";
  };
  const out = (body: unknown, text: () => string) =>
    process.stdout.write(o.json ? `${JSON.stringify(body, null, 2)}\n` : text());
  try {
    switch (command) {
      case "status": {
        const s = (await get(candidates, "/v1/status")).body as StatusReport;
        out(s, () => renderStatus(s, style, o.verbose));
        return VERDICT_EXIT[s.verdict] ?? EXIT.crit;
      }
      case "diagnose": {
        const name = positionals[1];
        const runbook = name === undefined ? undefined : findRunbook(name);
        if (runbook === null) {
          process.stderr.write(
            `agentctl: no runbook ${JSON.stringify(name)}; the five: ${runbookList()}\n`,
          );
          return EXIT.usage;
        }
        const path = `/v1/diagnose${o.active ? "/active" : ""}${q({ runbook: runbook?.runbook })}`;
        // --active writes up to [diagnose] write_test_deadline (at most 5 min) before answering.
        const d = (
          o.active
            ? await get(adminCandidates(candidates), path, 6 * 60_000, "POST")
            : await get(candidates, path)
        ).body as DiagnoseReport;
        out(d, () => renderDiagnosis(d, style));
        return VERDICT_EXIT[d.verdict] ?? EXIT.crit;
      }
      case "history": {
        const metric = positionals[1];
        if (!metric) {
          process.stderr.write(
            "agentctl: history needs a METRIC, e.g. agentctl history disk_w_await_seconds --device sda\n",
          );
          return EXIT.usage;
        }
        const h = (
          await get(candidates, `/v1/history${q({ metric, device: o.device, since: o.since })}`)
        ).body as HistoryAnswer;
        out(h, () => renderHistory(h, style));
        return EXIT.ok;
      }
      case "events": {
        const e = (
          await get(
            candidates,
            `/v1/events${q({ since: o.since, class: o.class, limit: o.limit })}`,
          )
        ).body as { events: EventRow[] };
        out(e, () => renderEvents(e.events, style));
        return EXIT.ok;
      }
      case "top-io": {
        const t = (await get(candidates, `/v1/top-io${q({ since: o.since, limit: o.limit })}`))
          .body as { top: TopIoSummary[] };
        out(t, () => renderTopIo(t.top));
        return EXIT.ok;
      }
      case "remediations": {
        if (positionals[1] === "undo") {
          const [name, target] = [positionals[2], positionals[3]];
          if (!name || !target) {
            process.stderr.write(
              "agentctl: undo needs a remediator and a target, e.g. " +
                "agentctl remediations undo wal_compress segment.42.wal\n",
            );
            return EXIT.usage;
          }
          const r = (
            await get(
              adminCandidates(candidates),
              `/v1/remediations/undo${q({ name, target })}`,
              60_000,
              "POST",
            )
          ).body;
          out(r, () => `${target}: decompressed back to plain\n`);
          return EXIT.ok;
        }
        if (positionals[1] === "reset-breaker") {
          const name = positionals[2];
          if (!name) {
            process.stderr.write(
              "agentctl: reset-breaker needs a remediator name, e.g. wal_compress\n",
            );
            return EXIT.usage;
          }
          const r = (
            await get(
              adminCandidates(candidates),
              `/v1/remediations/reset-breaker${q({ name })}`,
              5000,
              "POST",
            )
          ).body;
          out(r, () => `circuit breaker of ${name} reset\n`);
          return EXIT.ok;
        }
        const r = (await get(candidates, "/v1/remediations")).body as {
          remediators: Array<{
            name: string;
            mode: string;
            breaker_open: boolean;
            busy: string | null;
            last_decision: string;
            plan: { compress: string[]; skipped: number } | null;
          }>;
          journal: Array<{
            id: number;
            remediator: string;
            action: string;
            target: string;
            state: string;
            started_at: string;
          }>;
        };
        out(r, () => {
          const lines: string[] = [];
          for (const x of r.remediators) {
            const breaker = x.breaker_open ? ", CIRCUIT BREAKER OPEN" : "";
            const busy = x.busy ? `, compressing ${x.busy}` : "";
            lines.push(`${x.name}: mode ${x.mode}${breaker}${busy}`);
            lines.push(`  last decision: ${x.last_decision}`);
            if (x.plan) {
              const { compress, skipped } = x.plan;
              const more = compress.length > 5 ? ", …" : "";
              const names = compress.length ? ` (${compress.slice(0, 5).join(", ")}${more})` : "";
              lines.push(`  plan: ${compress.length} to compress${names}, ${skipped} kept`);
            }
          }
          lines.push("journal (newest first):");
          for (const j of r.journal)
            lines.push(
              `  #${j.id} ${j.started_at.slice(0, 19)} ${j.remediator} ${j.action} ${j.target}: ${j.state}`,
            );
          if (r.journal.length === 0) lines.push("  (empty)");
          return `${lines.join("\n")}\n`;
        });
        return EXIT.ok;
      }
      case "backups": {
        const verb = positionals[1];
        if (verb === "pause" || verb === "resume") {
          const unit = positionals[2];
          if (!unit) {
            process.stderr.write(
              `agentctl: backups ${verb} needs a unit, e.g. agentctl backups ${verb} ` +
                `backup.service${verb === "pause" ? " --for 20m" : ""}\n`,
            );
            return EXIT.usage;
          }
          try {
            const r = (
              await get(
                adminCandidates(candidates),
                `/v1/backups/${verb}${q({ unit, for: verb === "pause" ? o.for : undefined })}`,
                60_000,
                "POST",
              )
            ).body as { unit: BackupUnitView };
            out(r, () =>
              r.unit.paused
                ? `${unit}: paused (${r.unit.paused.method}) until ${r.unit.paused.until}; ` +
                  `dead-man's switch ${r.unit.paused.deadman} resumes it even if the agent dies\n`
                : `${unit}: resumed\n`,
            );
            return EXIT.ok;
          } catch (e) {
            // The agent declined (not listed, budget spent, not active, not paused): its reason, exit 1.
            if (!(e instanceof ApiError) || e.status !== 400) throw e;
            process.stderr.write(
              `agentctl: ${unit} not ${verb === "pause" ? "paused" : "resumed"}: ${e.message}\n`,
            );
            return EXIT.warn;
          }
        }
        if (verb !== undefined) {
          process.stderr.write(
            `agentctl: unknown backups command ${JSON.stringify(verb)} (pause, resume, or nothing to list)\n`,
          );
          return EXIT.usage;
        }
        const b = (await get(candidates, "/v1/backups", 20_000)).body as BackupPauseState;
        out(b, () => renderBackups(b, style));
        return EXIT.ok;
      }
      case "ballast": {
        const verb = positionals[1];
        if (verb === "release") {
          try {
            const r = (
              await get(adminCandidates(candidates), "/v1/ballast/release", 60_000, "POST")
            ).body as { ballast: BallastState["ballast"] };
            out(
              r,
              () =>
                `emergency ballast given back${r.ballast.path ? ` (${r.ballast.path})` : ""}: its ` +
                `space is free; the agent takes it again once space has been back for a while\n`,
            );
            return EXIT.ok;
          } catch (e) {
            // The agent declined (none held): its reason, exit 1.
            if (!(e instanceof ApiError) || e.status !== 400) throw e;
            process.stderr.write(`agentctl: ballast not released: ${e.message}\n`);
            return EXIT.warn;
          }
        }
        if (verb !== undefined) {
          process.stderr.write(
            `agentctl: unknown ballast command ${JSON.stringify(verb)} (release, or nothing to show)\n`,
          );
          return EXIT.usage;
        }
        const b = (await get(candidates, "/v1/ballast")).body as BallastState;
        out(b, () => renderBallastText(b));
        return EXIT.ok;
      }
      case "bundle": {
        // Loaded only here: the archive and inventory libraries cost every other command nothing.
        const { bundle } = await import("./bundle.js");
        const code = await bundle(
          { since: o.since, output: o.output, maxSize: o["max-size"], list: o.list, json: o.json },
          candidates,
        );
        // A tool the inventory ran may hang past its timeout: it must not hold agentctl open.
        await new Promise((r) => process.stdout.write("", r));
        return process.exit(code);
      }
      default:
        process.stderr.write(`agentctl: unknown command ${JSON.stringify(command)}\n${USAGE}\n`);
        return EXIT.usage;
    }
  } catch (e) {
    if (e instanceof Unreachable) {
      process.stderr.write(
        `agentctl: cannot reach stemedb-agent.\n${e.reasons.map((r) => `  ${r}`).join("\n")}\n` +
          ("  check: is it running (systemctl status stemedb-agent)? are you root or in group " +
            "stemedb-agent? is the socket elsewhere (--socket PATH)?\n" +
            "  started with npm start in a checkout? from there: npm run agentctl -- status\n"),
      );
      return EXIT.unreachable;
    }
    if (e instanceof Refused) {
      process.stderr.write(`agentctl: refused: ${e.message} (run as root)\n`);
      return EXIT.refused;
    }
    if (e instanceof ApiError) {
      process.stderr.write(
        `agentctl: ${e.status === 400 ? "bad request" : "the agent failed"}: ${e.message}\n`,
      );
      return e.status === 400 ? EXIT.usage : EXIT.crit;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`agentctl: ${errorMessage(e)}\n`);
    process.exitCode = EXIT.unreachable;
  },
);
