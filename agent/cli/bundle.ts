// agentctl bundle: the diagnostic bundle the runbooks end with ("collect a diagnostic bundle for
// escalation"), one tar.gz holding what a second-line engineer asks for first. Like `sos report`
// and `cockroach debug zip` it is a list of items, each gathered on its own with a timeout: an
// item that fails is listed as missing with the reason and never fails the bundle. Like sos's
// --log-size, logs keep their newest lines when cut; the whole archive is capped
// (bundle.max_bytes, --max-size) and the MANIFEST says what was cut and what is missing.
//
// Root only: the first request goes to the agent's 0600 admin socket. The gathering runs at idle
// priority: agentctl re-executes itself under `ionice -c 3 nice -n 19` (Node can set its nice
// value but not its I/O class, and an I/O priority set after start would miss the threads Node
// already runs), so every thread, the compression and each tool it runs (journalctl, systemctl,
// df, lsblk) inherit both. The agent answers in bounded pieces (history in pages).
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { getPriority, hostname, release } from "node:os";
import { basename, resolve } from "node:path";
import type { StatusReport } from "../agent.js";
import { CSV_HEADER, csvLines, type WirePage } from "../bundle/csv.js";
import { redactText } from "../bundle/redact.js";
import type { BundlePlan, SmartRaw } from "../bundle/routes.js";
import type { Diagnosis } from "../status/diagnose.js";
import type { EventRow, TopIoSummary } from "../status/queries.js";
import { errorCode, errorMessage } from "../../core/errors.js";
import { run } from "../../core/exec.js";
import {
  formatSize,
  MAX_BUNDLE_BYTES,
  MIN_BUNDLE_BYTES,
  parseDuration,
  parseSize,
} from "../../core/config/units.js";
import { BundleArchive } from "./archive.js";
import { adminCandidates, get } from "./client.js";
import { humanBytes } from "./format.js";
import { renderDiagnosis, renderEvents, renderStatus, renderTopIo } from "./render.js";

export const BUNDLE_EXIT = { ok: 0, usage: 64, cantCreate: 73 } as const;

/** Set in the re-executed child: it already runs at idle priority. */
const IDLE_ENV = "STEMEDB_AGENTCTL_IDLE";
const AGENT_TIMEOUT_MS = 30_000;
const TOOL_TIMEOUT_MS = 30_000;
const MAX_SINCE_MS = 90 * 86_400_000;

export const WHO =
  "root only: agentctl asks the agent on its 0600 root-only admin socket (agentctl-admin.sock), " +
  "as a bundle holds the configuration, the journals and the history";

export interface BundleArgs {
  readonly since: string | undefined;
  readonly output: string | undefined;
  readonly maxSize: string | undefined;
  readonly list: boolean;
  readonly json: boolean;
}

/** One file (or, for a group, several) the bundle holds. */
interface Item {
  /** Path in the archive; a group ends in "/". */
  readonly path: string;
  readonly source: string;
  /** The most this item may take, as a share of the cap. */
  readonly share: number;
  /** Logs keep their newest part when cut; everything else its beginning. */
  readonly keep: "head" | "tail";
  /** The content, a group's files, or why it is missing. */
  collect(limit: number): Promise<Buffer | string | Partial | Files | Missing>;
}

type Files = Array<{ readonly name: string; readonly data: Buffer | string }>;

class Missing {
  constructor(readonly why: string) {}
}

/** Content its source already cut (a log read up to the limit): listed as cut, with why. */
class Partial {
  constructor(
    readonly data: Buffer | string,
    readonly why: string,
  ) {}
}

interface ManifestLine {
  readonly path: string;
  readonly status: "collected" | "cut" | "missing";
  readonly bytes: number;
  readonly detail: string;
}

interface Context {
  readonly candidates: readonly string[];
  readonly admin: readonly string[];
  readonly since: number;
  readonly sinceText: string;
  readonly now: number;
  readonly plan: BundlePlan;
  readonly status: StatusReport | null;
}

const plain = { color: false } as const;

