// Run by test/systemd-caps.test.ts as ExecStart= of a copy of the shipped unit: what the agent's
// sandbox lets it read, each as "ok" or the error code. Prints one JSON line.
// argv: <pid of a process of the database's user holding a WAL file open> <WAL directory>
import { spawnSync } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";

const [pid = "0", wal = "/nonexistent"] = process.argv.slice(2);

function probe(f: () => string | void): string {
  try {
    return f() ?? "ok";
  } catch (e) {
    // Self-contained (copied alone into the container): no import of the agent's helpers.
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

function heldInWal(): string {
  const held = readdirSync(`/proc/${pid}/fd`).map((fd) =>
    probe(() => readlinkSync(`/proc/${pid}/fd/${fd}`)),
  );
  return held.filter((t) => t.startsWith(`${wal}/`)).join(",") || "none";
}

const report = {
  capBnd: /^CapBnd:\s*(\S+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "?",
  dbIo: probe(() => void readFileSync(`/proc/${pid}/io`)),
  initIo: probe(() => void readFileSync("/proc/1/io")),
  selfIo: probe(() => void readFileSync("/proc/self/io")),
  dbFd: probe(heldInWal),
  // What the stalls collector reads of a database thread in D: its system call and descriptor.
  dbSyscall: probe(() => void readFileSync(`/proc/${pid}/task/${pid}/syscall`)),
  walList: probe(() => readdirSync(wal).join(",")),
  walStat: probe(() => void statSync(`${wal}/seg1`)),
  kmsg: probe(() => closeSync(openSync("/dev/kmsg", "r"))),
  journal: String(spawnSync("journalctl", ["-k", "-n", "1", "-q", "--no-pager"]).status),
};
process.stdout.write(`${JSON.stringify(report)}\n`);
