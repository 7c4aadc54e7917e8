// A real unprivileged user for one test file: created before its tests (a leftover of a killed
// run removed first), removed after them. Named per test process, so two runs of the suite on
// one machine never remove each other's user.
import { execFileSync, spawnSync } from "node:child_process";
import test from "ava";

export interface TestUser {
  readonly name: string;
  /** -1 until the file's before hook has run (or when it did not: not ready). */
  readonly uid: number;
  readonly gid: number;
  /** Runs a command as the user (runuser); throws with its stderr when it fails. */
  run(cmd: string, ...args: string[]): void;
}

export function testUser(prefix: string, ready: boolean): TestUser {
  const name = `${prefix}-${process.pid % 100000}`;
  const ids = { uid: -1, gid: -1 };
  test.before(() => {
    if (!ready) return;
    spawnSync("userdel", [name]);
    execFileSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]);
    ids.uid = Number(execFileSync("id", ["-u", name], { encoding: "utf8" }));
    ids.gid = Number(execFileSync("id", ["-g", name], { encoding: "utf8" }));
  });
  test.after.always(() => {
    if (ready) removeUser(name);
  });
  return {
    name,
    get uid() {
      return ids.uid;
    },
    get gid() {
      return ids.gid;
    },
    run(cmd, ...args) {
      const r = spawnSync("runuser", ["-u", name, "--", cmd, ...args], { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
    },
  };
}

/**
 * userdel refuses while a process of the user lives (an agent or racer whose SIGKILL is still on
 * its way at teardown), which left users behind: end them first, then remove it.
 */
export function removeUser(name: string): void {
  for (let i = 0; i < 20; i++) {
    spawnSync("pkill", ["-KILL", "-u", name]);
    if (spawnSync("userdel", [name]).status !== 8) return; // 8: the user is logged in / in use
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  }
}
