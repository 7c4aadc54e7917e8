// Runs the real stemedb-agent binary against a temporary state dir, socket and config.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const AGENT_BIN = fileURLToPath(new URL("../../agent/main.js", import.meta.url));
export const AGENTCTL_BIN = fileURLToPath(new URL("../../agentctl.cjs", import.meta.url));

export function tempDir(prefix = "sa-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface StartOptions {
  /** TOML appended after the [agent] table this helper writes. */
  readonly extraToml?: string;
  /** agent.control_socket; default <dir>/ctl.sock. */
  readonly socket?: string;
  /** Lines inside [agent], e.g. 'log_level = "debug"'. */
  readonly agentToml?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly dir?: string;
  /** The config file's mode (default: as the umask leaves it). */
  readonly configMode?: number;
}

export interface RunningAgent {
  readonly proc: ChildProcess;
  readonly dir: string;
  readonly configFile: string;
  readonly stateDir: string;
  readonly socket: string;
  readonly port: number;
  readonly url: string;
  /** Every JSON log line so far. */
  readonly logs: Array<Record<string, unknown>>;
  readonly stderr: string[];
  /** Sends `signal` and resolves with the exit, or rejects after `timeoutMs`. */
  stop(
    signal?: NodeJS.Signals,
    timeoutMs?: number,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
  waitForLog(
    predicate: (l: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
}

/** Collectors that read this host are off unless a test enables them. */
export const QUIET_COLLECTORS = [
  "diskstats",
  "fsync_probe",
  "smart",
  "mounts",
  "kmsg",
  "wal",
  "procio",
  "process",
  "netstat",
  "errcounters",
  "stalls",
]
  .map((n) => `[collectors.${n}]\nenabled = false\n`)
  .join("");

export function writeConfig(dir: string, opts: StartOptions = {}): string {
  const file = join(dir, "agent.toml");
  writeFileSync(
    file,
    `[agent]\nlisten = "127.0.0.1:0"\nstate_dir = "${join(dir, "state")}"\n` +
      `control_socket = "${opts.socket ?? join(dir, "ctl.sock")}"\nlog_level = "debug"\n` +
      `${opts.agentToml ?? ""}\n${opts.extraToml ?? ""}`,
  );
  if (opts.configMode !== undefined) chmodSync(file, opts.configMode);
  return file;
}

export async function startAgent(opts: StartOptions = {}): Promise<RunningAgent> {
  const dir = opts.dir ?? tempDir().dir;
  const configFile = writeConfig(dir, opts);
  const proc = spawn(process.execPath, [AGENT_BIN, "--config", configFile], {
    env: { ...process.env, STEMEDB_AGENT_LISTEN: "", STEMEDB_AGENT_STATE_DIR: "", ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Array<Record<string, unknown>> = [];
  const stderr: string[] = [];
  const waiters: Array<{
    pred: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }> = [];
  let buf = "";
  proc.stdout.on("data", (b: Buffer) => {
    buf += b.toString("utf8");
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        const rec = JSON.parse(line) as Record<string, unknown>;
        logs.push(rec);
        for (const w of [...waiters]) {
          if (w.pred(rec)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(rec);
          }
        }
      } catch {
        stderr.push(`(non-JSON stdout) ${line}`);
      }
    }
  });
  proc.stderr.on("data", (b: Buffer) => stderr.push(b.toString("utf8")));
  // "close", not "exit": only then has every line the agent wrote reached us.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once("close", (code, signal) => resolve({ code, signal })),
  );

  const waitForLog = (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 15_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const found = logs.find(pred);
      if (found) return resolve(found);
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `log line not seen within ${timeoutMs} ms; stderr: ${stderr.join("")}; logs: ` +
                `${logs.map((l) => l["msg"]).join(" | ")}`,
            ),
          ),
        timeoutMs,
      );
      waiters.push({ pred, resolve: (l) => (clearTimeout(timer), resolve(l)) });
      void exited.then(({ code }) =>
        reject(new Error(`agent exited (${code}) before the log line; stderr: ${stderr.join("")}`)),
      );
    });

  const started = await waitForLog((l) => l["msg"] === "stemedb-agent started");
  const metrics = String(started["metrics"]);
  const port = Number(metrics.slice(metrics.lastIndexOf(":") + 1));
  return {
    proc,
    dir,
    configFile,
    logs,
    stderr,
    port,
    waitForLog,
    stateDir: join(dir, "state"),
    socket: String(started["control_socket"]),
    url: `http://127.0.0.1:${port}`,
    async stop(signal = "SIGTERM", timeoutMs = 10_000) {
      const t0 = performance.now();
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const res = await Promise.race([
        exited,
        new Promise<never>(
          (_, reject) =>
            (timer = setTimeout(() => {
              proc.kill("SIGKILL");
              reject(new Error(`agent did not exit within ${timeoutMs} ms`));
            }, timeoutMs)),
        ),
      ]);
      clearTimeout(timer);
      return { ...res, ms: performance.now() - t0 };
    },
  };
}

export interface CtlResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function agentctl(args: readonly string[], env: NodeJS.ProcessEnv = {}): CtlResult {
  const r = spawnSync(process.execPath, [AGENTCTL_BIN, ...args], {
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: 20_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the agent binary to completion (for --once, --print-config, config errors). */
export function agentOnce(args: readonly string[], env: NodeJS.ProcessEnv = {}): CtlResult {
  const r = spawnSync(process.execPath, [AGENT_BIN, ...args], {
    env: { ...process.env, STEMEDB_AGENT_LISTEN: "", STEMEDB_AGENT_STATE_DIR: "", ...env },
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

export function hasCommand(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" }).status === 0;
}

export async function fetchText(
  url: string,
  init?: RequestInit,
): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(url, init);
  return { status: res.status, text: await res.text(), headers: res.headers };
}
