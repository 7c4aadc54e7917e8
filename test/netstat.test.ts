// The netstat collector: its parsers on captured /proc/net files (this machine's, a network
// namespace with odd interface names, old-kernel look-alikes), rates and resets, the sink's
// counters mirroring the kernel's, and real TCP retransmits and interface drops made in a
// network namespace of its own (a veth whose peer is down), read through /proc/<pid>/net.
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import test, { type ExecutionContext } from "ava";
import { Registry } from "prom-client";
import { NetstatCollector } from "../collectors/netstat/collector.js";
import type { NetstatObservation } from "../collectors/netstat/observation.js";
import {
  interfaceFigures,
  parseNetDev,
  parseSnmpPairs,
  tcpCounters,
  tcpFigures,
} from "../collectors/netstat/parse.js";
import { MAX_INTERFACES, netstatSinks } from "../collectors/netstat/sink.js";
import { hasCommand, isRoot, tempDir } from "./helpers/agent-process.js";
import { routed, sleep } from "./helpers/quiet.js";

const FIXTURES = fileURLToPath(new URL("../../test/fixtures/netstat/", import.meta.url));
const fixture = (name: string) => readFileSync(join(FIXTURES, name), "utf8");

test("net/snmp and net/netstat of this VM (captured): the Tcp pair and TCPTimeouts", (t) => {
  const snmp = fixture("snmp_debian12_6.18.txt");
  const tcp = parseSnmpPairs(snmp).get("Tcp");
  t.is(tcp?.get("MaxConn"), -1);
  t.like(tcpCounters(snmp, fixture("netstat_debian12_6.18.txt")), {
    out_segs: 14194,
    retrans_segs: 8,
    in_errs: 0,
  });
  t.is(typeof tcpCounters(snmp, fixture("netstat_debian12_6.18.txt"))?.timeouts, "number");
  t.is(tcpCounters(snmp, null)?.timeouts, null);
  // A namespace where one SYN went out and was retransmitted once.
  t.like(tcpCounters(fixture("snmp_netns_retransmits.txt"), null), {
    out_segs: 1,
    retrans_segs: 1,
  });
  // Headers without values, values without headers, a values line of another length: nothing.
  t.is(tcpCounters("Tcp: OutSegs RetransSegs InErrs\n", null), null);
  t.is(tcpCounters("Tcp: 1 2 3\n", null), null);
  t.is(tcpCounters("Tcp: OutSegs RetransSegs InErrs\nTcp: 1 2\n", null), null);
  t.like(tcpCounters("Ip: A\nIp: 1\nTcp: OutSegs RetransSegs InErrs\nTcp: 10 2 1\n", null), {
    out_segs: 10,
    retrans_segs: 2,
    in_errs: 1,
  });
});

test("net/dev: loopback skipped, odd names kept as the kernel prints them, malformed lines skipped", (t) => {
  const vm = parseNetDev(fixture("dev_debian12_6.18.txt")).map((i) => i.name);
  t.deepEqual(vm, ["ifb0", "ifb1", "eth0"]);
  const ns = parseNetDev(fixture("dev_netns_veth_odd_names.txt"));
  t.deepEqual(
    ns.map((i) => i.name),
    ["a-very-long-nm1", "eth0.100", "v1", "v0"],
  );
  t.like(
    ns.find((i) => i.name === "v0"),
    { tx_dropped: 2, rx_errors: 0 },
  );
  const old = parseNetDev(fixture("dev_old_kernel_and_lookalikes.txt"));
  t.deepEqual(
    old.map((i) => i.name),
    ["eth0", "eth1", "br:lan"],
  );
  t.deepEqual(old[0], {
    name: "eth0",
    rx_bytes: 4294967295,
    rx_errors: 17,
    rx_dropped: 4,
    tx_bytes: 987654321,
    tx_errors: 2,
    tx_dropped: 9,
  });
  t.like(old[1], { rx_bytes: 1, rx_errors: 3, rx_dropped: 4, tx_bytes: 9, tx_errors: 11 });
});