function parseArgs(a: BundleArgs): { since: number; maxBytes: number | null } | string {
  const since = parseDuration(a.since ?? "1h");
  if (!since.ok) return `--since: ${since.reason}`;
  if (since.value <= 0 || since.value > MAX_SINCE_MS) return "--since: must be from 1s to 90d";
  let maxBytes: number | null = null;
  if (a.maxSize !== undefined) {
    const s = parseSize(a.maxSize);
    if (!s.ok) return `--max-size: ${s.reason}`;
    if (s.value < MIN_BUNDLE_BYTES || s.value > MAX_BUNDLE_BYTES)
      return `--max-size: must be from ${formatSize(MIN_BUNDLE_BYTES)} to ${formatSize(MAX_BUNDLE_BYTES)}`;
    maxBytes = s.value;
  }
  return { since: since.value, maxBytes };
}

export async function bundle(a: BundleArgs, candidates: readonly string[]): Promise<number> {
  const parsed = parseArgs(a);
  if (typeof parsed === "string") {
    process.stderr.write(`agentctl: ${parsed}\n`);
    return BUNDLE_EXIT.usage;
  }
  if (!a.list && process.env[IDLE_ENV] !== "1") {
    const code = await reexecIdle();
    if (code !== null) return code;
  }
  const admin = adminCandidates(candidates);
  // The first request: refused (exit 77) unless root, before anything is gathered or written.
  const plan = (await get(admin, "/v1/bundle/plan", AGENT_TIMEOUT_MS, "GET", true))
    .body as BundlePlan;
  const maxBytes = parsed.maxBytes ?? plan.max_bytes;
  const now = Date.now();
  let status: StatusReport | null = null;
  try {
    status = (await get(candidates, "/v1/status", AGENT_TIMEOUT_MS)).body as StatusReport;
  } catch {
    // listed as missing below
  }
  const ctx: Context = {
    candidates,
    admin,
    since: parsed.since,
    sinceText: a.since ?? "1h",
    now,
    plan,
    status,
  };
  const items = buildItems(ctx);
  if (a.list) {
    process.stdout.write(listText(items, ctx, maxBytes, a));
    return BUNDLE_EXIT.ok;
  }
  const stamp = new Date(now)
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  const host = hostname().replace(/[^A-Za-z0-9._-]/g, "_");
  const top = `stemedb-bundle-${host}-${stamp}`;
  const path = resolve(a.output ?? `/var/tmp/${top}.tar.gz`);
  let archive: BundleArchive;
  try {
    archive = BundleArchive.create(path, maxBytes, top, new Date(now));
  } catch (e) {
    const why =
      errorCode(e) === "EEXIST"
        ? "it exists; refusing to overwrite it"
        : errorCode(e) === "ELOOP"
          ? "it is a symbolic link; refusing to follow it"
          : errorMessage(e);
    process.stderr.write(`agentctl: cannot create ${path}: ${why}\n`);
    return BUNDLE_EXIT.cantCreate;
  }
  const lines: ManifestLine[] = [];
  try {
    for (const item of items) lines.push(...(await gather(item, archive, maxBytes)));
    await archive.close(manifest(lines, ctx, maxBytes, await priority()));
  } catch (e) {
    await archive.abort();
    throw e;
  }
  const cut = lines.filter((l) => l.status === "cut").length;
  const missing = lines.filter((l) => l.status === "missing");
  const size = readFileSync(path).length;
  if (a.json)
    process.stdout.write(`${JSON.stringify({ path, bytes: size, items: lines }, null, 2)}\n`);
  else
    process.stdout.write(
      `bundle written: ${path} (${humanBytes(size)}; ${lines.length} items: ` +
        `${lines.length - cut - missing.length} collected, ${cut} cut, ${missing.length} missing; ` +
        `see MANIFEST.txt)\n` +
        missing.map((l) => `  missing ${l.path}: ${l.detail}\n`).join(""),
    );
  return BUNDLE_EXIT.ok;
}

/**
 * Runs this same command again under `ionice -c 3 nice -n 19` and returns its exit code; null
 * when ionice cannot be run (then this process lowers its own CPU priority and goes on).
 */
