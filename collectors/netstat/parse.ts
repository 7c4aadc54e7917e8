// Pure parsers of the kernel's network counters, and their rates between two samples.
// <proc>/net/snmp and <proc>/net/netstat: pairs of lines "Tcp: Name Name ..." / "Tcp: 1 2 ...";
// <proc>/net/dev: one line per interface "  eth0: rx(8 columns) tx(8 columns)" after two headers.
// Garbage, missing headers and odd names give fewer figures, never a throw.
import type { InterfaceFigures, TcpFigures } from "./observation.js";

/** Sections read at most, and names per section: the files are a few dozen of each. */
const MAX_SECTIONS = 64;
const MAX_KEYS = 512;

/** "Section: header" / "Section: values" pairs, by section and name. Unpaired or bad lines are skipped. */
export function parseSnmpPairs(text: string): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  const header = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const section = line.slice(0, colon);
    const fields = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    const names = header.get(section);
    // A values line is all integers (MaxConn is -1) and follows a header of the same length.
    if (names && fields.length === names.length && fields.every((f) => /^-?\d+$/.test(f))) {
      header.delete(section);
      if (!out.has(section) && out.size >= MAX_SECTIONS) continue;
      const values = out.get(section) ?? new Map<string, number>();
      names.slice(0, MAX_KEYS).forEach((n, i) => {
        const v = Number(fields[i]);
        if (Number.isSafeInteger(v)) values.set(n, v);
      });
      out.set(section, values);
    } else if (fields.length > 0 && fields.every((f) => /^[A-Za-z]\w*$/.test(f))) {
      header.set(section, fields);
    } else header.delete(section);
  }
  return out;
}

/** The kernel's TCP counters since boot. */
export interface TcpCounters {
  readonly out_segs: number;
  readonly retrans_segs: number;
  readonly in_errs: number;
  readonly timeouts: number | null;
}

/** TCP counters from net/snmp (and TCPTimeouts from net/netstat); null without the Tcp: pair. */
export function tcpCounters(snmp: string, netstat: string | null): TcpCounters | null {
  const tcp = parseSnmpPairs(snmp).get("Tcp");
  const out = tcp?.get("OutSegs");
  const retrans = tcp?.get("RetransSegs");
  const inErrs = tcp?.get("InErrs");
  if (out === undefined || retrans === undefined || inErrs === undefined) return null;
  if (out < 0 || retrans < 0 || inErrs < 0) return null;
  const timeouts =
    netstat === null ? undefined : parseSnmpPairs(netstat).get("TcpExt")?.get("TCPTimeouts");
  return {
    out_segs: out,
    retrans_segs: retrans,
    in_errs: inErrs,
    timeouts: timeouts === undefined || timeouts < 0 ? null : timeouts,
  };
}

/** One interface's counters from net/dev. */
export interface InterfaceCounters {
  readonly name: string;
  readonly rx_bytes: number;
  readonly tx_bytes: number;
  readonly rx_errors: number;
  readonly tx_errors: number;
  readonly rx_dropped: number;
  readonly tx_dropped: number;
}

/** Longer names are no kernel's (IFNAMSIZ is 16): the line is skipped as garbage. */
const MAX_NAME = 64;
/** Interfaces read at most (a host with thousands of veths still costs a bounded parse). */
export const MAX_INTERFACES_PARSED = 4096;

/**
 * <proc>/net/dev. The name ends at the last ":" (numbers never hold one; old kernels print
 * "eth0:123" with no space). Loopback is skipped; so is a line without 16 unsigned columns.
 */
export function parseNetDev(text: string): InterfaceCounters[] {
  const out: InterfaceCounters[] = [];
  for (const line of text.split("\n")) {
    if (out.length >= MAX_INTERFACES_PARSED) break;
    const colon = line.lastIndexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    if (name === "" || name === "lo" || name.length > MAX_NAME || /\s/.test(name)) continue;
    const f = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/);
    if (f.length < 16 || !f.slice(0, 16).every((x) => /^\d+$/.test(x))) continue;
    const n = f.slice(0, 16).map(Number);
    if (!n.every(Number.isSafeInteger)) continue;
    out.push({
      name,
      rx_bytes: n[0] as number,
      rx_errors: n[2] as number,
      rx_dropped: n[3] as number,
      tx_bytes: n[8] as number,
      tx_errors: n[10] as number,
      tx_dropped: n[11] as number,
    });
  }
  return out;
}

/** Rates between two TCP samples; null rates on the first sample or when a counter went back. */
export function tcpFigures(
  prev: TcpCounters | null,
  cur: TcpCounters,
  seconds: number | null,
): TcpFigures {
  const ok =
    prev !== null &&
    seconds !== null &&
    seconds > 0 &&
    cur.out_segs >= prev.out_segs &&
    cur.retrans_segs >= prev.retrans_segs;
  const sent = ok ? cur.out_segs - prev.out_segs : 0;
  const retrans = ok ? cur.retrans_segs - prev.retrans_segs : 0;
  return {
    ...cur,
    retrans_per_second: ok ? retrans / seconds : null,
    // OutSegs leaves retransmissions out (RFC 1213; Linux counts a segment there only when it is
    // new), so what went on the wire is the sum: the share stays within 0..1.
    retrans_ratio: ok && sent + retrans > 0 ? retrans / (sent + retrans) : null,
  };
}

const ERROR_FIELDS = ["rx_errors", "tx_errors", "rx_dropped", "tx_dropped"] as const;

/**
 * Interfaces sorted by name with errors and drops per second; null for one first seen or whose
 * counters went back (it was re-created: its counters restarted).
 */
export function interfaceFigures(
  prev: ReadonlyMap<string, InterfaceCounters> | null,
  cur: readonly InterfaceCounters[],
  seconds: number | null,
): InterfaceFigures[] {
  const out = cur.map((c): InterfaceFigures => {
    const p = prev?.get(c.name);
    let rate: number | null = null;
    if (p && seconds !== null && seconds > 0 && !wentBack(p, c)) {
      const d = ERROR_FIELDS.reduce((a, k) => a + (c[k] - p[k]), 0);
      rate = d / seconds;
    }
    return { ...c, errors_per_second: rate };
  });
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Whether any counter of an interface is below its previous value: a reset, not a negative rate. */
export function wentBack(p: InterfaceCounters, c: InterfaceCounters): boolean {
  return (
    c.rx_bytes < p.rx_bytes || c.tx_bytes < p.tx_bytes || ERROR_FIELDS.some((k) => c[k] < p[k])
  );
}
