// sd_notify(3) for the agent: READY=1, STATUS=, WATCHDOG=1, RELOADING=1, STOPPING=1.
//
// Why a subprocess: Node core cannot send a unix datagram (dgram knows only udp4/udp6, net only
// streams), and the notify socket is SOCK_DGRAM. The native addons (npm sd-notify, unix-dgram)
// need a C++ toolchain and libsystemd-dev at install time and a rebuild for every Node major;
// a failed build of the optional one silently sends nothing. systemd ships `systemd-notify`, so
// each message is one `systemd-notify` run (11-22 ms measured; see ../shared/notes/disk-systemd.md
// 5.1). systemd-notify puts its parent's PID (ours) in SCM_CREDENTIALS, which the kernel accepts
// only from a process with CAP_SYS_ADMIN; without it, it falls back to its own PID.
//  - With CAP_SYS_ADMIN (the shipped unit keeps it): the message comes from the main PID, so the
//    unit can say NotifyAccess=main, and we pass --no-block: no BARRIER=1 round trip is needed
//    since PID 1 attributes the message to our live PID, not to the exiting systemd-notify.
//  - Without it (a drop-in removed it, or a non-root variant): systemd-notify sends as itself and
//    waits on a BARRIER=1 until PID 1 has processed the message (so PID 1 can still attribute it
//    after systemd-notify exits); the unit must then say NotifyAccess=all.
//
// Rules that keep it cheap and safe:
//  - at most one systemd-notify runs at a time; later messages queue (bounded) and STATUS/WATCHDOG
//    messages are merged, so a hung systemd-notify never piles up processes;
//  - a run is killed (SIGKILL) after `timeoutMs`; the next WATCHDOG=1 is tried on a later tick;
//  - WATCHDOG=1 at most once per WATCHDOG_USEC/2, driven by the core loop's tick, so a wedged event
//    loop stops the pings and systemd restarts the agent;
//  - NOTIFY_SOCKET and WATCHDOG_* are taken out of process.env, so smartctl, systemctl and other
//    children cannot talk to the notify socket; only systemd-notify gets them back explicitly.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";

export const SYSTEMD_NOTIFY = "/usr/bin/systemd-notify";

export interface NotifyLog {
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface NotifierOptions {
  /** Environment to read NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID from (default process.env, which is then cleaned). */
  readonly env?: NodeJS.ProcessEnv;
  readonly binary?: string;
  /** A systemd-notify run is killed after this long (ms). */
  readonly timeoutMs?: number;
  readonly log?: NotifyLog;
  readonly pid?: number;
  /** Pass --no-block (the sender is our PID, see above). Default: whether we hold CAP_SYS_ADMIN. */
  readonly noBlock?: boolean;
}

const CAP_SYS_ADMIN = 21n;

/** Whether this process has CAP_SYS_ADMIN in its effective set (root children then get it too). */
export function hasCapSysAdmin(statusFile = "/proc/self/status"): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync(statusFile, "utf8"));
    return m?.[1] !== undefined && ((BigInt(`0x${m[1]}`) >> CAP_SYS_ADMIN) & 1n) === 1n && process.getuid?.() === 0;
  } catch {
    return false;
  }
}

/** Bounded queue: beyond this, the oldest merged STATUS/WATCHDOG-only message is dropped. */
const MAX_QUEUE = 8;
const MERGEABLE = new Set(["STATUS", "WATCHDOG"]);

type Message = Map<string, string>;

const mergeable = (m: Message) => [...m.keys()].every((k) => MERGEABLE.has(k));

/** One line, bounded: systemctl status shows the first line only. */
export function statusLine(s: string): string {
  const one = s.replace(/[\r\n]+/g, " ").trim();
  return one.length > 200 ? `${one.slice(0, 199)}…` : one;
}

export class SystemdNotifier {
  /** NOTIFY_SOCKET was set: we run under systemd (Type=notify). */
  readonly enabled: boolean;
  /** How often WATCHDOG=1 is sent (WATCHDOG_USEC/2), or null when no watchdog applies to us. */
  readonly watchdogIntervalMs: number | null;
  private readonly socket: string;
  private readonly binary: string;
  /** --no-block: messages are sent with our PID (CAP_SYS_ADMIN), no barrier. */
  readonly noBlock: boolean;
  private readonly timeoutMs: number;
  private readonly log: NotifyLog | undefined;
  private readonly queue: Message[] = [];
  private inFlight: Promise<void> | null = null;
  private lastPing = -Infinity;
  /** Runs and their outcomes, for tests and logs. */
  readonly counts = { started: 0, sent: 0, failed: 0, dropped: 0 };

