// Who holds a segment open must never be concluded from what could not be seen: a process
// whose /proc/<pid>/fd cannot be read makes the answer unknown, and without CAP_SYS_PTRACE and
// CAP_DAC_READ_SEARCH the agent says it cannot compress at all.
import { spawnSync } from "node:child_process";
import { closeSync, openSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import { cannotSeeHolders, holdersOf } from "../remediators/wal_compress/holders.js";
import { hasCommand, isRoot, tempDir } from "./helpers/agent-process.js";

const HOLDERS = new URL("../remediators/wal_compress/holders.js", import.meta.url).pathname;

test(
  "a held file is found by device and inode, whatever its name now; " +
    "the agent's own process is never a holder",
  (t) => {
    const { dir } = tempDir();
    const f = join(dir, "segment.1.wal");
    writeFileSync(f, "x");
    const fd = openSync(f, "r");
    t.teardown(() => closeSync(fd));
    renameSync(f, `${f}.renamed`);
    const id = statSync(`${f}.renamed`);
    t.deepEqual(holdersOf(id, process.pid), [], "held only by the caller itself");
    t.deepEqual(holdersOf(id, -1), [process.pid], "seen by inode after the rename");
  },
);

test(
  "as root with the capabilities, every process can be seen; as an unprivileged user, " +
    "the answer is unknown, not 'nobody'",
  (t) => {
    if (!isRoot || !hasCommand("runuser")) return t.pass("skipped: needs root and runuser");
    t.is(cannotSeeHolders(), null);
    const { dir } = tempDir();
    const f = join(dir, "held");
    writeFileSync(f, "x");
    const st = statSync(f);
    const script = `import("${HOLDERS}").then((m) => {
    console.log(JSON.stringify({ blind: m.cannotSeeHolders() }));
    try { console.log(JSON.stringify({ holders: m.holdersOf({ dev: ${st.dev}, ino: ${st.ino} }, process.pid) })); }
    catch (e) { console.log(JSON.stringify({ error: e.code, message: e.message })); }
  });`;
    const r = spawnSync(
      "runuser",
      ["-u", "nobody", "--", process.execPath, "--input-type=module", "-e", script],
      { encoding: "utf8" },
    );
    t.is(r.status, 0, r.stderr);
    const [blind, out] = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, string>);
    t.regex(
      blind?.["blind"] ?? "",
      /without CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH the agent cannot see/,
    );
    t.is(out?.["error"], "HoldersUnknown", JSON.stringify(out));
    t.regex(out?.["message"] ?? "", /which processes hold WAL segments open is unknown/);
  },
);
