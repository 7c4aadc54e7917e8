// Issue 16, item 6: any local user could fake kernel storage faults. A crashing program's
// name (comm, 15 bytes) and file name (255 bytes) appear in the kernel's own crash report, at
// kernel facility. Here real programs with crafted names really crash, as an unprivileged
// user, under the real agent; their lines must be in /dev/kmsg and must count for nothing,
// while a block-layer line written in the same run does count. Needs root and gcc.
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  closeSync,
  constants,
  openSync,
  readSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import test from "ava";
import Database from "better-sqlite3";
import { parseRecord } from "../collectors/kmsg/record.js";
import {
  agentctl,
  fetchText,
  hasCommand,
  isRoot,
  startAgent,
  tempDir,
} from "./helpers/agent-process.js";
import { sleep } from "./helpers/quiet.js";
import { exclusive, holdSysctl } from "./helpers/sysctl.js";

// One program, three faults: a NULL store (segfault), hlt in user mode (general protection),
// a division by zero (trap divide error), ud2 (trap invalid opcode). comm is set first.
const SOURCE = `
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
int main(int argc, char **argv) {
  if (argc > 1 && argv[1][0]) prctl(PR_SET_NAME, argv[1], 0, 0, 0);
  signal(SIGSEGV, SIG_DFL); signal(SIGFPE, SIG_DFL); signal(SIGILL, SIG_DFL);
  const char *m = argc > 2 ? argv[2] : "segv";
  if (!strcmp(m, "gp")) __asm__ volatile("hlt");
  /* in asm: gcc turns 1 / z into a comparison that never traps */
  if (!strcmp(m, "div")) __asm__ volatile("xor %%ecx, %%ecx; mov $1, %%eax; cltd; idivl %%ecx" ::: "eax", "ecx", "edx");
  if (!strcmp(m, "ud")) __asm__ volatile("ud2");
  *(volatile int *)0 = 1;
  return 0;
}
`;

/** A disk nobody has, so its counters are this test's alone. */
const T = `sdq${Array.from({ length: 5 }, () => String.fromCharCode(97 + Math.floor(Math.random() * 26))).join("")}`;

// [comm ("" = the file name), file name, fault]. File names cannot hold "/", comm can.
// Each pattern counted under the old classifier (matches anywhere, unanchored tails).
const CRASHES: Array<[string, string, "segv" | "gp" | "div" | "ud"]> = [
  ["", `x error, dev ${T}, sector 2048 op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 2`, "segv"],
  [
    "",
    `critical medium error, dev ${T}, sector 2048 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2`,
    "gp",
  ],
  [
    "",
    `EXT4-fs error (device ${T}): ext4_find_entry:1613: inode #2: comm x: reading directory lblock 0`,
    "div",
  ],
  ["XFS (sdqzx): ", "Filesystem has been shut down due to log error (0x2).", "segv"],
  ["sd 9:9:9:9: ", "Device offlined - not ready after error recovery", "ud"],
  ["nvme nvme9: ", "x timeout, reset controller", "segv"],
  ["ata9: error: {", "UNC }", "segv"],
  ["INFO: task jbd2", "x-8:1 blocked for more than 120 seconds.", "segv"],
  ["", `XFS (${T}): metadata I-O error in x at daddr 0x80 len 32 error 5`, "gp"],
];
/** Every device label a crafted line above would have counted on. */
const WATCHED = [T, "sdqzx", "scsi-9:9:9:9", "nvme9", "ata9", "unknown"];

let release: Array<() => void> = [];
test.before(async () => {
  if (!isRoot) return;
  // The ring buffer is shared with kmsg.test.ts and faults-sigkill.test.ts (see kmsg.test.ts).
  release = [
    await exclusive("kmsg-ring"),
    holdSysctl("/proc/sys/kernel/printk_devkmsg", "on"),
    // x86 prints crash reports only with show_unhandled_signals, and only within
    // printk_ratelimit(): interval 0 turns that limit off, so every crash is printed.
    holdSysctl("/proc/sys/debug/exception-trace", "1"),
    holdSysctl("/proc/sys/kernel/printk_ratelimit", "0"),
  ];
});
test.after.always(() => release.reverse().forEach((r) => r()));