  constructor(opts: NotifierOptions = {}) {
    const env = opts.env ?? process.env;
    this.socket = env["NOTIFY_SOCKET"] ?? "";
    this.enabled = this.socket !== "";
    this.binary = opts.binary ?? SYSTEMD_NOTIFY;
    this.noBlock = opts.noBlock ?? (this.enabled && hasCapSysAdmin());
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.log = opts.log;
    const usec = Number(env["WATCHDOG_USEC"] ?? "");
    const wpid = env["WATCHDOG_PID"];
    const forUs = wpid === undefined || wpid === "" || Number(wpid) === (opts.pid ?? process.pid);
    this.watchdogIntervalMs = this.enabled && forUs && Number.isFinite(usec) && usec > 0 ? Math.max(500, Math.floor(usec / 2000)) : null;
    if (opts.env === undefined) {
      for (const k of ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]) delete process.env[k];
    }
  }

  /** READY=1 (start-up done, or a reload finished), with a status line. */
  ready(status?: string): void {
    this.send([["READY", "1"], ...(status === undefined ? [] : ([["STATUS", statusLine(status)]] as const))]);
  }

  status(text: string): void {
    this.send([["STATUS", statusLine(text)]]);
  }

  reloading(): void {
    this.send([["RELOADING", "1"], ["STATUS", "reloading configuration"]]);
  }

  stopping(): void {
    this.send([["STOPPING", "1"], ["STATUS", "stopping"]]);
  }

  /** Called from the core loop's tick: pings at most once per WATCHDOG_USEC/2. Returns whether it pinged. */
  watchdog(nowMs: number): boolean {
    if (this.watchdogIntervalMs === null) return false;
    if (nowMs - this.lastPing < this.watchdogIntervalMs && nowMs >= this.lastPing) return false;
    this.lastPing = nowMs;
    this.send([["WATCHDOG", "1"]]);
    return true;
  }

  /** Waits (bounded) for queued messages, e.g. STOPPING=1 before exit. */
  async drain(maxMs = 1000): Promise<void> {
    const end = Date.now() + maxMs;
    while ((this.inFlight !== null || this.queue.length > 0) && Date.now() < end) {
      await Promise.race([this.inFlight ?? Promise.resolve(), new Promise((r) => setTimeout(r, Math.max(1, end - Date.now())).unref())]);
    }
  }

  /** Whether a systemd-notify is running right now. */
  busy(): boolean {
    return this.inFlight !== null;
  }

  private send(fields: ReadonlyArray<readonly [string, string]>): void {
    if (!this.enabled) return;
    const msg: Message = new Map(fields);
    const last = this.queue.at(-1);
    if (last !== undefined && mergeable(last) && mergeable(msg)) {
      for (const [k, v] of msg) last.set(k, v);
    } else {
      this.queue.push(msg);
      while (this.queue.length > MAX_QUEUE) {
        const i = this.queue.findIndex(mergeable);
        this.queue.splice(i >= 0 ? i : 0, 1);
        this.counts.dropped++;
      }
    }
    this.pump();
  }

  private pump(): void {
    if (this.inFlight !== null) return;
    const msg = this.queue.shift();
    if (msg === undefined) return;
    this.inFlight = this.run(msg).finally(() => {
      this.inFlight = null;
      this.pump();
    });
  }

  private run(msg: Message): Promise<void> {
    // Positional VARIABLE=VALUE arguments: systemd-notify sends them as one datagram.
    const args = [...(this.noBlock ? ["--no-block"] : []), ...[...msg].map(([k, v]) => `${k}=${v}`)];
    this.counts.started++;
    return new Promise<void>((resolve) => {
      execFile(
        this.binary,
        args,
        { env: { NOTIFY_SOCKET: this.socket, PATH: "/usr/bin:/bin" }, timeout: this.timeoutMs, killSignal: "SIGKILL", windowsHide: true },
        (err, _stdout, stderr) => {
          if (err) {
            this.counts.failed++;
            this.log?.warn({ args, err: err.message, stderr: String(stderr).trim().slice(0, 300) }, "systemd-notify failed");
          } else {
            this.counts.sent++;
            this.log?.debug({ args }, "systemd-notify sent");
          }
          resolve();
        },
      );
    });
  }
}