function reexecIdle(): Promise<number | null> {
  const env: NodeJS.ProcessEnv = { ...process.env, [IDLE_ENV]: "1" };
  delete env["NODE_EXTRA_CA_CERTS"];
  const script = process.argv[1] ?? "";
  const args = ["-c", "3", "nice", "-n", "19", process.execPath, ...process.execArgv, script];
  return new Promise((done) => {
    const child = spawn("ionice", [...args, ...process.argv.slice(2)], { stdio: "inherit", env });
    child.once("error", () => {
      try {
        process.env[IDLE_ENV] = "1";
        // setPriority(19) on pid 0: this thread only; the threads started later inherit it.
        import("node:os").then((os) => os.setPriority(19)).catch(() => undefined);
      } finally {
        done(null);
      }
    });
    child.once("close", (code, signal) => done(code ?? (signal ? 128 : 2)));
  });
}

/** The priority this process gathers at, as the MANIFEST states it (read back, not assumed). */
async function priority(): Promise<string> {
  let io = "unknown";
  try {
    io = (
      await run("ionice", ["-p", String(process.pid)], { signal: AbortSignal.timeout(5000) })
    ).stdout.trim();
  } catch (e) {
    io = `unknown (${errorMessage(e)})`;
  }
  return `nice ${getPriority()}, I/O ${io}`;
}

async function gather(
  item: Item,
  archive: BundleArchive,
  maxBytes: number,
): Promise<ManifestLine[]> {
  const limit = Math.floor(maxBytes * item.share);
  const room = Math.min(limit, archive.room());
  if (room <= 0)
    return [
      { path: item.path, status: "missing", bytes: 0, detail: "size cap reached before this item" },
    ];
  let got: Awaited<ReturnType<Item["collect"]>>;
  try {
    got = await item.collect(room);
  } catch (e) {
    got = new Missing(errorMessage(e));
  }
  if (got instanceof Missing)
    return [{ path: item.path, status: "missing", bytes: 0, detail: got.why }];
  const partial = got instanceof Partial ? got.why : null;
  const files: Files = Array.isArray(got)
    ? got
    : [{ name: item.path, data: got instanceof Partial ? got.data : got }];
  if (files.length === 0)
    return [{ path: item.path, status: "missing", bytes: 0, detail: "nothing to collect" }];
  const out: ManifestLine[] = [];
  let left = limit;
  const kept = item.keep === "tail" ? "newest kept" : "beginning kept";
  for (const f of files) {
    const r = await archive.add(f.name, f.data, left, item.keep);
    left -= r.data.length;
    const n = r.data.length;
    out.push(
      r.from !== null
        ? {
            path: f.name,
            status: "cut",
            bytes: n,
            detail: `cut at ${n} of ${r.from} bytes (${kept}); ${item.source}`,
          }
        : partial !== null
          ? {
              path: f.name,
              status: "cut",
              bytes: n,
              detail: `cut at ${n} bytes: ${partial}; ${item.source}`,
            }
          : { path: f.name, status: "collected", bytes: n, detail: item.source },
    );
  }
  return out;
}

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