/** Every record now in the ring buffer, oldest first. */
function readKmsg(): Array<{ facility: number; text: string }> {
  const fd = openSync("/dev/kmsg", constants.O_RDONLY | constants.O_NONBLOCK);
  const buf = Buffer.alloc(16 * 1024);
  const out: Array<{ facility: number; text: string }> = [];
  try {
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EPIPE") continue;
        break; // EAGAIN: the end
      }
      const r = parseRecord(buf.toString("utf8", 0, n));
      if (typeof r !== "string") out.push({ facility: r.facility, text: r.text });
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/** kernel_io_errors_total series as "device/class" -> value. */
async function ioErrors(url: string): Promise<Map<string, number>> {
  const text = (await fetchText(`${url}/metrics`)).text;
  const m = new Map<string, number>();
  for (const x of text.matchAll(
    /^stemedb_agent_kernel_io_errors_total\{device="([^"]*)",class="([^"]*)"\} (\S+)$/gm,
  ))
    m.set(`${x[1]}/${x[2]}`, Number(x[3]));
  return m;
}

test.serial(
  "programs with crafted names that really crash count for nothing; a block-layer line in the same run counts",
  async (t) => {
    if (!isRoot || !hasCommand("gcc") || !hasCommand("setpriv"))
      return t.pass("skipped: needs root, gcc and setpriv");
    if (process.arch !== "x64")
      return t.pass("skipped: the crash report formats exercised are x86's");
    const { dir, cleanup } = tempDir("sa-crash-");
    t.teardown(cleanup);
    chmodSync(dir, 0o755); // the crashing user must reach its programs
    writeFileSync(join(dir, "crash.c"), SOURCE);

    const a = await startAgent({
      extraToml:
        `[collectors.kmsg]\nfacilities = ["kern", "user"]\n[collectors.diskstats]\nenabled = false\n` +
        `[collectors.smart]\nenabled = false\n[collectors.procio]\nenabled = false\n[collectors.wal]\n` +
        `enabled = false\n`,
    });
    t.teardown(() => a.stop("SIGKILL"));
    await sleep(1500); // the agent has drained what was already in the ring buffer
    const before = await ioErrors(a.url);

    const seen: string[] = [];
    for (const [comm, file, fault] of CRASHES) {
      const exe = join(dir, file);
      const cc = spawnSync("gcc", ["-O0", "-o", exe, join(dir, "crash.c")], { encoding: "utf8" });
      t.is(cc.status, 0, cc.stderr);
      // As nobody, the adversary of the issue; no core file in the test directory.
      const r = spawnSync(
        "sh",
        [
          "-c",
          'ulimit -c 0; exec "$0" "$@"',
          "setpriv",
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          exe,
          comm,
          fault,
        ],
        { cwd: dir, timeout: 10_000 },
      );
      t.truthy(
        r.signal,
        `${file}: the program was killed by a signal (${r.signal}, status ${r.status})`,
      );
      t.is(r.signal, fault === "div" ? "SIGFPE" : fault === "ud" ? "SIGILL" : "SIGSEGV", file);
      seen.push(`${r.pid}\u0000${comm || file.slice(0, 15)}\u0000${file}\u0000${fault}`);
    }

    // The kernel really printed each crash, with the crafted names, at kernel facility.
    const records = readKmsg();
    for (const s of seen) {
      const [pid, comm, file, fault] = s.split("\u0000") as [string, string, string, string];
      const rec = records.find((x) => x.text.includes(`${comm}[${pid}]`));
      t.truthy(rec, `the crash report of pid ${pid} (${comm}) is in /dev/kmsg`);
      if (!rec) continue;
      t.is(rec.facility, 0, rec.text);
      t.true(
        rec.text.includes(` in ${file}[`),
        `the file name is in the kernel's line: ${rec.text}`,
      );
      const kind = {
        segv: "]: segfault at ",
        gp: "] general protection fault ip:",
        div: "] trap divide error ip:",
        ud: "] trap invalid opcode ip:",
      }[fault];
      t.true(rec.text.includes(kind ?? "?"), `${fault}: ${rec.text}`);
    }

    // A block-layer fault on the same disk label, after the crashes: once it is counted, the
    // agent has read every crash record before it (one sequence).
    const fd = openSync("/dev/kmsg", "w");
    writeSync(
      fd,
      `<3>I/O error, dev ${T}, sector 8 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 2\n`,
    );
    closeSync(fd);
    let after = before;
    for (let i = 0; i < 50 && !after.has(`${T}/blk_io_error`); i++) {
      await sleep(100);
      after = await ioErrors(a.url);
    }
    t.is(after.get(`${T}/blk_io_error`), 1, "the real block-layer line counts");
    for (const [k, v] of after) {
      const dev = k.slice(0, k.lastIndexOf("/"));
      if (k === `${T}/blk_io_error` || !WATCHED.includes(dev)) continue;
      t.is(v, before.get(k) ?? 0, `${k} did not rise`);
    }

    // History: one kernel event on T (the real line), none made of a crash report.
    const st = agentctl(["--socket", a.socket, "status", "--json"]);
    t.is(await a.stop("SIGTERM").then((x) => x.code), 0);
    const db = new Database(join(a.stateDir, "history.db"), { readonly: true });
    t.teardown(() => db.close());
    const onT = db
      .prepare("SELECT kind, message FROM events WHERE class = 'kernel' AND subject = ?")
      .all(T) as Array<{ kind: string; message: string }>;
    t.deepEqual(
      onT.map((e) => e.kind),
      ["blk_io_error"],
      JSON.stringify(onT),
    );
    const crashEvents = db
      .prepare(
        "SELECT message FROM events WHERE class = 'kernel' AND (message LIKE '%segfault at%' OR " +
          "message LIKE 'traps:%' OR message LIKE '%] trap %')",
      )
      .pluck()
      .all();
    t.deepEqual(crashEvents, []);
    t.false(/sdqzx|9:9:9:9|nvme9|ata9/.test(st.stdout), "status names no crafted device");
  },
);
