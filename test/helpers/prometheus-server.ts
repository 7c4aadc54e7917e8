// A real Prometheus server (Debian package `prometheus`) on loopback for end-to-end tests:
// a random free port, a temporary storage directory, a short scrape interval.
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { sleep } from "./quiet.js";

export const PROMETHEUS_BIN = "/usr/bin/prometheus";

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

export interface PrometheusServer {
  readonly url: string;
  readonly proc: ChildProcess;
  readonly output: string[];
  /** GET /api/v1/<path> with query parameters; throws on a non-JSON answer. */
  api<T = unknown>(
    path: string,
    params?: Record<string, string>,
  ): Promise<{ status: string; data: T; error?: string; errorType?: string }>;
  /** An instant query's vector result. */
  query(expr: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  /** host:port of each target of the job `job`. */
  readonly targets: readonly string[];
  readonly job?: string;
  readonly scrapeInterval?: string;
  /** Absolute paths of rule files to load. */
  readonly ruleFiles?: readonly string[];
  /** A remote_write endpoint (the bench's sink). */
  readonly remoteWriteUrl?: string;
}

export async function startPrometheus(
  dir: string,
  opts: PrometheusOptions,
): Promise<PrometheusServer> {
  const interval = opts.scrapeInterval ?? "1s";
  const cfg = join(dir, "prometheus.yml");
  writeFileSync(
    cfg,
    [
      "global:",
      `  scrape_interval: ${interval}`,
      `  evaluation_interval: ${interval}`,
      ...(opts.ruleFiles?.length
        ? ["rule_files:", ...opts.ruleFiles.map((f) => `  - ${JSON.stringify(f)}`)]
        : []),
      ...(opts.remoteWriteUrl
        ? ["remote_write:", `  - url: ${JSON.stringify(opts.remoteWriteUrl)}`]
        : []),
      "scrape_configs:",
      `  - job_name: ${JSON.stringify(opts.job ?? "stemedb-agent")}`,
      "    static_configs:",
      `      - targets: [${opts.targets.map((t) => JSON.stringify(t)).join(", ")}]`,
      "",
    ].join("\n"),
  );
  const output: string[] = [];
  // The port is free a moment ago; another process taking it in between makes Prometheus exit,
  // and we try again with a new one.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const proc = spawn(
      PROMETHEUS_BIN,
      [
        `--config.file=${cfg}`,
        `--storage.tsdb.path=${join(dir, "tsdb")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--storage.tsdb.retention.time=1h",
        "--log.level=warn",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    proc.stdout.on("data", (b: Buffer) => output.push(b.toString("utf8")));
    proc.stderr.on("data", (b: Buffer) => output.push(b.toString("utf8")));
    const exited = new Promise<void>((resolve) => proc.once("close", () => resolve()));
    const url = `http://127.0.0.1:${port}`;
    let ready = false;
    for (let i = 0; i < 200 && proc.exitCode === null; i++) {
      try {
        if ((await fetch(`${url}/-/ready`)).status === 200) {
          ready = true;
          break;
        }
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    if (!ready) {
      proc.kill("SIGKILL");
      await exited;
      continue;
    }
    const api = async <T>(path: string, params: Record<string, string> = {}) => {
      const res = await fetch(`${url}/api/v1/${path}?${new URLSearchParams(params).toString()}`);
      return (await res.json()) as { status: string; data: T; error?: string; errorType?: string };
    };
    return {
      url,
      proc,
      output,
      api,
      async query(expr) {
        const r = await api<{
          resultType: string;
          result: Array<{ metric: Record<string, string>; value: [number, string] }>;
        }>("query", { query: expr });
        if (r.status !== "success")
          throw new Error(`query ${expr}: ${r.errorType ?? ""} ${r.error ?? ""}`);
        return r.data.result;
      },
      async stop() {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
        const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      },
    };
  }
  throw new Error(`prometheus did not become ready: ${output.join("")}`);
}

/** Polls `fn` until it returns a value that is not undefined, or throws after `timeoutMs` with `what`. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 60_000,
  everyMs = 500,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(
    `${what}: not seen within ${timeoutMs} ms${last instanceof Error ? ` (last error: ${last.message})` : ""}`,
  );
}