function buildItems(ctx: Context): Item[] {
  const q = `since=${encodeURIComponent(ctx.sinceText)}`;
  const fromAgent = async (path: string, admin = false) =>
    (await get(admin ? ctx.admin : ctx.candidates, path, AGENT_TIMEOUT_MS, "GET", admin)).body;
  const dbUnit = ctx.plan.database_unit;
  const agentUnit = ownUnit(ctx.status?.agent.pid);
  const item = (
    path: string,
    source: string,
    share: number,
    collect: Item["collect"],
    keep: Item["keep"] = "head",
  ): Item => ({ path, source, share, keep, collect });
  const view = <T>(
    path: string,
    route: string,
    source: string,
    text: (v: T) => string,
  ): [Item, Item] => {
    let cached: Promise<T> | null = null;
    const once = () => (cached ??= fromAgent(route) as Promise<T>);
    // The agent's own words, redacted too: an event written before credentials were kept out of
    // messages (metrics_url errors) may still hold one.
    const clean = (s: string) => redactText(s).text;
    return [
      item(`${path}.txt`, source, 1 / 16, async () => clean(text(await once()))),
      item(`${path}.json`, source, 1 / 16, async () => clean(json(await once()))),
    ];
  };
  return [
    item("version.txt", "agentctl and GET /v1/status", 1 / 64, () => Promise.resolve(version(ctx))),
    item(
      "config.toml",
      "the agent's effective configuration (GET /v1/bundle/config), redacted",
      1 / 32,
      async () => {
        const c = (await fromAgent("/v1/bundle/config", true)) as {
          file: string | null;
          toml: string;
          redacted: string[];
        };
        return (
          `# effective configuration of the running agent (${c.file ?? "embedded defaults"})\n` +
          `# redacted: ${c.redacted.length === 0 ? "nothing matched" : c.redacted.join(", ")}\n${c.toml}`
        );
      },
    ),
    ...view<StatusReport>("status", "/v1/status", "GET /v1/status", (s) =>
      renderStatus(s, plain, true),
    ),
    ...view<Diagnosis>("diagnose", "/v1/diagnose", "GET /v1/diagnose", (d) =>
      renderDiagnosis(d, plain),
    ),
    ...view<{ events: EventRow[] }>(
      "events",
      `/v1/events?${q}&limit=10000`,
      `GET /v1/events, last ${ctx.sinceText}, at most 10000`,
      (e) => renderEvents(e.events, plain),
    ),
    item(
      "kernel-storage-events.txt",
      `kernel-log storage events (classes kernel_incident and kernel), last ${ctx.sinceText}`,
      1 / 16,
      async () => {
        const parts: string[] = [];
        for (const cls of ["kernel_incident", "kernel"]) {
          const e = (await fromAgent(`/v1/events?${q}&class=${cls}&limit=10000`)) as {
            events: EventRow[];
          };
          parts.push(`# ${cls}: ${e.events.length} events\n${renderEvents(e.events, plain)}`);
        }
        return parts.join("\n");
      },
    ),
    item(
      "remediations.json",
      "GET /v1/remediations and the remediation journal (GET /v1/bundle/journal)",
      1 / 16,
      async () => {
        const r = (await fromAgent("/v1/remediations")) as { remediators: unknown };
        const j = (await fromAgent("/v1/bundle/journal", true)) as { journal: unknown };
        return json({ remediators: r.remediators, journal: j.journal });
      },
    ),
    ...view<{ top: TopIoSummary[] }>(
      "top-io",
      `/v1/top-io?${q}&limit=50`,
      `GET /v1/top-io, last ${ctx.sinceText}`,
      (t) => renderTopIo(t.top),
    ),
    item("host/mountinfo", "/proc/self/mountinfo", 1 / 32, () => readText("/proc/self/mountinfo")),
    item("host/df.txt", "df -P -T -a (30 s timeout)", 1 / 32, () => tool("df", ["-P", "-T", "-a"])),
    item("host/diskstats", "/proc/diskstats", 1 / 32, () => readText("/proc/diskstats")),
    item(
      "smart/",
      "the agent's last smartctl --json run per disk (GET /v1/bundle/smart; smartctl is not run)",
      1 / 8,
      async () => {
        const r = (await fromAgent("/v1/bundle/smart", true)) as { reports: SmartRaw[] };
        if (r.reports.length === 0)
          return new Missing(
            "the agent has no smartctl result (SMART collector off, or no run yet)",
          );
        return r.reports.map((x) => ({
          name: `smart/${x.device}${x.which === "last" ? "" : `.${x.which}`}.json`,
          data: x.json,
        }));
      },
    ),
    item(`systemd/${dbUnit}.status.txt`, `systemctl status ${dbUnit}`, 1 / 64, () =>
      systemctlStatus(dbUnit),
    ),
    item(`systemd/${agentUnit}.status.txt`, `systemctl status ${agentUnit}`, 1 / 64, () =>
      systemctlStatus(agentUnit),
    ),
    item(
      "host/inventory.json",
      "systeminformation: system, BIOS, OS, CPU, memory, block devices",
      1 / 16,
      async () => json(await (await import("./inventory.js")).hostInventory()),
    ),
    item(
      "metrics/agent.prom",
      "the agent's /metrics (GET /v1/bundle/metrics)",
      1 / 8,
      async () => ((await fromAgent("/v1/bundle/metrics", true)) as { text: string }).text,
    ),
    item(
      "metrics/database.prom",
      `the database's /metrics, fetched by the agent ` +
        `(${ctx.plan.database_metrics_url ?? "stemedb.metrics_url not set"}), ` +
        `at most ${humanBytes(ctx.plan.database_metrics_max_bytes)}, not redacted`,
      1 / 8,
      async () => {
        const r = (await fromAgent("/v1/bundle/database-metrics", true)) as {
          ok: boolean;
          text: string;
          truncated: boolean;
          error: string | null;
        };
        if (!r.ok) return new Missing(r.error ?? "no answer");
        return r.truncated
          ? `${r.text}\n# cut by the agent at ${ctx.plan.database_metrics_max_bytes} bytes\n`
          : r.text;
      },
    ),
    item(
      `journal/${dbUnit}.log`,
      `journalctl -u ${dbUnit}, last ${ctx.sinceText}, as logged`,
      1 / 4,
      (l) => journal(dbUnit, ctx, l),
      "tail",
    ),
    item(
      `journal/${agentUnit}.log`,
      `journalctl -u ${agentUnit}, last ${ctx.sinceText}, as logged`,
      1 / 4,
      (l) => journal(agentUnit, ctx, l),
      "tail",
    ),
    item(
      "history.csv",
      `every history point of the last ${ctx.sinceText} (GET /v1/bundle/history, in pages)`,
      1,
      (l) => history(ctx, l),
    ),
  ];
}