test("rates: null on the first sample and after a counter reset (an interface re-created), never negative", (t) => {
  const a = { out_segs: 1000, retrans_segs: 10, in_errs: 0, timeouts: 1 };
  const b = { out_segs: 1990, retrans_segs: 20, in_errs: 0, timeouts: 1 };
  t.like(tcpFigures(null, a, null), { retrans_per_second: null, retrans_ratio: null });
  t.like(tcpFigures(a, b, 10), { retrans_per_second: 1, retrans_ratio: 0.01 });
  t.like(tcpFigures(b, a, 10), { retrans_per_second: null, retrans_ratio: null });
  t.like(tcpFigures(a, a, 10), { retrans_per_second: 0, retrans_ratio: null });
  const eth = (errs: number) => ({
    name: "eth0",
    rx_bytes: 100 * errs,
    tx_bytes: 100,
    rx_errors: errs,
    tx_errors: 0,
    rx_dropped: errs,
    tx_dropped: 1,
  });
  const first = interfaceFigures(null, [eth(5)], null);
  t.is(first[0]?.errors_per_second, null);
  const prev = new Map([["eth0", eth(5)]]);
  t.is(interfaceFigures(prev, [eth(15)], 10)[0]?.errors_per_second, 2);
  // Re-created: its counters restarted below the last sample's.
  t.is(interfaceFigures(new Map([["eth0", eth(15)]]), [eth(1)], 10)[0]?.errors_per_second, null);
});

/** A procfs tree holding only net/snmp, net/netstat and net/dev. */
function netTree(t: ExecutionContext): {
  proc: string;
  write: (snmp: string, dev: string) => void;
} {
  const { dir: proc, cleanup } = tempDir("sa-net-");
  t.teardown(cleanup);
  mkdirSync(join(proc, "net"));
  const write = (snmp: string, dev: string) => {
    writeFileSync(join(proc, "net/snmp"), snmp);
    writeFileSync(join(proc, "net/dev"), dev);
  };
  return { proc, write };
}

const DEV_HEAD =
  "Inter-|   Receive                                                |  Transmit\n" +
  " face |bytes    packets errs drop fifo frame compressed multicast|" +
  "bytes    packets errs drop fifo colls carrier compressed\n";
const devLine = (name: string, rxErr: number, txDrop: number) =>
  `${name.padStart(6)}: 100 1 ${rxErr} 0 0 0 0 0 200 2 0 ${txDrop} 0 0 0 0\n`;
const snmpText = (out: number, retrans: number) =>
  `Tcp: OutSegs RetransSegs InErrs\nTcp: ${out} ${retrans} 3\n`;

function collector(procPath: string) {
  const registry = new Registry();
  const r = routed(netstatSinks(registry), null, () => new NetstatCollector({ procPath }));
  return { ...r, registry };
}

async function value(registry: Registry, name: string, labels: Record<string, string> = {}) {
  const m = await registry.getSingleMetric(name)?.get();
  return m?.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
}

