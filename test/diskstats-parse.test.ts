import test from "ava";
import { deltaU32, diskDelta, iostat } from "../collectors/diskstats/iostat.js";
import { parseDiskstats, parseLine } from "../collectors/diskstats/parse.js";

// Real lines: 20 fields from this machine (kernel 6.x, notes 1.6); 18 and 14 from older kernels' layouts.
const L20 =
  "   7       1 loop1 121 0 4388 9 19361 6576 357144 4207 0 4128 7899 2 0 2097160 0 12897 3682";
const L18 =
  "   8       0 sda 9170 4061 490366 5880 51200 60000 900000 70000 0 45000 75880 10 0 2000 5";
const L14 = "   8      16 sdb 4200 12 67000 3100 8100 900 120000 9000 0 7000 12100";

test("20-, 18- and 14-field lines parse, with discard and flush only where printed", (t) => {
  const r = parseDiskstats([L20, L18, L14].join("\n"));
  t.deepEqual(r.problems, []);
  const [a, b, c] = r.disks;
  t.like(a, {
    device: "loop1",
    major: 7,
    minor: 1,
    fields: 17,
    writes: 19361,
    writesMerged: 6576,
    writeMs: 4207,
    weightedMs: 7899,
    discard: { completed: 2, merged: 0, sectors: 2097160, ms: 0 },
    flush: { completed: 12897, ms: 3682 },
  });
  t.like(b, { device: "sda", fields: 15, discard: { completed: 10, sectors: 2000, ms: 5 } });
  t.is(b?.flush, undefined);
  t.like(c, { device: "sdb", fields: 11, reads: 4200, sectorsWritten: 120000, weightedMs: 12100 });
  t.is(c?.discard, undefined);
});

test("the old 7-field partition form is skipped quietly; garbage is reported per line, never thrown", (t) => {
  const text = [
    "   3    1 hda1 35486 38030 38030 38030",
    L20,
    "garbage here",
    "   8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 -17",
    "   8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 99999999999999999999",
    `   8 0 ${"x".repeat(300)} 1 2 3 4 5 6 7 8 9 10 11`,
    "   8 0 s\u0000da 1 2 3 4 5 6 7 8 9 10 11",
    "x".repeat(5000),
    "",
  ].join("\n");
  const r = parseDiskstats(text);
  t.is(r.disks.length, 1);
  t.is(r.problems.length, 6, r.problems.join("\n"));
  t.regex(r.problems[0] ?? "", /^line 3: expected 14, 18 or 20 fields, got 2$/);
  t.regex(r.problems[1] ?? "", /^line 4: field 20 of sda is not an unsigned integer: "-17"$/);
  t.regex(r.problems[2] ?? "", /^line 5: field 20 of sda is out of range/);
  t.regex(r.problems[3] ?? "", /^line 6: implausible device name/);
});

test("odd but real device names parse", (t) => {
  for (const name of [
    "nvme0n1p1",
    "dm-0",
    "md127",
    "cciss!c0d0",
    "mmcblk0p1",
    "sr0",
    "vdb",
    "zd16",
    "loop12",
    "bcache0",
  ]) {
    const r = parseLine(`  9 0 ${name} 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17`);
    t.is(typeof r === "object" && r !== null ? r.device : r, name);
  }
});

test("names with '/' (cciss/c0d0) are kept, spelt as sysfs spells them (cciss!c0d0); empty parts are not", (t) => {
  // /proc/diskstats of a Smart Array host (cciss driver; kernel prints disk->disk_name as is).
  const names: Array<[string, string]> = [
    ["cciss/c0d0", "cciss!c0d0"],
    ["cciss/c0d0p1", "cciss!c0d0p1"],
    ["ida/c0d1", "ida!c0d1"],
    ["rd/c0d0p2", "rd!c0d0p2"],
  ];
  for (const [printed, label] of names) {
    const r = parseLine(`104 0 ${printed} 1 2 3 4 5 6 7 8 9 10 11`);
    t.is(typeof r === "object" && r !== null ? r.device : r, label, printed);
  }
  for (const bad of ["/sda", "cciss/", "cciss//c0d0", "/"]) {
    const r = parseLine(`8 0 ${bad} 1 2 3 4 5 6 7 8 9 10 11`);
    t.regex(typeof r === "string" ? r : "parsed", /^implausible device name/, bad);
  }
});

test("iostat figures of the notes' fio run match sysstat's printed row to its precision", (t) => {
  // Snapshots A and B bracketing one 12 s `iostat -y -x -d loop1 12 1`.
  const A = parseLine(
    "  7 1 loop1 121 0 4388 9 19361 6576 357144 4207 0 4128 7899 2 0 2097160 0 12897 3682",
  );
  const B = parseLine(
    "  7 1 loop1 121 0 4388 9 33235 11199 542056 7319 0 7156 13635 2 0 2097160 0 22145 6307",
  );
  if (typeof A !== "object" || A === null || typeof B !== "object" || B === null) return t.fail();
  const d = diskDelta(A, B);
  if (!d) return t.fail();
  const f = iostat(d, 12);
  // iostat printed: w/s 1156.17 wkB/s 7704.67 wrqm/s 385.25 w_await 0.22 wareq-sz 6.66 f/s 770.67
  // f_await 0.28 aqu-sz 0.48 %util 25.23
  t.is(f.w_s.toFixed(2), "1156.17");
  t.is(f.wkB_s.toFixed(2), "7704.67");
  t.is(f.wrqm_s.toFixed(2), "385.25");
  t.is(f.w_await_ms?.toFixed(2), "0.22");
  t.is(f.wareq_sz_kB?.toFixed(2), "6.66");
  t.is(f.f_s.toFixed(2), "770.67");
  t.is(f.f_await_ms?.toFixed(2), "0.28");
  t.is(f.aqu_sz.toFixed(2), "0.48");
  t.is(f.util_pct.toFixed(2), "25.23");
  t.is(f.r_s, 0);
  t.is(f.r_await_ms, null, "no reads: no read latency (iostat prints 0.00)");
});

test("u32 time fields wrap; a 64-bit counter going back is a reset with no figures", (t) => {
  t.is(deltaU32(2 ** 32 - 10, 5), 15);
  t.is(deltaU32(100, 250), 150);
  const a = parseLine(
    `  8 0 sda 100 0 800 ${2 ** 32 - 100} 100 0 800 ${2 ** 32 - 50} 0 ${2 ** 32 - 20} ${2 ** 32 - 1}`,
  );
  const b = parseLine("  8 0 sda 110 0 880 400 120 0 960 150 0 980 999");
  if (typeof a !== "object" || !a || typeof b !== "object" || !b) return t.fail();
  const d = diskDelta(a, b);
  t.like(d, { reads: 10, readMs: 500, writes: 20, writeMs: 200, ioMs: 1000, weightedMs: 1000 });
  if (d) t.is(iostat(d, 1).r_await_ms, 50);
  const reset = parseLine("  8 0 sda 5 0 40 4 6 0 48 6 0 10 10");
  if (typeof reset !== "object" || !reset) return t.fail();
  t.is(diskDelta(b, reset), null);
  const renumbered = parseLine("  8 16 sda 200 0 880 400 120 0 960 150 0 980 999");
  if (typeof renumbered !== "object" || !renumbered) return t.fail();
  t.is(diskDelta(b, renumbered), null, "same name, other major:minor: a different device");
});
