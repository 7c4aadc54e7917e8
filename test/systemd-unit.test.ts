// The unit file offline (systemd-analyze verify / security, no systemd needed), the notifier
// with a recording sender and the real sd_notify addon, and the shipped agent.toml against the embedded defaults.
import test from "ava";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadSender, SystemdNotifier } from "../agent/systemd/notify.js";
import { REPO_ROOT } from "./helpers/container.js";

const UNIT = join(REPO_ROOT, "systemd/stemedb-agent.service");
const ANALYZE = "/usr/bin/systemd-analyze";

test("systemd-analyze verify: clean (but for the agent binary when it is not installed here)", (t) => {
  if (!existsSync(ANALYZE))
    return t.pass("skipped: systemd-analyze missing (Debian package systemd)");
  const r = spawnSync(ANALYZE, ["verify", UNIT], { encoding: "utf8" });
  const lines = `${r.stdout}${r.stderr}`.split("\n").filter(Boolean);
  const missingBinary =
    /^stemedb-agent\.service: Command \/usr\/bin\/stemedb-agent is not executable: No such file or directory$/;
  const other = lines.filter(
    (l) => !(missingBinary.test(l) && !existsSync("/usr/bin/stemedb-agent")),
  );
  t.deepEqual(other, []);
  if (lines.length === 0) t.is(r.status, 0);
});

/** The checks that stay exposed, each deliberate (see the unit's comments). Anything new fails. */
const ACCEPTED = new Set([
  "User=/DynamicUser=", // root: PID 1's manage-units (freeze/thaw, transient failsafe timer) without polkit
  "PrivateNetwork=", // serves /metrics to Prometheus
  "RestrictAddressFamilies=~AF_(INET|INET6)", // same
  "RestrictAddressFamilies=~AF_UNIX", // control sockets, sd_notify, systemctl
  "IPAddressDeny=", // allow list has the private ranges (remote Prometheus)
  "CapabilityBoundingSet=~CAP_SYS_PTRACE", // other users' /proc/<pid>/io and fd (test/systemd-caps)
  "CapabilityBoundingSet=~CAP_(DAC_*|FOWNER|IPC_OWNER)", // DAC_READ_SEARCH: the same, and a 0700 WAL dir
  "DeviceAllow=", // ProtectClock's char-rtc only; the disks are smartctl's, in its own unit
  "ProcSubset=", // /proc/diskstats, /proc/sys
  "PrivateUsers=", // capabilities must act in the host's user namespace
  "MemoryDenyWriteExecute=", // V8's JIT
  "RootDirectory=/RootImage=", // runs the host's tools (smartctl, systemctl)
]);
/** The target the agent is held to (systemd 252's weights; issue 16: at most 2.0). */
const EXPOSURE_LIMIT = 2.0;
// --threshold takes tenths on systemd 252 (0-100): 20 means 2.0.

test("systemd-analyze security --offline: only the deliberate findings, exposure within the limit", (t) => {
  if (!existsSync(ANALYZE))
    return t.pass("skipped: systemd-analyze missing (Debian package systemd)");
  const r = spawnSync(
    ANALYZE,
    ["security", "--offline=true", `--threshold=${Math.round(EXPOSURE_LIMIT * 10)}`, UNIT],
    { encoding: "utf8" },
  );
  const score = Number(
    /Overall exposure level for stemedb-agent\.service: (\d+\.\d)/.exec(r.stdout)?.[1] ?? "NaN",
  );
  t.log(`exposure ${score}`);
  t.is(r.status, 0, `exposure ${score} above ${EXPOSURE_LIMIT}`);
  t.true(score <= EXPOSURE_LIMIT);
  const j = spawnSync(ANALYZE, ["security", "--offline=true", "--json=short", UNIT], {
    encoding: "utf8",
  });
  const checks = JSON.parse(j.stdout) as Array<{ name: string; exposure: number | null }>;
  const exposed = checks.filter((x) => x.exposure !== null && x.exposure > 0).map((x) => x.name);
  t.deepEqual(
    exposed.filter((n) => !ACCEPTED.has(n)),
    [],
  );
  t.true(exposed.length > 0, "no findings parsed");
});

type Sent = { address: string; message: string };

