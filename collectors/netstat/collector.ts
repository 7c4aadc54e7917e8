// netstat: TCP retransmits and errors (`netstat -s`) and interface errors and drops
// (`ip -s link`), from <proc>/net/snmp, <proc>/net/netstat and <proc>/net/dev: the agent's own
// network namespace, as /proc/net is. Three small reads per run; the parsing is pure (parse.ts).
import { performance } from "node:perf_hooks";
import type { CollectContext, Collector } from "../../core/collector.js";
import { errorMessage } from "../../core/errors.js";
import { Host } from "../../core/host/host.js";
import type { NetstatObservation } from "./observation.js";
import {
  type InterfaceCounters,
  interfaceFigures,
  parseNetDev,
  type TcpCounters,
  tcpCounters,
  tcpFigures,
} from "./parse.js";

export interface NetstatOptions {
  readonly procPath: string;
}

export class NetstatCollector implements Collector<NetstatObservation> {
  readonly name = "netstat";
  readonly onceWarmupMs = 1000;
  private readonly host: Host;
  private lastAt: number | null = null;
  private lastTcp: TcpCounters | null = null;
  private lastDev: Map<string, InterfaceCounters> | null = null;

  constructor(private readonly opts: NetstatOptions) {
    this.host = new Host({ procPath: opts.procPath });
  }

  collect(_ctx: CollectContext): Promise<NetstatObservation> {
    // The executor's throw becomes the rejection: a failed read is a failed run, not a crash.
    return new Promise((resolve) => resolve(this.sample()));
  }

  private sample(): NetstatObservation {
    const snmp = this.read("net/snmp");
    const dev = this.read("net/dev");
    if (typeof snmp !== "string" && typeof dev !== "string")
      throw new Error(`${snmp.error}; ${dev.error}`);
    const ext = this.read("net/netstat");
    const at = performance.now();
    const seconds = this.lastAt === null ? null : (at - this.lastAt) / 1000;
    const tcpNow =
      typeof snmp === "string" ? tcpCounters(snmp, typeof ext === "string" ? ext : null) : null;
    const devNow = typeof dev === "string" ? parseNetDev(dev) : null;
    const tcp = tcpNow === null ? null : tcpFigures(this.lastTcp, tcpNow, seconds);
    const interfaces = devNow === null ? [] : interfaceFigures(this.lastDev, devNow, seconds);
    this.lastAt = at;
    this.lastTcp = tcpNow;
    this.lastDev = devNow === null ? null : new Map(devNow.map((d) => [d.name, d]));
    return { interval_seconds: seconds, tcp, interfaces };
  }

  private read(name: string): string | { error: string } {
    try {
      return this.host.read(name);
    } catch (e) {
      return { error: `cannot read ${this.opts.procPath}/${name}: ${errorMessage(e)}` };
    }
  }
}
