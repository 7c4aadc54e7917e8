// Property-based fuzzing of the network counter parsers (net/snmp, net/netstat, net/dev) and
// their rates (fast-check). On failure fast-check prints the seed and the shrunk counterexample.
import test from "ava";
import fc from "fast-check";
import {
  type InterfaceCounters,
  interfaceFigures,
  parseNetDev,
  parseSnmpPairs,
  tcpCounters,
  tcpFigures,
} from "../collectors/netstat/parse.js";

const RUNS = 3000;

const safeNat = (n: number) => Number.isSafeInteger(n) && n >= 0;

const junk = fc.oneof(
  fc.string({ unit: "binary", maxLength: 300 }),
  fc
    .array(
      fc.constantFrom(
        "Tcp:",
        "TcpExt:",
        " OutSegs",
        " RetransSegs",
        " InErrs",
        " TCPTimeouts",
        " 1",
        " -1",
        " 1e400",
        " 99999999999999999999",
        "\n",
        ":",
        "lo:",
        "eth0:",
        " 0",
        "|",
      ),
      { maxLength: 60 },
    )
    .map((a) => a.join("")),
);

test("fuzz: the snmp/netstat/dev parsers never throw; every figure is a safe non-negative integer", (t) => {
  fc.assert(
    fc.property(junk, junk, (a, b) => {
      parseSnmpPairs(a);
      const tcp = tcpCounters(a, b);
      const dev = parseNetDev(a);
      return (
        (tcp === null ||
          (safeNat(tcp.out_segs) &&
            safeNat(tcp.retrans_segs) &&
            safeNat(tcp.in_errs) &&
            (tcp.timeouts === null || safeNat(tcp.timeouts)))) &&
        dev.every(
          (i) =>
            i.name !== "lo" &&
            i.name.length > 0 &&
            [i.rx_bytes, i.tx_bytes, i.rx_errors, i.tx_errors, i.rx_dropped, i.tx_dropped].every(
              safeNat,
            ),
        )
      );
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

/** Names the kernel allows (no "/", ":" or space; at most 15 bytes) and some it does not. */
// "lo" is skipped by the parser, so none of the three may make it (the pattern did, now and then).
const ifName = fc
  .oneof(
    fc.stringMatching(/^[a-z][a-z0-9._@-]{0,14}$/),
    fc.constantFrom("eth0.100", "a-very-long-nm1", "br:lan", "x:y:z", "veth1a2b3c4d5e6"),
    fc.string({ minLength: 1, maxLength: 64 }).map((s) => s.replace(/[\s:]/g, "_")),
  )
  .filter((s) => s !== "lo" && s.length > 0);
const counters = fc.array(fc.oneof(fc.nat(), fc.maxSafeNat()), { minLength: 16, maxLength: 16 });

test("fuzz: a net/dev of any interface names, padded or not, gives back each name and its six counters", (t) => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.tuple(ifName, counters, fc.boolean()), {
        selector: ([n]) => n,
        maxLength: 20,
      }),
      (ifs) => {
        const text =
          "Inter-|   Receive    |  Transmit\n face |bytes packets|bytes packets\n" +
          ifs
            .map(([n, c, pad]) => `${pad ? n.padStart(6) : n}:${pad ? " " : ""}${c.join(" ")}\n`)
            .join("");
        const got = parseNetDev(text);
        return (
          got.length === ifs.length &&
          ifs.every(([n, c], i) => {
            const g = got[i];
            return (
              g !== undefined &&
              g.name === n &&
              g.rx_bytes === c[0] &&
              g.rx_errors === c[2] &&
              g.rx_dropped === c[3] &&
              g.tx_bytes === c[8] &&
              g.tx_errors === c[10] &&
              g.tx_dropped === c[11]
            );
          })
        );
      },
    ),
    { numRuns: RUNS },
  );
  t.pass();
});

const iface = (name: string) =>
  fc.record({
    name: fc.constant(name),
    rx_bytes: fc.nat(),
    tx_bytes: fc.nat(),
    rx_errors: fc.nat(),
    tx_errors: fc.nat(),
    rx_dropped: fc.nat(),
    tx_dropped: fc.nat(),
  });

test("fuzz: rates between any two samples are null or non-negative; shares stay within 0..1", (t) => {
  const tcp = fc.record({
    out_segs: fc.nat(),
    retrans_segs: fc.nat(),
    in_errs: fc.nat(),
    timeouts: fc.option(fc.nat()),
  });
  fc.assert(
    fc.property(
      fc.option(tcp),
      tcp,
      fc.option(fc.double({ min: 0, max: 3600, noNaN: true })),
      fc.array(iface("eth0"), { maxLength: 1 }),
      fc.array(iface("eth0"), { maxLength: 1 }),
      (prev, cur, seconds, before, after) => {
        const f = tcpFigures(prev, cur, seconds);
        const prevMap = new Map<string, InterfaceCounters>(before.map((i) => [i.name, i]));
        const ifs = interfaceFigures(prevMap, after, seconds);
        return (
          (f.retrans_per_second === null || f.retrans_per_second >= 0) &&
          (f.retrans_ratio === null || (f.retrans_ratio >= 0 && f.retrans_ratio <= 1)) &&
          ifs.every((i) => i.errors_per_second === null || i.errors_per_second >= 0)
        );
      },
    ),
    { numRuns: RUNS },
  );
  t.pass();
});