function recorder(results: number[] = []): {
  sender: (a: string, m: Buffer) => number;
  sent: Sent[];
} {
  const sent: Sent[] = [];
  return {
    sent,
    sender: (address, m) => (sent.push({ address, message: m.toString() }), results.shift() ?? 0),
  };
}

function memLog() {
  const lines: Array<{ level: string; msg: string; obj: object }> = [];
  const at = (level: string) => (obj: object, msg: string) => void lines.push({ level, msg, obj });
  return { lines, log: { warn: at("warn"), error: at("error"), debug: at("debug") } };
}

test("notifier: off without NOTIFY_SOCKET; watchdog interval is WATCHDOG_USEC/2, for our PID only", (t) => {
  const { sender } = recorder();
  t.false(new SystemdNotifier({ env: {} }).enabled);
  t.is(new SystemdNotifier({ env: {} }).watchdogIntervalMs, null);
  t.is(
    new SystemdNotifier({ env: { NOTIFY_SOCKET: "/x", WATCHDOG_USEC: "30000000" }, sender })
      .watchdogIntervalMs,
    15_000,
  );
  t.is(
    new SystemdNotifier({
      env: { NOTIFY_SOCKET: "/x", WATCHDOG_USEC: "30000000", WATCHDOG_PID: "1" },
      pid: 2,
      sender,
    }).watchdogIntervalMs,
    null,
  );
  t.is(
    new SystemdNotifier({
      env: { NOTIFY_SOCKET: "/x", WATCHDOG_USEC: "30000000", WATCHDOG_PID: "2" },
      pid: 2,
      sender,
    }).watchdogIntervalMs,
    15_000,
  );
});

test("notifier: one datagram per message, in order; pings at most once per interval", (t) => {
  const { sender, sent } = recorder();
  const sd = new SystemdNotifier({
    env: { NOTIFY_SOCKET: "@sock", WATCHDOG_USEC: "2000000" },
    sender,
  });
  sd.ready("starting done");
  t.true(sd.watchdog(0));
  t.false(sd.watchdog(500));
  t.false(sd.watchdog(999));
  sd.status("a\nb");
  t.true(sd.watchdog(1000));
  sd.reloading();
  sd.ready("reloaded");
  sd.stopping();
  t.deepEqual(
    sent.map((s) => s.message),
    [
      "READY=1\nSTATUS=starting done",
      "WATCHDOG=1",
      "STATUS=a b",
      "WATCHDOG=1",
      "RELOADING=1\nSTATUS=reloading configuration",
      "READY=1\nSTATUS=reloaded",
      "STOPPING=1\nSTATUS=stopping",
    ],
  );
  t.true(sent.every((s) => s.address === "@sock"));
  t.deepEqual(sd.counts, { sent: 7, failed: 0 });
});

test("notifier: a failed send is counted and logged once per distinct error, never thrown", (t) => {
  const { sender } = recorder([-111, -111, -111, 0, -11]);
  const { lines, log } = memLog();
  const sd = new SystemdNotifier({
    env: { NOTIFY_SOCKET: "/run/x", WATCHDOG_USEC: "1000000" },
    sender,
    log,
  });
  for (let i = 0; i < 5; i++) sd.watchdog(i * 1000);
  t.deepEqual(sd.counts, { sent: 1, failed: 4 });
  const warns = lines.filter((l) => l.level === "warn");
  t.deepEqual(
    warns.map((l) => (l.obj as { err: string }).err),
    ["ECONNREFUSED", "EAGAIN"],
  );
  const throwing = new SystemdNotifier({
    env: { NOTIFY_SOCKET: "/run/x" },
    sender: () => {
      throw new Error("boom");
    },
    log,
  });
  t.notThrows(() => throwing.ready());
  t.is(throwing.counts.failed, 1);
});

test("notifier: strips NOTIFY_SOCKET and WATCHDOG_* from process.env (children never see them)", (t) => {
  const saved = { ...process.env };
  t.teardown(() => {
    for (const k of ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]) delete process.env[k];
    Object.assign(process.env, saved);
  });
  Object.assign(process.env, {
    NOTIFY_SOCKET: "@strip",
    WATCHDOG_USEC: "4000000",
    WATCHDOG_PID: String(process.pid),
  });
  const sd = new SystemdNotifier({ sender: recorder().sender });
  t.true(sd.enabled);
  t.is(sd.watchdogIntervalMs, 2000);
  t.is(process.env["NOTIFY_SOCKET"], undefined);
  t.is(process.env["WATCHDOG_USEC"], undefined);
  t.is(process.env["WATCHDOG_PID"], undefined);
});

