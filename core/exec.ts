// Running external tools (smartctl, systemctl, ...) so that a hung one can always be stopped:
// each child leads its own process group, and abort kills the whole group (TERM, then KILL).
import { spawn } from "node:child_process";
import { errorMessage } from "./errors.js";

export interface RunOptions {
  /** Aborting kills the process group; the promise then rejects with ExecError("aborted"). */
  signal?: AbortSignal | undefined;
  /** Bytes kept of stdout and of stderr each; the rest is dropped and `truncated` set. */
  maxOutput?: number;
  /** Wait between SIGTERM and SIGKILL of the group. */
  killGrace?: number;
  env?: NodeJS.ProcessEnv;
  input?: string;
  /**
   * An open descriptor handed to the child as its standard input (instead of `input`): the child
   * reaches the very file the caller holds as /proc/self/fd/0, never by a name.
   */
  stdinFd?: number;
}

export interface RunResult {
  /** Exit code, or null when ended by a signal. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly truncated: boolean;
  readonly pid: number;
}

export type ExecFailure = "spawn" | "aborted";

export class ExecError extends Error {
  override readonly name = "ExecError";
  constructor(
    readonly kind: ExecFailure,
    message: string,
    /** The child's pid, when it started: for checking it is gone. */
    readonly pid?: number,
    /** True when the group did not exit even after SIGKILL (e.g. stuck in uninterruptible I/O). */
    readonly lingering = false,
  ) {
    super(message);
  }
}

export function run(
  file: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  const maxOutput = opts.maxOutput ?? 16 * 1024 * 1024;
  const killGrace = opts.killGrace ?? 2000;
  return new Promise<RunResult>((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(new ExecError("aborted", `${file}: not started, already aborted`));
      return;
    }
    const child = spawn(file, args, {
      detached: true, // own process group, so abort reaches grandchildren too
      stdio: [
        opts.stdinFd !== undefined ? opts.stdinFd : opts.input === undefined ? "ignore" : "pipe",
        "pipe",
        "pipe",
      ],
      env: opts.env ?? process.env,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    let truncated = false;
    let settled = false;
    let killTimer: NodeJS.Timeout | undefined;
    let lingerTimer: NodeJS.Timeout | undefined;

    const killGroup = (sig: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        // group already gone
      }
    };
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(killTimer);
      clearTimeout(lingerTimer);
      opts.signal?.removeEventListener("abort", onAbort);
      fn();
    };
    const onAbort = () => {
      killGroup("SIGTERM");
      killTimer = setTimeout(() => killGroup("SIGKILL"), killGrace);
      // A process in uninterruptible sleep ignores even SIGKILL: do not wait for it forever.
      lingerTimer = setTimeout(
        () =>
          finish(() =>
            reject(
              new ExecError("aborted", `${file}: did not exit after SIGKILL`, child.pid, true),
            ),
          ),
        killGrace + 3000,
      );
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });

    // A chunk that crosses the limit is cut and counts as truncated, like one wholly past it.
    child.stdout?.on("data", (b: Buffer) => {
      if (outLen < maxOutput) out.push(b.subarray(0, maxOutput - outLen));
      outLen += b.length;
      if (outLen > maxOutput) truncated = true;
    });
    child.stderr?.on("data", (b: Buffer) => {
      if (errLen < maxOutput) err.push(b.subarray(0, maxOutput - errLen));
      errLen += b.length;
      if (errLen > maxOutput) truncated = true;
    });
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on("error", () => undefined); // EPIPE when the child does not read
      child.stdin.end(opts.input);
    }
    child.on("error", (e) =>
      finish(() => reject(new ExecError("spawn", `${file}: ${errorMessage(e)}`, child.pid))),
    );
    child.on("close", (code, signal) =>
      finish(() => {
        if (opts.signal?.aborted) {
          reject(
            new ExecError(
              "aborted",
              `${file}: killed (${signal ?? `exit ${code}`}) after abort`,
              child.pid,
            ),
          );
          return;
        }
        resolve({
          code,
          signal,
          stdout: Buffer.concat(out).toString("utf8"),
          stderr: Buffer.concat(err).toString("utf8"),
          truncated,
          pid: child.pid ?? -1,
        });
      }),
    );
  });
}
