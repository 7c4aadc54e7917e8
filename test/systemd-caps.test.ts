// What each capability in the unit's bounding set is for, measured: the shipped unit's sandbox,
// with its ExecStart= replaced by a probe (test/helpers/capprobe.ts), run in a real systemd 252
// with each capability removed in turn. A process of another user (the database's) holds a file
// open in a 0700 WAL directory it owns. The unit's comments quote these results.
import test from "ava";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  bootContainer,
  NODE,
  type Container,
  containerUnavailable,
  REPO_ROOT,
} from "./helpers/container.js";
import { errorMessage } from "../core/errors.js";

const WAL = "/var/lib/stemedb/wal";
const SHIPPED = readFileSync(join(REPO_ROOT, "systemd/stemedb-agent.service"), "utf8");
const PROBE = join(REPO_ROOT, "dist/test/helpers/capprobe.js");
// Inside the container the probe runs from /etc: the checkout may live under /tmp or /home,
// which the unit's PrivateTmp=/ProtectHome= hide (a CI clone in /tmp failed that way).
const PROBE_IN = "/etc/stemedb-capprobe.mjs";
let c: Container | undefined;
let skip: string | null = containerUnavailable();
let dbPid = "";

test.before(async () => {
  if (skip !== null) return;
  if (!existsSync(PROBE)) {
    skip = "dist/ is not built";
    return;
  }
  try {
    c = await bootContainer({ name: `sdcaps${process.pid}` });
  } catch (e) {
    skip = `container did not boot: ${errorMessage(e).slice(0, 300)}`;
    return;
  }
  c.writeFile(PROBE_IN, readFileSync(PROBE, "utf8"));
  c.exec("systemd-sysusers", ["-"], {
    input: 'g stemedb-agent -\nu stemedbtest - "database stand-in" /\n',
  });
  c.sh(
    `mkdir -p ${WAL} && echo x > ${WAL}/seg1 && chown -R stemedbtest:stemedbtest ${WAL} && chmod 0700 ${WAL}`,
  );
  c.sh(
    `systemd-run --unit=dbhold --uid=stemedbtest --gid=stemedbtest sh -c 'exec 3<${WAL}/seg1; exec sleep 600'`,
  );
  await c.waitFor(
    "the holder",
    () => (c?.show("dbhold.service", ["MainPID"])["MainPID"] ?? "0") !== "0",
  );
  dbPid = c.show("dbhold.service", ["MainPID"])["MainPID"] ?? "";
});

test.after.always(async () => {
  await c?.stop();
});

const DROP = new RegExp(
  "^(Type|NotifyAccess|ExecStart|ExecReload|ExecStopPost|WatchdogSec|Restart|RestartSec|" +
    "RestartPreventExitStatus|TimeoutStartSec)=",
);

/** The shipped unit as a oneshot running the probe, with `caps` as its bounding set. */
function probe(name: string, caps: string): Record<string, string> {
  if (c === undefined) throw new Error("no container");
  const lines = SHIPPED.split("\n").filter((l) => !DROP.test(l) && !l.startsWith("WantedBy="));
  const unit = lines
    .map((l) => (l.startsWith("CapabilityBoundingSet=") ? `CapabilityBoundingSet=${caps}` : l))
    .join("\n")
    .replace(
      "[Service]\n",
      `[Service]\nType=oneshot\nExecStart=${NODE} ${PROBE_IN} ${dbPid} ${WAL}\n` +
        `StandardOutput=file:/run/${name}.json\n`,
    );
  c.writeFile(`/etc/systemd/system/${name}.service`, unit);
  c.sh(`systemctl daemon-reload && systemctl start ${name}.service`);
  return JSON.parse(c.readFile(`/run/${name}.json`)) as Record<string, string>;
}

const bit = (capBnd: string, n: number) => Number((BigInt(`0x${capBnd}`) >> BigInt(n)) & 1n);

test.serial(
  "the shipped bounding set: other users' /proc/<pid>/io and fds, a 0700 WAL dir; no /dev/kmsg, the journal instead",
  (t) => {
    t.timeout(120_000);
    if (skip !== null || c === undefined) return t.pass(`skipped: ${skip ?? "no container"}`);
    const caps = /^CapabilityBoundingSet=(.*)$/m.exec(SHIPPED)?.[1] ?? "";
    t.is(caps, "CAP_SYS_PTRACE CAP_DAC_READ_SEARCH");
    const r = probe("capprobe-shipped", caps);
    t.log(JSON.stringify(r));
    t.is(r["capBnd"], "0000000000080004"); // bits 2 (DAC_READ_SEARCH) and 19 (SYS_PTRACE) only
    t.is(r["dbIo"], "ok");
    t.is(r["initIo"], "ok");
    t.is(r["dbFd"], `${WAL}/seg1`);
    t.is(r["dbSyscall"], "ok", "the stalls collector can see what a database thread waits in");
    t.is(r["walList"], "seg1");
    t.is(r["walStat"], "ok");
    t.not(r["kmsg"], "ok", "ProtectKernelLogs=yes should hide /dev/kmsg");
    t.is(r["journal"], "0", "journalctl -k cannot read the journal");
  },
);

test.serial(
  "without CAP_SYS_PTRACE: other users' and full-capability root processes are gone from /proc",
  (t) => {
    t.timeout(120_000);
    if (skip !== null || c === undefined) return t.pass(`skipped: ${skip ?? "no container"}`);
    const r = probe("capprobe-noptrace", "CAP_DAC_READ_SEARCH");
    t.log(JSON.stringify(r));
    t.is(bit(r["capBnd"] ?? "0", 19), 0);
    t.not(r["dbIo"], "ok");
    t.not(r["initIo"], "ok");
    t.not(r["dbFd"], `${WAL}/seg1`);
    t.not(r["dbSyscall"], "ok");
    t.is(r["selfIo"], "ok");
    t.is(r["walList"], "seg1");
  },
);

test.serial(
  "without CAP_DAC_READ_SEARCH: other users' /proc/<pid>/io and fds, and the 0700 WAL dir, are EACCES",
  (t) => {
    t.timeout(120_000);
    if (skip !== null || c === undefined) return t.pass(`skipped: ${skip ?? "no container"}`);
    const r = probe("capprobe-nodac", "CAP_SYS_PTRACE");
    t.log(JSON.stringify(r));
    t.is(bit(r["capBnd"] ?? "0", 2), 0);
    t.is(r["dbIo"], "EACCES");
    t.is(r["dbFd"], "EACCES");
    t.is(r["dbSyscall"], "EACCES");
    t.is(r["walList"], "EACCES");
    t.is(r["walStat"], "EACCES");
    t.is(r["initIo"], "ok", "root-owned files need no DAC capability");
  },
);
