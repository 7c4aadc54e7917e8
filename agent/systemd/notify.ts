// sd_notify(3) for the agent: READY=1, STATUS=, WATCHDOG=1, RELOADING=1, STOPPING=1.
//
// Sent by the agent's own process (the unit's main PID), so the unit can say
// NotifyAccess=main: no child can tell systemd the service is ready or alive.
// Node core cannot send a unix datagram (dgram knows only udp4/udp6, net only
// streams), so one small Node-API addon does it: native/sd_notify.c, built by
// npm (binding.gyp) into build/Release/sd_notify.node. Node-API is ABI-stable,
// so one build serves every Node major; it has no dependency but libc.
// Why not npm unix-dgram: it copies the address with strncpy and passes
// sizeof(sockaddr_un), so it cannot reach an abstract ("@name") socket, and it
// is built on nan (V8's API: a rebuild per Node major).
//
// Rules that keep it cheap and safe:
//  - each message is one non-blocking sendmsg (MSG_DONTWAIT) on a fresh socket:
//    microseconds, never waits; a full queue or a missing socket is a failure
//    that is logged (once per distinct error), never fatal, never retried;
//  - WATCHDOG=1 at most once per WATCHDOG_USEC/2, driven by the core loop's
//    tick, so a wedged event loop stops the pings and systemd restarts us;
//  - NOTIFY_SOCKET and WATCHDOG_* are taken out of process.env, so smartctl,
//    systemctl and other children cannot talk to the notify socket.
import { createRequire } from "node:module";
import { errorMessage } from "../../core/errors.js";

export interface NotifyLog {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/** send(address, message) -> 0 or a negative errno (the addon's one function). */
export type DatagramSender = (address: string, message: Buffer) => number;

/** Where the addon is, from dist/agent/systemd/ (the repo or the installed tree). */
export const ADDON = "../../../build/Release/sd_notify.node";

/** Loads the addon; throws (with the reason) when it is missing or broken. */
export function loadSender(path = ADDON): DatagramSender {
  const mod = createRequire(import.meta.url)(path) as { send?: unknown };
  if (typeof mod.send !== "function") throw new Error(`${path} has no send()`);
  return mod.send as DatagramSender;
}

export interface NotifierOptions {
  /**
   * Environment to read NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID from (default process.env,
   * which is then cleaned).
   */
  readonly env?: NodeJS.ProcessEnv;
  /** Default: the addon, loaded when NOTIFY_SOCKET is set. */
  readonly sender?: DatagramSender;
  readonly log?: NotifyLog;
  readonly pid?: number;
}

/** One line, bounded: systemctl status shows the first line only. */
export function statusLine(s: string): string {
  const one = s.replace(/[\r\n]+/g, " ").trim();
  return one.length > 200 ? `${one.slice(0, 199)}…` : one;
}

/** errno names for the log (the addon returns numbers). */
const ERRNO: Record<number, string> = {
  2: "ENOENT",
  11: "EAGAIN",
  13: "EACCES",
  22: "EINVAL",
  36: "ENAMETOOLONG",
  90: "EMSGSIZE",
  97: "EAFNOSUPPORT",
  105: "ENOBUFS",
  111: "ECONNREFUSED",
};

export class SystemdNotifier {
  /** NOTIFY_SOCKET was set: we run under systemd (Type=notify). */
  readonly enabled: boolean;
  /** How often WATCHDOG=1 is sent (WATCHDOG_USEC/2), or null when no watchdog applies to us. */
  readonly watchdogIntervalMs: number | null;
  private readonly socket: string;
  private readonly sender: DatagramSender | null;
  private readonly log: NotifyLog | undefined;
  private lastPing = -Infinity;
  /** The last failure logged at warn; repeats go to debug until a send works. */
  private lastError: string | null = null;
  /** Messages sent and failed, for tests and logs. */
  readonly counts = { sent: 0, failed: 0 };

  constructor(opts: NotifierOptions = {}) {
    const env = opts.env ?? process.env;
    this.socket = env["NOTIFY_SOCKET"] ?? "";
    this.enabled = this.socket !== "";
    this.log = opts.log;
    const usec = Number(env["WATCHDOG_USEC"] ?? "");
    const wpid = env["WATCHDOG_PID"];
    const forUs = wpid === undefined || wpid === "" || Number(wpid) === (opts.pid ?? process.pid);
    this.watchdogIntervalMs =
      this.enabled && forUs && Number.isFinite(usec) && usec > 0
        ? Math.max(500, Math.floor(usec / 2000))
        : null;
    if (opts.env === undefined) {
      for (const k of ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]) delete process.env[k];
    }
    this.sender = this.enabled ? (opts.sender ?? this.load()) : null;
  }

  private load(): DatagramSender | null {
    try {
      return loadSender();
    } catch (e) {
      // systemd will see no READY=1: the start times out (TimeoutStartSec=), with this line in the journal.
      this.log?.error(
        { err: errorMessage(e), addon: ADDON },
        "systemd: cannot load the sd_notify addon (run npm ci); nothing reaches NOTIFY_SOCKET",
      );
      return null;
    }
  }

  /** READY=1 (start-up done, or a reload finished), with a status line. */
  ready(status?: string): void {
    this.send([
      ["READY", "1"],
      ...(status === undefined ? [] : ([["STATUS", statusLine(status)]] as const)),
    ]);
  }

  status(text: string): void {
    this.send([["STATUS", statusLine(text)]]);
  }

  reloading(): void {
    this.send([
      ["RELOADING", "1"],
      ["STATUS", "reloading configuration"],
    ]);
  }

  stopping(): void {
    this.send([
      ["STOPPING", "1"],
      ["STATUS", "stopping"],
    ]);
  }

  /** Called from the core loop's tick: pings at most once per WATCHDOG_USEC/2. Returns whether it pinged. */
  watchdog(nowMs: number): boolean {
    if (this.watchdogIntervalMs === null) return false;
    if (nowMs - this.lastPing < this.watchdogIntervalMs && nowMs >= this.lastPing) return false;
    this.lastPing = nowMs;
    this.send([["WATCHDOG", "1"]]);
    return true;
  }

  private send(fields: ReadonlyArray<readonly [string, string]>): void {
    if (!this.enabled) return;
    const text = fields.map(([k, v]) => `${k}=${v}`).join("\n");
    let err: string | null;
    if (this.sender === null) {
      err = "no sd_notify addon";
    } else {
      try {
        const r = this.sender(this.socket, Buffer.from(text));
        err = r === 0 ? null : (ERRNO[-r] ?? `errno ${-r}`);
      } catch (e) {
        err = errorMessage(e);
      }
    }
    if (err === null) {
      this.counts.sent++;
      this.lastError = null;
      this.log?.debug({ message: text }, "sd_notify sent");
      return;
    }
    this.counts.failed++;
    const o = { message: text, socket: this.socket, err };
    if (err !== this.lastError) this.log?.warn(o, "sd_notify failed");
    else this.log?.debug(o, "sd_notify failed again");
    this.lastError = err;
  }
}
