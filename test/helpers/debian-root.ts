// A minimal Debian 12 root with systemd and nothing else (no Node.js): where the Debian package is
// installed the way an operator would, booted with systemd-nspawn as test/helpers/container.ts
// boots the host's OS. Built once with debootstrap (variant minbase, from the mirror the host's
// apt uses) and cached under /var/cache/stemedb-agent-dev/debian-root/; each boot runs on an
// overlay (--volatile=overlay), so the cached root is never changed.
import { type ChildProcess, spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";

const CACHE = process.env["STEMEDB_AGENT_DEV_CACHE"] ?? "/var/cache/stemedb-agent-dev";
const SUITE = "bookworm";
/** What the package depends on (its Depends: line), so installing it needs no network. */
export const ROOT_PACKAGES = [
  "systemd",
  "systemd-sysv",
  "init-system-helpers",
  "libatomic1",
  "libstdc++6",
  "libgcc-s1",
  "procps",
  // The package's Recommends: `systemctl freeze` (backup_pause) needs the system bus.
  "dbus",
];

/** Why a Debian root cannot be built or booted here, or null. */
export function debianRootUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "needs root (debootstrap, systemd-nspawn)";
  for (const [tool, pkg] of [
    ["/usr/sbin/debootstrap", "debootstrap"],
    ["/usr/bin/systemd-nspawn", "systemd-container"],
    ["/usr/bin/dpkg-deb", "dpkg"],
    ["/usr/bin/dpkg-shlibdeps", "dpkg-dev"],
  ] as const)
    if (!existsSync(tool))
      return `${tool} missing (Debian package ${pkg}; npm test installs it as root)`;
  return null;
}

/** The Debian mirror the host's apt uses for this suite (deb822 .sources or sources.list). */
export function hostMirror(): string {
  const texts: string[] = [];
  for (const dir of ["/etc/apt/sources.list.d"]) {
    try {
      for (const f of readdirSync(dir))
        if (f.endsWith(".sources") || f.endsWith(".list"))
          texts.push(readFileSync(join(dir, f), "utf8"));
    } catch {
      // none
    }
  }
  try {
    texts.push(readFileSync("/etc/apt/sources.list", "utf8"));
  } catch {
    // none
  }
  for (const t of texts) {
    for (const stanza of t.split(/\n\s*\n/)) {
      const uri = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
      const suites = /^Suites:\s*(.+)$/m.exec(stanza)?.[1]?.split(/\s+/) ?? [];
      if (uri !== undefined && suites.includes(SUITE)) return uri;
    }
    const m = new RegExp(`^deb\\s+(?:\\[[^\\]]*\\]\\s+)?(\\S+)\\s+${SUITE}\\s`, "m").exec(t);
    if (m?.[1] !== undefined) return m[1];
  }
  throw new Error(`no apt source for ${SUITE} on this host`);
}

/** The cached root, built first when missing (a few minutes, once). Returns its path. */
export function debianRoot(): string {
  const dir = join(CACHE, "debian-root", `${SUITE}-minbase-${ROOT_PACKAGES.length}`);
  const stamp = join(dir, ".stemedb-agent-packages");
  if (existsSync(stamp) && readFileSync(stamp, "utf8") === ROOT_PACKAGES.join(",")) return dir;
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const r = spawnSync(
    "debootstrap",
    ["--variant=minbase", `--include=${ROOT_PACKAGES.join(",")}`, SUITE, tmp, hostMirror()],
    { encoding: "utf8", timeout: 1_200_000 },
  );
  if (r.status !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`debootstrap failed (${r.status}): ${(r.stdout + r.stderr).slice(-2000)}`);
  }
  // Only what a test starts runs (as in container.ts), and no machine-id yet: a fresh one per boot.
  spawnSync("sh", [
    "-c",
    `printf 'disable *\\n' > ${tmp}/etc/systemd/system-preset/00-stemedb-agent-test.preset && ` +
      `rm -f ${tmp}/etc/machine-id && apt-get -o Dir=${tmp} clean`,
  ]);
  spawnSync("sh", [
    "-c",
    `printf '%s' '${ROOT_PACKAGES.join(",")}' > ${tmp}/.stemedb-agent-packages`,
  ]);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return dir;
}

export interface DebianMachine {
  readonly pid: number;
  exec(cmd: string, args?: readonly string[], timeoutMs?: number): SpawnSyncReturns<string>;
  /** Runs a shell script inside; throws with its output when it fails. */
  sh(script: string, timeoutMs?: number): string;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

/** Boots the cached root (overlay: changes vanish at stop). bindRo: host path -> path inside. */
export async function bootDebianRoot(
  name: string,
  bindRo: Readonly<Record<string, string>> = {},
): Promise<DebianMachine> {
  const root = debianRoot();
  const args = [
    "--quiet",
    "--keep-unit",
    "--register=no",
    `--directory=${root}`,
    "--volatile=overlay",
    `--machine=${name}`,
    "--private-network",
    ...Object.entries(bindRo).map(([h, c]) => `--bind-ro=${h}:${c}`),
    "--boot",
    "systemd.firstboot=off",
    "systemd.unit=multi-user.target",
  ];
  const nspawn: ChildProcess = spawn("systemd-nspawn", args, {
    env: { ...process.env, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: "1" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  nspawn.stdout?.on("data", (b: Buffer) => (out = (out + b.toString()).slice(-8000)));
  nspawn.stderr?.on("data", (b: Buffer) => (out = (out + b.toString()).slice(-8000)));
  let exited = false;
  nspawn.once("exit", () => (exited = true));
  let pid = 0;
  let state = "not seen";
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline && !exited) {
    if (pid === 0 || comm(pid) !== "systemd") {
      const kids = spawnSync("pgrep", ["-P", String(nspawn.pid ?? 0)], { encoding: "utf8" })
        .stdout.trim()
        .split("\n")
        .filter(Boolean);
      pid = Number(kids.find((k) => comm(Number(k)) === "systemd") ?? 0);
    }
    if (pid > 0) {
      const r = spawnSync("nsenter", ["-t", String(pid), "-a", "systemctl", "is-system-running"], {
        encoding: "utf8",
        timeout: 5000,
      });
      state = `${r.stdout}${r.stderr}`.trim();
      if (state === "running" || state === "degraded") break;
    }
    await sleep(250);
  }
  const kill = () => {
    for (const p of [pid, nspawn.pid ?? 0])
      try {
        if (p > 0) process.kill(p, "SIGKILL");
      } catch {
        // gone
      }
  };
  if (exited || pid === 0 || Date.now() >= deadline) {
    kill();
    throw new Error(`${name} did not boot (is-system-running: ${state}): ${out.slice(-2000)}`);
  }
  // A clean environment inside: nothing of the test runner's (its PATH holds a Node.js).
  const env = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    LANG: "C.UTF-8",
    DEBIAN_FRONTEND: "noninteractive",
  };
  const exec: DebianMachine["exec"] = (cmd, a = [], timeoutMs = 60_000) =>
    spawnSync("nsenter", ["-t", String(pid), "-a", cmd, ...a], {
      encoding: "utf8",
      timeout: timeoutMs,
      env,
    });
  return {
    pid,
    exec,
    sh(script, timeoutMs) {
      const r = exec("/bin/sh", ["-c", script], timeoutMs);
      if (r.status !== 0)
        throw new Error(
          `in ${name}: ${script}\n-> exit ${r.status} ${r.signal ?? ""}\n${r.stdout}${r.stderr}`,
        );
      return r.stdout;
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
}
