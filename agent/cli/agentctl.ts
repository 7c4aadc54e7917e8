#!/usr/bin/env node
// agentctl [--socket PATH] [--config FILE] <command> [--json]
// Exit codes: 0 healthy, 1 degraded, 2 critical, 3 agent unreachable, 64 usage error.
import { parseArgs } from "node:util";
import type { StatusReport, Verdict } from "../agent.js";
import { ApiError, get, socketCandidates, Unreachable } from "./client.js";
import { ago, detectStyle, humanBytes, humanDuration, paint, type Style, table } from "./format.js";

export const EXIT = { ok: 0, degraded: 1, critical: 2, unreachable: 3, usage: 64 } as const;

const USAGE = `usage: agentctl [--socket PATH] [--config FILE] <command> [--json] [--no-color]

commands:
  status     the agent: version, uptime, config, collectors, history

options:
  --socket PATH   control socket (default: from the config, else /run/stemedb-agent/agentctl.sock,
                  then <state_dir>/agentctl.sock; or $STEMEDB_AGENT_SOCKET)
  --config FILE   agent configuration to read the socket path from
  --json          machine-readable output (stable schema, see README)

exit codes: 0 healthy, 1 degraded, 2 critical, 3 agent unreachable, 64 usage error`;

const VERDICT_EXIT: Record<Verdict, number> = { healthy: EXIT.ok, degraded: EXIT.degraded, critical: EXIT.critical };

function verdictText(style: Style, v: Verdict): string {
  return paint(style, v === "healthy" ? "green" : v === "degraded" ? "yellow" : "red", v);
}

export function renderStatus(s: StatusReport, style: Style, now = Date.now()): string {
  const a = s.agent;
  const out: string[] = [];
  out.push(`${paint(style, "bold", `stemedb-agent ${a.version}`)}: ${verdictText(style, s.health.verdict)}`);
  for (const r of s.health.reasons) out.push(`  ${paint(style, s.health.verdict === "critical" ? "red" : "yellow", "!")} ${r}`);
  out.push(
    table([
      ["pid", `${a.pid}, up ${humanDuration(a.uptime_seconds)} (since ${a.started_at}), node ${a.node_version}`],
      ["config", a.config_file ?? "(embedded defaults)"],
      ["metrics", `http://${a.listen}/metrics`],
      ["control", a.control_socket],
      ["state dir", a.state_dir],
    ]),
  );
  out.push("");
  out.push("collectors");
  if (s.collectors.length === 0) out.push("  (none enabled)");
  else {
    const rows: string[][] = [["name", "every", "last success", "runs", "failed", "last error"]];
    for (const c of s.collectors) {
      const err = c.last_error ? `${paint(style, c.consecutive_failures > 0 ? "red" : "dim", c.last_error.reason)} ${ago(c.last_error.at, now)}: ${c.last_error.message}` : "-";
      rows.push([c.name, humanDuration(c.interval_seconds), ago(c.last_success, now), String(c.runs), String(c.failures), err]);
    }
    out.push(table(rows));
  }
  out.push("");
  const h = s.history;
  const state = h.write_state === "ok" ? paint(style, "green", "ok") : paint(style, "red", h.write_state);
  out.push(`history  ${h.path ?? "(in memory only)"}  ${humanBytes(h.size_bytes)}  writes ${state}${h.last_error ? `: ${h.last_error}` : ""}`);
  out.push(`  rows: ${h.rows.series} series, ${h.rows.samples} samples, ${h.rows.rollups} rollups, ${h.rows.events} events (counted ${ago(h.rows_counted_at, now)}); ${h.pending_rows} pending, ${h.dropped_rows} dropped`);
  return `${out.join("\n")}\n`;
}

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
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    process.stderr.write(`agentctl: ${(e as Error).message}\n${USAGE}\n`);
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
  try {
    switch (command) {
      case "status": {
        const { body } = await get(candidates, "/v1/status");
        const s = body as StatusReport;
        process.stdout.write(o.json ? `${JSON.stringify(s, null, 2)}\n` : renderStatus(s, style));
        return VERDICT_EXIT[s.health.verdict] ?? EXIT.critical;
      }
      default:
        process.stderr.write(`agentctl: unknown command ${JSON.stringify(command)}\n${USAGE}\n`);
        return EXIT.usage;
    }
  } catch (e) {
    if (e instanceof Unreachable) {
      process.stderr.write(
        `agentctl: cannot reach stemedb-agent.\n${e.reasons.map((r) => `  ${r}`).join("\n")}\n` +
          "  check: is it running (systemctl status stemedb-agent)? are you root or in group stemedb-agent? is the socket elsewhere (--socket PATH)?\n",
      );
      return EXIT.unreachable;
    }
    if (e instanceof ApiError) {
      process.stderr.write(`agentctl: the agent refused: ${e.message}\n`);
      return EXIT.critical;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`agentctl: ${(e as Error).message}\n`);
    process.exitCode = EXIT.unreachable;
  },
);