test.serial(
  "the sink's counters are the kernel's values; an interface re-created restarts its series, " +
    "one gone loses it; interfaces beyond the cap are counted, not exported",
  async (t) => {
    const { proc, write } = netTree(t);
    const { once, registry } = collector(proc);
    write(
      snmpText(1000, 10),
      DEV_HEAD + devLine("lo", 9, 9) + devLine("eth0", 5, 1) + devLine("eth1", 0, 0),
    );
    await once();
    t.is(await value(registry, "stemedb_agent_tcp_sent_segments_total"), 1000);
    t.is(await value(registry, "stemedb_agent_tcp_retransmitted_segments_total"), 10);
    t.is(await value(registry, "stemedb_agent_tcp_in_errors_total"), 3);
    const eth0 = { interface: "eth0", direction: "rx", kind: "errors" };
    t.is(await value(registry, "stemedb_agent_network_errors_total", eth0), 5);
    t.is(
      await value(registry, "stemedb_agent_network_errors_total", { interface: "lo" }),
      undefined,
    );
    write(snmpText(2000, 30), DEV_HEAD + devLine("eth0", 7, 1) + devLine("eth1", 0, 4));
    const o = await once();
    t.is(await value(registry, "stemedb_agent_tcp_retransmitted_segments_total"), 30);
    t.is(await value(registry, "stemedb_agent_network_errors_total", eth0), 7);
    t.true((o.tcp?.retrans_ratio ?? 0) > 0);
    // eth0 re-created (its counters restarted at 2); eth1 gone.
    write(snmpText(2100, 30), DEV_HEAD + devLine("eth0", 2, 0));
    const r = await once();
    t.is(r.interfaces[0]?.errors_per_second, null);
    t.is(await value(registry, "stemedb_agent_network_errors_total", eth0), 2);
    t.is(
      await value(registry, "stemedb_agent_network_errors_total", { interface: "eth1" }),
      undefined,
    );
    // 40 interfaces: the first 32 by name are exported, 8 are counted as omitted.
    const many = Array.from({ length: 40 }, (_, i) =>
      devLine(`veth${String(i).padStart(2, "0")}`, i, 0),
    );
    write(snmpText(2100, 30), DEV_HEAD + many.join(""));
    await once();
    const text = await registry.metrics();
    const exported = new Set(
      [...text.matchAll(/^stemedb_agent_network_errors_total\{interface="([^"]+)"/gm)].map(
        (m) => m[1],
      ),
    );
    t.is(exported.size, MAX_INTERFACES);
    t.true(exported.has("veth00") && exported.has("veth31") && !exported.has("veth32"));
    t.is(await value(registry, "stemedb_agent_network_interfaces_omitted"), 8);
    // The kernel's TCP counters going back (another namespace, a reboot) restart the series too.
    write(snmpText(50, 1), DEV_HEAD);
    await once();
    t.is(await value(registry, "stemedb_agent_tcp_sent_segments_total"), 50);
    if (hasCommand("promtool")) {
      const p = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
      t.is(p.status, 0, `${p.stdout}${p.stderr}`);
      t.is(`${p.stdout}${p.stderr}`.trim(), "");
    }
  },
);

test.serial(
  "this machine's /proc/net: TCP counters and interfaces (no lo), rates on the second sample",
  async (t) => {
    const { once, registry } = collector("/proc");
    const a = await once();
    t.truthy(a.tcp);
    t.is(a.tcp?.retrans_per_second, null);
    t.false(a.interfaces.some((i) => i.name === "lo"));
    await sleep(300);
    const b = await once();
    t.true((b.tcp?.out_segs ?? -1) >= (a.tcp?.out_segs ?? 0));
    t.true((b.tcp?.retrans_per_second ?? -1) >= 0);
    t.true(b.interfaces.every((i) => i.errors_per_second === null || i.errors_per_second >= 0));
    t.true((b.interval_seconds ?? 0) > 0);
    t.is(await value(registry, "stemedb_agent_tcp_sent_segments_total"), b.tcp?.out_segs);
  },
);

test.serial(
  "a procfs without net files is a clear error; without net/netstat, no timeouts",
  async (t) => {
    const { proc, write } = netTree(t);
    const col = new NetstatCollector({ procPath: join(proc, "missing") });
    await t.throwsAsync(col.collect({ signal: new AbortController().signal }), {
      message: /cannot read .*missing\/net\/snmp.*cannot read .*missing\/net\/dev/,
    });
    write(snmpText(1, 0), "garbage\n");
    const o = await new NetstatCollector({ procPath: proc }).collect({
      signal: new AbortController().signal,
    });
    t.like(o.tcp, { out_segs: 1, timeouts: null });
    t.deepEqual(o.interfaces, []);
  },
);

// ------------------------------------------------------------------ real retransmits

