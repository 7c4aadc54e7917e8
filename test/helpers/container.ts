// A real systemd 252 as PID 1, booted from the host's own OS by systemd-nspawn (volatile root,
// the host's /usr read-only), for tests of what the agent does through systemctl and of its unit.
// Recipe: systemd-nspawn --directory=/ --volatile=yes, a preset 'disable *' so only what a test
// starts runs, booted once per test file.
import { type ChildProcess, spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The checkout this test runs from (dist/test/helpers -> repo root). */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url)).replace(/\/$/, "");

/** The node running the tests: units and commands inside a container use it too, not the host's. */
export const NODE = process.execPath;

/**
 * The pinned runtimes' cache (scripts/node-runtime.sh: <cache>/node/<version>/bin/node, with an
 * .integrity file) when the tests run on one of them, else null. Containers get it read-only at
 * the same path, so NODE runs inside and scripts/install.sh finds the shipped line offline.
 */
export function runtimeCache(): string | null {
  const runtime = dirname(dirname(NODE));
  return existsSync(join(runtime, ".integrity")) ? dirname(runtime) : null;
}

export interface ContainerOptions {
  readonly name: string;
  /** cgroup v2 inside (freezing works). false: the host's hybrid layout, where freezing is unsupported. */
  readonly unified?: boolean;
  /** host path -> container path, read-write. */
  readonly bind?: Readonly<Record<string, string>>;
  /** host path -> container path, read-only. The checkout is always bound read-only at its own path. */
  readonly bindRo?: Readonly<Record<string, string>>;
  readonly bootTimeoutMs?: number;
}

