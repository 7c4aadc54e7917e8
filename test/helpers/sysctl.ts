// Host sysctls a suite needs (kernel.printk_devkmsg=on so injected lines are not rate-limited),
// held for as long as any test process needs them and restored by the last one. ava runs files
// in parallel processes: a save/restore per file would let one file put "ratelimit" back under
// another that is still writing, or save the other's "on" as the original and leave it behind.
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";

const ROOT = "/run/stemedb-agent-tests";

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Runs fn under a lock shared by every test process (mkdir is atomic); a stale lock is broken. */
function locked<T>(dir: string, fn: () => T): T {
  const lock = join(dir, "lock");
  for (let i = 0; ; i++) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      try {
        if (Date.now() - statSync(lock).mtimeMs > 10_000)
          rmSync(lock, { recursive: true, force: true });
      } catch {
        // released meanwhile
      }
      if (i > 500) throw new Error(`cannot take ${lock}`);
      sleepSync(10);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Holders still alive (dead ones, e.g. a killed test process, are dropped). */
function holders(dir: string): number[] {
  const out: number[] = [];
  for (const f of readdirSync(dir)) {
    const m = /^holder\.(\d+)$/.exec(f);
    if (!m) continue;
    const pid = Number(m[1]);
    if (alive(pid)) out.push(pid);
    else rmSync(join(dir, f), { force: true });
  }
  return out;
}

/** Sets `path` to `value` for this process; the returned function releases it. */
export function holdSysctl(path: string, value: string): () => void {
  const dir = join(ROOT, path.replace(/\//g, "_"));
  mkdirSync(dir, { recursive: true });
  const original = join(dir, "original");
  const mine = join(dir, `holder.${process.pid}`);
  locked(dir, () => {
    if (holders(dir).length === 0 || !existsSync(original))
      writeFileSync(original, readFileSync(path, "utf8").trim());
    writeFileSync(mine, "");
    writeFileSync(path, `${value}\n`);
  });
  let released = false;
  return () => {
    if (released) return;
    released = true;
    locked(dir, () => {
      rmSync(mine, { force: true });
      if (holders(dir).length === 0 && existsSync(original)) {
        writeFileSync(path, `${readFileSync(original, "utf8")}\n`);
        rmSync(original, { force: true });
      }
    });
  };
}

/**
 * Waits until no other test process holds `name`, then holds it until the returned function is
 * called (or the holder dies). For suites that must not overlap: the /dev/kmsg storm overwrites
 * the kernel ring buffer that the SIGKILL test reads back after each restart.
 */
export async function exclusive(name: string, waitMs = 180_000): Promise<() => void> {
  const dir = join(ROOT, `exclusive.${name}`);
  mkdirSync(ROOT, { recursive: true });
  const end = Date.now() + waitMs;
  for (;;) {
    try {
      mkdirSync(dir);
      writeFileSync(join(dir, "pid"), String(process.pid));
      break;
    } catch {
      let owner = 0;
      try {
        owner = Number(readFileSync(join(dir, "pid"), "utf8"));
      } catch {
        // being created or removed
      }
      if (owner > 0 && !alive(owner)) rmSync(dir, { recursive: true, force: true });
      if (Date.now() > end)
        throw new Error(`${name} still held by pid ${owner} after ${waitMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return () => rmSync(dir, { recursive: true, force: true });
}