/** A shell in a network namespace of its own: veth v0 up, its peer v1 down, a static neighbour. */
async function netns(): Promise<{ sh: ChildProcess; pid: number; run: (cmd: string) => void }> {
  const setup = [
    "ip link set lo up",
    "ip link add v0 type veth peer name v1",
    "ip link add eth0.100 type veth peer name a-very-long-nm1",
    "ip addr add 10.9.9.1/24 dev v0",
    "ip link set v0 up",
    "ip neigh add 10.9.9.2 lladdr 02:00:00:00:00:02 dev v0 nud permanent",
    "echo ready",
    "exec sleep 600",
  ].join(" && ");
  const sh = spawn("unshare", ["-n", "sh", "-c", setup], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    sh.stdout?.once("data", () => resolve());
    sh.once("exit", (code) => reject(new Error(`netns setup exited ${code}`)));
  });
  const pid = sh.pid as number;
  const run = (cmd: string) =>
    void execFileSync("nsenter", ["-t", String(pid), "-n", "sh", "-c", cmd], { stdio: "ignore" });
  return { sh, pid, run };
}

test.serial(
  "real retransmits: SYNs to a neighbour behind a veth whose peer is down are retransmitted and " +
    "dropped at the interface; re-creating it resets its counters (null rate, no negative)",
  async (t) => {
    if (!isRoot || !hasCommand("unshare") || !hasCommand("nsenter") || !hasCommand("ip"))
      return t.pass("skipped: needs root, unshare, nsenter and ip");
    const ns = await netns().catch((e: Error) => e);
    if (ns instanceof Error) return t.pass(`skipped: no veth in a new namespace (${ns.message})`);
    t.teardown(() => ns.sh.kill("SIGKILL"));
    // Through /proc/<pid>: that process's network namespace is what <proc>/net shows.
    const { once, registry } = collector(`/proc/${ns.pid}`);
    const a = await once();
    t.deepEqual(
      a.interfaces.map((i) => i.name),
      ["a-very-long-nm1", "eth0.100", "v0", "v1"],
    );
    t.like(a.tcp, { out_segs: 0, retrans_segs: 0 });
    // One connect, given up after the kernel's first retransmit (the SYN is resent after 1 s).
    ns.run("timeout 3 bash -c 'exec 3<>/dev/tcp/10.9.9.2/80' 2>/dev/null; true");
    const b = await once();
    const retrans = b.tcp?.retrans_segs ?? 0;
    t.true(retrans >= 1, JSON.stringify(b.tcp));
    t.true((b.tcp?.retrans_per_second ?? 0) > 0);
    t.is(b.tcp?.retrans_ratio, retrans / (retrans + (b.tcp?.out_segs ?? 0)));
    const v0 = b.interfaces.find((i) => i.name === "v0");
    t.true((v0?.tx_dropped ?? 0) >= 1 + retrans, JSON.stringify(v0));
    t.true((v0?.errors_per_second ?? 0) > 0);
    t.is(await value(registry, "stemedb_agent_tcp_retransmitted_segments_total"), retrans);
    t.is(
      await value(registry, "stemedb_agent_network_errors_total", {
        interface: "v0",
        direction: "tx",
        kind: "dropped",
      }),
      v0?.tx_dropped,
    );
    // Re-created under the same name: its counters start again from 0.
    ns.run("ip link del v0 && ip link add v0 type veth peer name v1 && ip link set v0 up");
    const c = await once();
    const v0c = c.interfaces.find((i) => i.name === "v0");
    t.like(v0c, { tx_dropped: 0, errors_per_second: null });
    t.is(
      await value(registry, "stemedb_agent_network_errors_total", {
        interface: "v0",
        direction: "tx",
        kind: "dropped",
      }),
      0,
    );
    const o: NetstatObservation = await once();
    t.true(o.interfaces.every((i) => (i.errors_per_second ?? 0) >= 0));
  },
);
