// Helpers shared by the benches that run the real agent (footprint, soak): starting it on a
// temporary state dir, reading a process's CPU and RSS from /proc, a keep-alive /metrics client
// used identically against the agent and node_exporter, and small statistics.
import { type ChildProcess, spawn } from "node:child_process";
import {
  accessSync,
  constants,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Extra node flags for the agent under test, e.g. BENCH_AGENT_NODE_ARGS="--cpu-prof
 * --cpu-prof-dir=/tmp/prof" to profile it (NODE_OPTIONS refuses --cpu-prof).
 */
export function agentNodeArgs(): string[] {
  return (process.env["BENCH_AGENT_NODE_ARGS"] ?? "").split(/\s+/).filter(Boolean);
}

/**
 * The environment the agent gets under its unit: PATH and the unit's Environment= lines, not
 * this shell's (a shell may export e.g. NODE_EXTRA_CA_CERTS, which Node loads at start).
 */
export function unitEnvironment(): NodeJS.ProcessEnv {
  const unit = readFileSync(
    fileURLToPath(new URL("../../systemd/stemedb-agent.service", import.meta.url)),
    "utf8",
  );
  const env: NodeJS.ProcessEnv = { PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin" };
  for (const m of unit.matchAll(/^Environment=([A-Za-z_][A-Za-z0-9_]*)=(\S*)$/gm))
    env[m[1] as string] = m[2];
  return env;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const TICKS = 100; // sysconf(_SC_CLK_TCK) on Linux

/** utime+stime (all threads) in seconds and VmRSS in MB (10^6 bytes) of a live process. */
export function procSample(pid: number): { cpu: number; rssMB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpu = (Number(f[11]) + Number(f[12])) / TICKS;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return { cpu, rssMB: (Number(m?.[1] ?? 0) * 1024) / 1e6 };
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

export const round = (v: number, digits = 1) => Number(v.toFixed(digits));

/** Least-squares slope of y over x. */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += ((xs[i] as number) - mx) * ((ys[i] as number) - my);
    den += ((xs[i] as number) - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

export interface RunningAgent {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly root: string;
  readonly stateDir: string;
  readonly walDir: string;
  readonly socket: string;
  stop(): Promise<void>;
}

/** The loopback port of an agent's /metrics, read from its "started" log line on stdout. */
export function metricsPort(child: ChildProcess): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let buf = "";
    const onData = (b: Buffer) => {
      buf += b.toString();
      const m = /"metrics":"127\.0\.0\.1:(\d+)".*stemedb-agent started/.exec(buf);
      if (m) {
        child.stdout?.off("data", onData);
        resolve(Number(m[1]));
      }
      if (buf.length > 1e6) buf = buf.slice(-1e5);
    };
    child.stdout?.on("data", onData);
    child.once("exit", (code) => reject(new Error(`agent exited (${code}) before starting`)));
    setTimeout(() => reject(new Error("agent did not start within 60 s")), 60_000).unref();
  });
}

/**
 * The real agent on its embedded defaults, except the paths: a temporary state dir, control
 * socket and StemeDB data/WAL directory (so the fsync probe and the WAL collector do their real
 * work instead of reporting a missing directory, and no socket of another agent is touched).
 * Metrics on a loopback port picked by the kernel. `node`: the runtime it runs on (bench/runtimes).
 */
export async function startAgent(
  prefix: string,
  extraToml = "",
  node = process.execPath,
): Promise<RunningAgent> {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const stateDir = join(root, "state");
  const walDir = join(root, "db", "wal");
  mkdirSync(stateDir);
  mkdirSync(walDir, { recursive: true });
  for (let i = 1; i <= 8; i++)
    writeFileSync(
      join(walDir, `segment.${String(i).padStart(6, "0")}.wal`),
      Buffer.alloc(1 << 20, i),
    );
  const socket = join(root, "ctl.sock");
  const cfg = join(root, "agent.toml");
  writeFileSync(
    cfg,
    `[agent]\nlisten = "127.0.0.1:0"\nstate_dir = "${stateDir}"\ncontrol_socket = "${socket}"\n` +
      `[stemedb]\ndata_dir = "${join(root, "db")}"\n[wal]\ndir = "${walDir}"\n${extraToml}`,
  );
  const bin = fileURLToPath(new URL("../agent/main.js", import.meta.url));
  const child = spawn(node, [...agentNodeArgs(), bin, "--config", cfg], {
    env: unitEnvironment(),
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await metricsPort(child);
  child.stdout?.resume(); // keep draining its log so it never blocks on a full pipe
  return {
    child,
    pid: child.pid ?? 0,
    port,
    root,
    stateDir,
    walDir,
    socket,
    stop: async () => {
      if (child.exitCode !== null) return;
      const closed = new Promise((r) => child.once("close", r));
      child.kill("SIGTERM");
      await closed;
    },
  };
}

export const NODE_EXPORTER = "/usr/bin/prometheus-node-exporter";

/** node_exporter with only the diskstats and filesystem collectors, on a free loopback port. */
export async function startNodeExporter(): Promise<{
  child: ChildProcess;
  pid: number;
  port: number;
  stop(): Promise<void>;
} | null> {
  try {
    accessSync(NODE_EXPORTER, constants.X_OK);
  } catch {
    return null;
  }
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = 19100 + Math.floor(Math.random() * 800);
    const child = spawn(
      NODE_EXPORTER,
      [
        `--web.listen-address=127.0.0.1:${port}`,
        "--collector.disable-defaults",
        "--collector.diskstats",
        "--collector.filesystem",
      ],
      { stdio: "ignore" },
    );
    const client = new ScrapeClient(port);
    for (let i = 0; i < 50 && child.exitCode === null; i++) {
      try {
        await client.scrape(false);
        client.close();
        return {
          child,
          pid: child.pid ?? 0,
          port,
          stop: async () => {
            if (child.exitCode !== null) return;
            const closed = new Promise((r) => child.once("close", r));
            child.kill("SIGTERM");
            await closed;
          },
        };
      } catch {
        await sleep(100);
      }
    }
    client.close();
    child.kill("SIGKILL");
  }
  throw new Error("node_exporter did not start");
}

export interface Scrape {
  readonly ms: number;
  readonly bytes: number;
  readonly body: Buffer;
}

/**
 * One keep-alive connection, one request at a time, as Prometheus scrapes: the time is from
 * sending the request to the last byte of the body (not decompressed).
 */
export class ScrapeClient {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });

  constructor(
    private readonly port: number,
    private readonly path = "/metrics",
  ) {}

  scrape(gzip: boolean): Promise<Scrape> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      const headers: Record<string, string> = { accept: "text/plain;version=0.0.4;q=1,*/*;q=0.1" };
      if (gzip) headers["accept-encoding"] = "gzip";
      const req = request(
        { host: "127.0.0.1", port: this.port, path: this.path, agent: this.agent, headers },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", reject);
          res.on("end", () => {
            const body = Buffer.concat(chunks);
            if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}`));
            else resolve({ ms: performance.now() - t0, bytes: body.length, body });
          });
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error("scrape timed out")));
      req.on("error", reject);
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** The value of one sample line (`name{labels} value`) in Prometheus text, or null. */
export function metricValue(text: string, nameAndLabels: string): number | null {
  const i = text.indexOf(`\n${nameAndLabels} `);
  if (i < 0) return null;
  const end = text.indexOf("\n", i + 1);
  return Number(text.slice(i + nameAndLabels.length + 2, end < 0 ? undefined : end));
}

/** A GET on the agent's control socket (what `agentctl status` asks), in ms. */
export function controlGet(socket: string, path: string): Promise<{ ms: number; status: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request({ socketPath: socket, path, headers: { host: "agent" } }, (res) => {
      res.resume();
      res.on("end", () => resolve({ ms: performance.now() - t0, status: res.statusCode ?? 0 }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error("control request timed out")));
    req.on("error", reject);
    req.end();
  });
}

/** The agent's event-loop delay (p99 and max, ms) in its last closed 10 s window, from /metrics. */
export async function loopDelay(port: number): Promise<{ p99: number; max: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const v = (k: string) =>
    Number(
      new RegExp(`stemedb_agent_event_loop_delay_seconds\\{stat="${k}"\\} (\\S+)`).exec(
        text,
      )?.[1] ?? NaN,
    ) * 1000;
  return { p99: v("p99"), max: v("max") };
}

/** `--name N` from the command line as a number, or the default when the flag is absent. */
export function numberArg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