export interface Container {
  readonly name: string;
  /** PID (host view) of the container's systemd. */
  readonly pid: number;
  readonly unified: boolean;
  /** Runs a command inside every namespace of the container. */
  exec(
    cmd: string,
    args?: readonly string[],
    opts?: { input?: string; timeoutMs?: number },
  ): SpawnSyncReturns<string>;
  /** Runs a shell script inside; throws with its output when it fails. */
  sh(script: string, timeoutMs?: number): string;
  /** Writes a file inside the container's (volatile) root. */
  writeFile(path: string, content: string, mode?: number): void;
  readFile(path: string): string;
  /** `systemctl show -p ... --value`-free: the properties of a unit as a map. */
  show(unit: string, props: readonly string[]): Record<string, string>;
  /** Polls until pred() is true; rejects with `what` after timeoutMs. */
  waitFor(what: string, pred: () => boolean, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Why a container cannot be booted here, or null when it can be tried. */
export function containerUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "needs root to boot systemd-nspawn";
  if (!existsSync("/usr/bin/systemd-nspawn"))
    return "systemd-nspawn missing (Debian package systemd-container; npm test installs it as root)";
  return null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The volatile root's /etc starts empty, so first boot enables every installed unit by preset:
// a CI host's PostgreSQL, Docker or Prometheus would boot in each container, slow it under
// load and fail there. Tests start what they need explicitly; nothing else is enabled.
function presetFile(): string {
  const p = join(tmpdir(), "stemedb-agent-test-disable-all.preset");
  if (!existsSync(p))
    writeFileSync(
      p,
      "# stemedb-agent tests: only what a test starts runs in its container\ndisable *\n",
    );
  return p;
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

/** The container's PID 1 (host view) among systemd-nspawn's children, or 0 while it is not running yet. */
function initOf(nspawnPid: number): number {
  if (nspawnPid <= 0) return 0;
  const kids = spawnSync("pgrep", ["-P", String(nspawnPid)], { encoding: "utf8" })
    .stdout.trim()
    .split("\n")
    .filter(Boolean);
  return Number(kids.find((k) => comm(Number(k)) === "systemd") ?? 0);
}

export async function bootContainer(opts: ContainerOptions): Promise<Container> {
  const unified = opts.unified ?? true;
  const args = [
    "--quiet",
    "--keep-unit",
    "--register=no",
    "--directory=/",
    "--volatile=yes",
    `--machine=${opts.name}`,
    "--private-network",
    `--bind-ro=${REPO_ROOT}`,
  ];
  const runtimes = runtimeCache();
  if (runtimes !== null) args.push(`--bind-ro=${runtimes}`);
  for (const [h, c] of Object.entries(opts.bindRo ?? {})) args.push(`--bind-ro=${h}:${c}`);
  for (const [h, c] of Object.entries(opts.bind ?? {})) args.push(`--bind=${h}:${c}`);
  args.push(`--bind-ro=${presetFile()}:/etc/systemd/system-preset/00-stemedb-agent-test.preset`);
  args.push("--boot", "systemd.firstboot=off", "systemd.unit=multi-user.target");
  const env = { ...process.env };
  if (unified) env["SYSTEMD_NSPAWN_UNIFIED_HIERARCHY"] = "1";
  else delete env["SYSTEMD_NSPAWN_UNIFIED_HIERARCHY"];
  const nspawn: ChildProcess = spawn("systemd-nspawn", args, {
    env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  nspawn.stdout?.on("data", (b: Buffer) => (out = (out + b.toString()).slice(-8000)));
  nspawn.stderr?.on("data", (b: Buffer) => (out = (out + b.toString()).slice(-8000)));
  let exited = false;
  nspawn.once("exit", () => (exited = true));

  const deadline = Date.now() + (opts.bootTimeoutMs ?? 120_000);
  // SIGKILL to the container's init ends every process in its PID namespace (a writer left
  // running would load the machine for later tests); then systemd-nspawn itself.
  let pid = 0;
  let state = "not seen";
  const kill = () => {
    for (const p of [pid, nspawn.pid ?? 0]) {
      try {
        if (p > 0) process.kill(p, "SIGKILL");
      } catch {
        // gone
      }
    }
  };
  while (Date.now() < deadline && !exited) {
    // systemd-nspawn's first child is an "outer child" that sets up and exits once the
    // container's init runs; caught early it would be entered forever (a boot "never seen").
    // So: the child whose command is systemd, looked up again until it is found.
    if (pid === 0 || comm(pid) !== "systemd") pid = initOf(nspawn.pid ?? 0);
    if (pid > 0) {
      const r = spawnSync("nsenter", ["-t", String(pid), "-a", "systemctl", "is-system-running"], {
        encoding: "utf8",
        timeout: 5000,
      });
      state = `${r.stdout}${r.stderr}`.trim() || `nsenter exit ${r.status} ${r.signal ?? ""}`;
      if (state === "running" || state === "degraded") break;
      // Reached the target but a straggler's job is still queued: as good as booted for a test.
      if (
        state === "starting" &&
        spawnSync(
          "nsenter",
          ["-t", String(pid), "-a", "systemctl", "is-active", "multi-user.target"],
          { encoding: "utf8", timeout: 5000 },
        ).stdout.trim() === "active"
      )
        break;
    }
    await sleep(250);
  }
  if (exited || pid === 0 || Date.now() >= deadline) {
    kill();
    throw new Error(
      `container ${opts.name} did not boot (init ${pid || "not found"}, is-system-running: ${state}): ` +
        `${out.slice(-2000)}`,
    );
  }

  const exec: Container["exec"] = (cmd, a = [], o = {}) =>
    spawnSync("nsenter", ["-t", String(pid), "-a", cmd, ...a], {
      encoding: "utf8",
      timeout: o.timeoutMs ?? 30_000,
      ...(o.input === undefined ? {} : { input: o.input }),
    });
  const root = `/proc/${pid}/root`;
  const c: Container = {
    name: opts.name,
    pid,
    unified,
    exec,
    sh(script, timeoutMs) {
      const r = exec("/bin/sh", ["-c", script], timeoutMs === undefined ? {} : { timeoutMs });
      if (r.status !== 0)
        throw new Error(
          `in ${opts.name}: ${script}\n-> exit ${r.status} ${r.signal ?? ""}\n${r.stdout}${r.stderr}`,
        );
      return r.stdout;
    },
    writeFile(path, content, mode = 0o644) {
      mkdirSync(dirname(`${root}${path}`), { recursive: true });
      writeFileSync(`${root}${path}`, content, { mode });
    },
    readFile(path) {
      return readFileSync(`${root}${path}`, "utf8");
    },
    show(unit, props) {
      const r = exec("systemctl", ["show", unit, ...props.map((p) => `--property=${p}`)]);
      const m: Record<string, string> = {};
      for (const line of r.stdout.split("\n")) {
        const i = line.indexOf("=");
        if (i > 0) m[line.slice(0, i)] = line.slice(i + 1);
      }
      return m;
    },
    async waitFor(what, pred, timeoutMs = 30_000) {
      const end = Date.now() + timeoutMs;
      while (Date.now() < end) {
        if (pred()) return;
        await sleep(250);
      }
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    },
    async stop() {
      if (exited) return;
      spawnSync("nsenter", ["-t", String(pid), "-a", "systemctl", "poweroff", "--no-block"], {
        timeout: 5000,
      });
      const end = Date.now() + 15_000;
      while (!exited && Date.now() < end) await sleep(100);
      if (!exited) kill();
    },
  };
  return c;
}