function version(ctx: Context): string {
  const a = ctx.status?.agent;
  return (
    `agent: stemedb-agent ${a?.version ?? "(status unavailable)"}, node ${a?.node_version ?? "?"}, ` +
    `pid ${a?.pid ?? "?"}, started ${a?.started_at ?? "?"}, config ${a?.config_file ?? "(embedded defaults)"}\n` +
    `agentctl: ${basename(process.argv[1] ?? "agentctl")}, node ${process.version}, ` +
    `v8 ${process.versions.v8}, ${process.platform}/${process.arch}, kernel ${release()}\n` +
    `host: ${hostname()}\n`
  );
}

/** The agent's own unit, from its cgroup (systemd puts a service in <unit>.service). */
function ownUnit(pid: number | undefined): string {
  try {
    const m = /\/([^/\n]+\.service)\s*$/m.exec(readFileSync(`/proc/${pid ?? 0}/cgroup`, "utf8"));
    if (m?.[1]) return m[1];
  } catch {
    // not running, or not on Linux
  }
  return "stemedb-agent.service";
}

async function readText(path: string): Promise<string> {
  const { readFile } = await import("node:fs/promises");
  return readFile(path, "utf8");
}

async function tool(file: string, args: string[]): Promise<string | Missing> {
  const r = await run(file, args, { signal: AbortSignal.timeout(TOOL_TIMEOUT_MS) });
  if (r.code !== 0 && r.stdout === "")
    return new Missing(`${file} exited ${r.code ?? r.signal}: ${firstLine(r.stderr)}`);
  return r.stdout;
}

const firstLine = (s: string) => s.trim().split("\n")[0] ?? "";

/** A host without systemd as init: systemctl and journalctl have nothing to say. */
function noSystemd(): Missing | null {
  try {
    readFileSync("/run/systemd/system");
  } catch (e) {
    if (errorCode(e) === "ENOENT")
      return new Missing("this host does not run systemd (no /run/systemd/system)");
  }
  return null;
}

async function systemctlStatus(unit: string): Promise<string | Missing> {
  const r = await run("systemctl", ["status", "--no-pager", "--full", "--lines=20", "--", unit], {
    signal: AbortSignal.timeout(TOOL_TIMEOUT_MS),
  });
  // 0 active, 3 inactive: a status either way; 4 no such unit.
  if (r.stdout.trim() !== "" && r.code !== 4) return r.stdout;
  return noSystemd() ?? new Missing(`systemctl exited ${r.code}: ${firstLine(r.stderr)}`);
}