// A receiver like PID 1's: SO_PASSCRED, so each datagram carries the kernel's
// record of the sender's PID (what NotifyAccess=main checks).
const RECEIVER = `
import socket, struct, sys
a = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind("\\0" + a[1:] if a.startswith("@") else a)
print("ready", flush=True)
s.settimeout(10)
for _ in range(int(sys.argv[2])):
    m, anc, _f, _a = s.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = [struct.unpack("iII", d)[0] for l, t, d in anc if t == socket.SCM_CREDENTIALS]
    print(pid[0] if pid else -1, repr(m.decode()), flush=True)
`;

async function receive(address: string, n: number, send: () => void): Promise<string[]> {
  const py = spawn("/usr/bin/python3", ["-c", RECEIVER, address, String(n)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  py.stdout.on("data", (b: Buffer) => (out += b.toString()));
  const exited = new Promise<void>((r) => py.on("exit", () => r()));
  while (!out.startsWith("ready\n")) await new Promise((r) => setTimeout(r, 20));
  send();
  await exited;
  return out.split("\n").slice(1).filter(Boolean);
}

for (const kind of ["abstract", "path"] as const) {
  test(
    `the sd_notify addon: ${kind === "abstract" ? "an" : "a"} ${kind} NOTIFY_SOCKET receives each ` +
      `message with our PID as sender`,
    async (t) => {
      if (!existsSync("/usr/bin/python3"))
        return t.pass("skipped: no /usr/bin/python3 for the receiver");
      const address =
        kind === "abstract"
          ? `@stemedb-agent-test-${process.pid}`
          : join(mkdtempSync(join(tmpdir(), "sdn-")), "notify");
      const sd = new SystemdNotifier({ env: { NOTIFY_SOCKET: address, WATCHDOG_USEC: "2000000" } });
      const got = await receive(address, 3, () => {
        sd.ready("up");
        sd.watchdog(0);
        sd.stopping();
      });
      t.deepEqual(got, [
        `${process.pid} 'READY=1\\nSTATUS=up'`,
        `${process.pid} 'WATCHDOG=1'`,
        `${process.pid} 'STOPPING=1\\nSTATUS=stopping'`,
      ]);
      t.deepEqual(sd.counts, { sent: 3, failed: 0 });
    },
  );
}

test("the sd_notify addon: no receiver, relative or overlong address: an errno, never a throw", (t) => {
  const send = loadSender();
  t.is(send(`@stemedb-agent-none-${process.pid}`, Buffer.from("READY=1")), -111); // ECONNREFUSED
  t.is(send("/nonexistent/notify", Buffer.from("READY=1")), -2); // ENOENT
  t.is(send("relative", Buffer.from("READY=1")), -97); // EAFNOSUPPORT
  t.is(send(`/${"a".repeat(200)}`, Buffer.from("READY=1")), -36); // ENAMETOOLONG
  t.throws(() => (send as unknown as (a: unknown) => number)(1));
});

test("systemd/agent.toml: loads, equals the embedded defaults, documents every key", (t) => {
  const main = join(REPO_ROOT, "dist/agent/main.js");
  const file = join(REPO_ROOT, "systemd/agent.toml");
  const strip = (s: string) => s.split("\n").slice(1).join("\n");
  const shipped = spawnSync(process.execPath, [main, "--config", file, "--print-config"], {
    encoding: "utf8",
  });
  t.is(shipped.status, 0, shipped.stderr);
  const defaults = spawnSync(process.execPath, [main, "--config", "/dev/null", "--print-config"], {
    encoding: "utf8",
  });
  t.is(strip(shipped.stdout), strip(defaults.stdout));
  const text = readFileSync(file, "utf8").split("\n");
  for (const line of strip(defaults.stdout).split("\n")) {
    if (!/^[a-z0-9_]+ = /.test(line)) continue;
    const i = text.indexOf(`#${line}`);
    t.true(
      i > 0,
      `default not listed in systemd/agent.toml (regenerate: node dist/agent/systemd/config-doc.js > ` +
        `systemd/agent.toml): ${line}`,
    );
    t.regex(text[i - 1] ?? "", /^# \S/, `no comment for ${line}`);
  }
});
