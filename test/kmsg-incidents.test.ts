// One failure, one incident: real sequences from public reports, through classify and the grouper.
import test from "ava";
import { classify } from "../collectors/kmsg/classify.js";
import { type Incident, IncidentGrouper } from "../collectors/kmsg/incidents.js";

/** Lines as one disk's kernel log prints them, `gap` ms apart; devices as printed (no sysfs). */
function group(lines: string[], gap = 1, g = new IncidentGrouper()): Incident[] {
  let t = 1_000;
  for (const l of lines) {
    const c = classify(l);
    t += gap;
    if (!c || "suppressed" in c || c.count === 0) continue;
    const disk = (c.device ?? "unknown").replace(/\d+$/, "") || "unknown"; // sdb6 -> sdb, as the resolver would
    g.add({
      device: disk,
      class: c.class,
      severity: c.severity,
      atMs: t,
      wallMs: 0,
      line: l,
      ...(c.sector ? { sector: c.sector } : {}),
      ...(c.request ? { request: c.request } : {}),
      ...(c.repeats ? { repeats: true as const } : {}),
    });
  }
  return g.flush(0, true);
}

test("one failed SCSI request (sense key, additional sense, block layer, buffer I/O) is one incident, crit", (t) => {
  // https://github.com/openebs/openebs/issues/1433
  const inc = group([
    "sd 3:0:0:0: [sdb] tag#3 FAILED Result: hostbyte=DID_OK driverbyte=DRIVER_SENSE",
    "sd 3:0:0:0: [sdb] tag#3 Sense Key : Medium Error [current] ",
    "sd 3:0:0:0: [sdb] tag#3 Add. Sense: Unrecovered read error",
    "sd 3:0:0:0: [sdb] tag#3 CDB: Write(10) 2a 00 00 00 14 88 00 00 08 00",
    "blk_update_request: critical medium error, dev sdb, sector 5256",
    "Buffer I/O error on dev sdb, logical block 657, lost async page write",
  ]);
  t.is(inc.length, 1);
  t.like(inc[0], {
    device: "sdb",
    severity: "crit",
    lines: 4,
    sectors: ["5256"],
    requests: ["tag#3"],
  });
  t.deepEqual(inc[0]?.classes, { scsi_medium_error: 2, blk_medium_error: 1, buffer_io_error: 1 });
});

test("two failed requests in the same second are two incidents, each with its own tag and sector", (t) => {
  // https://github.com/longhorn/longhorn/issues/1920 (the first block line's sense lines are before the quote)
  const inc = group([
    "blk_update_request: critical medium error, dev sde, sector 3260792 op 0x0:(READ) flags 0x80700 " +
      "phys_seg 211 prio class 0",
    "sd 3:0:0:1: [sde] tag#40 Sense Key : Medium Error [current]",
    "sd 3:0:0:1: [sde] tag#40 Add. Sense: Unrecovered read error",
    "blk_update_request: critical medium error, dev sde, sector 3262904 op 0x0:(READ) flags 0x80700 " +
      "phys_seg 6 prio class 0",
    "sd 3:0:0:1: [sde] tag#20 Sense Key : Medium Error [current]",
    "sd 3:0:0:1: [sde] tag#20 Add. Sense: Unrecovered read error",
    "blk_update_request: critical medium error, dev sde, sector 3258232 op 0x0:(READ) flags 0x84700 " +
      "phys_seg 320 prio class 0",
  ]);
  t.deepEqual(
    inc.map((i) => [i.sectors, i.requests]),
    [
      [["3260792"], []],
      [["3262904"], ["tag#40"]],
      [["3258232"], ["tag#20"]],
    ],
  );
});

test("the same sector failing again within the window is the same incident; after it, a new one", (t) => {
  const line = "print_req_error: critical medium error, dev sdc, sector 7988224";
  t.is(group([line, line, line], 1_000).length, 1);
  t.is(group([line, line], 6_000).length, 2, "6 s apart: the window is 5 s");
  t.is(
    group([
      "I/O error, dev sdc, sector 1 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0",
      "I/O error, dev sdc, sector 2 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0",
    ]).length,
    2,
    "two sectors, two failed requests",
  );
});

test("xfs_log_force repeating every 30 s after a shutdown is one incident, not one per reminder", (t) => {
  // https://github.com/xcat2/xcat-core/issues/1175
  const inc = group(
    Array.from({ length: 9 }, () => "XFS (dm-0): xfs_log_force: error -5 returned."),
    30_000,
  );
  t.is(inc.length, 1);
  t.like(inc[0], { severity: "crit", lines: 9 });
});

test("incidents close a few seconds after their last line, by record time or wall clock", (t) => {
  const g = new IncidentGrouper();
  g.add({
    device: "sdb",
    class: "blk_io_error",
    severity: "error",
    atMs: 0,
    wallMs: 0,
    line: "x",
    sector: "1",
  });
  t.deepEqual(g.flush(1_000), [], "still open");
  g.add({
    device: "sdb",
    class: "buffer_io_error",
    severity: "crit",
    atMs: 500,
    wallMs: 500,
    line: "y",
  });
  const closed = g.flush(6_000);
  t.is(closed.length, 1);
  t.like(closed[0], { severity: "crit", lines: 2 }, "the worst severity of its lines");
  g.add({
    device: "sdc",
    class: "blk_io_error",
    severity: "error",
    atMs: 10,
    wallMs: 7_000,
    line: "z",
  });
  g.add({
    device: "sdd",
    class: "blk_io_error",
    severity: "error",
    atMs: 20_000,
    wallMs: 7_001,
    line: "z",
  });
  t.deepEqual(
    g.flush(7_002).map((i) => i.device),
    ["sdc"],
    "a later record on another disk closes it",
  );
});