/** The unit's journal since --since, newest first from journalctl (so a cut keeps the newest), reversed. */
async function journal(
  unit: string,
  ctx: Context,
  limit: number,
): Promise<string | Partial | Missing> {
  const since = `@${Math.floor((ctx.now - ctx.since) / 1000)}`;
  const max = Math.max(1024, limit - 512); // room for the header line
  const r = await run(
    "journalctl",
    ["--no-pager", "-o", "short-iso-precise", "-r", "--since", since, "-u", unit],
    { signal: AbortSignal.timeout(60_000), maxOutput: max },
  );
  if (/No journal files were found/i.test(r.stderr))
    return noSystemd() ?? new Missing("no journal files on this host (journald not running)");
  if (r.code !== 0) return new Missing(`journalctl exited ${r.code}: ${firstLine(r.stderr)}`);
  const cut = r.truncated || Buffer.byteLength(r.stdout) >= max;
  const lines = r.stdout.split("\n").filter((l) => l !== "");
  if (cut) lines.pop(); // the oldest line shown may be partial
  const text =
    `# journalctl -u ${unit} --since ${new Date(ctx.now - ctx.since).toISOString()}, as logged\n` +
    `${lines.reverse().join("\n")}\n`;
  return cut ? new Partial(text, "older lines not read (newest kept)") : text;
}

/** The history, page by page (each one a bounded query in the agent), until done or over the limit. */
async function history(ctx: Context, limit: number): Promise<Buffer | Partial> {
  const chunks: Buffer[] = [Buffer.from(CSV_HEADER)];
  let size = chunks[0]?.length ?? 0;
  let after: string | null = null;
  let now: number | null = null;
  do {
    const qs: string =
      `since=${encodeURIComponent(ctx.sinceText)}` +
      (now === null ? "" : `&now=${now}`) +
      (after === null ? "" : `&after=${encodeURIComponent(after)}`);
    const p = (await get(ctx.admin, `/v1/bundle/history?${qs}`, AGENT_TIMEOUT_MS, "GET", true))
      .body as WirePage;
    now = p.now;
    after = p.next;
    const b = Buffer.from(csvLines(p));
    chunks.push(b);
    size += b.length;
  } while (after !== null && size <= limit);
  const all = Buffer.concat(chunks);
  return after === null ? all : new Partial(all, "later rows not fetched");
}

function listText(items: readonly Item[], ctx: Context, maxBytes: number, a: BundleArgs): string {
  const rows = items.map(
    (i) =>
      `  ${i.path.padEnd(44)} up to ${humanBytes(Math.floor(maxBytes * i.share)).padStart(9)}` +
      `${i.keep === "tail" ? " (newest kept)" : ""}  ${i.source}`,
  );
  return (
    `agentctl bundle would collect (nothing is collected or written by --list):\n${rows.join("\n")}\n` +
    `  MANIFEST.txt: every item: collected, cut at N bytes, or missing and why\n\n` +
    `limits: the archive is at most ${humanBytes(maxBytes)} (${
      a.maxSize !== undefined ? "--max-size" : "bundle.max_bytes"
    }); contents are counted before compression; items are taken in the order above, each up to ` +
    `its share and the room left\n` +
    `output: ${a.output ? resolve(a.output) : "/var/tmp/stemedb-bundle-<host>-<time>.tar.gz"}, mode 0600, ` +
    `never overwriting an existing file\n` +
    `priority: gathered at nice 19 and I/O class idle (ionice -c 3)\n` +
    `who may take one: ${WHO}\n` +
    `redacted:\n${ctx.plan.redaction.map((r) => `  - ${r}\n`).join("")}`
  );
}

function manifest(
  lines: readonly ManifestLine[],
  ctx: Context,
  maxBytes: number,
  prio: string,
): string {
  const rows = lines.map((l) =>
    `${l.status.padEnd(9)} ${l.path.padEnd(44)} ${String(l.bytes).padStart(10)}  ${l.detail}`.slice(
      0,
      300,
    ),
  );
  return (
    `stemedb-agent diagnostic bundle\n` +
    `host: ${hostname()}\ncreated: ${new Date(ctx.now).toISOString()}\n` +
    `window: the last ${ctx.sinceText} (from ${new Date(ctx.now - ctx.since).toISOString()})\n` +
    `agent: ${ctx.status?.agent.version ?? "(status unavailable)"}\n` +
    `size cap: ${maxBytes} bytes (${humanBytes(maxBytes)}), contents counted before compression\n` +
    `gathered at: ${prio}\n` +
    `who may take one: ${WHO}\n` +
    `redacted:\n${ctx.plan.redaction.map((r) => `  - ${r}\n`).join("")}\n` +
    `status    path                                              bytes  source or reason\n` +
    `${rows.join("\n")}\n`
  );
}
