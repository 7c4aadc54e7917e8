// The errcounters parsers and the cross-check, pure: counters as the kernel prints them (SCSI's
// "0x%llx" from drivers/scsi/scsi_sysfs.c, ext4's "%u"/"%llu" and "%.*s" from fs/ext4/sysfs.c,
// btrfs's error_stats from fs/btrfs/sysfs.c) and garbage (empty, huge, non-hex, truncated), plus
// fast-check properties: no parser throws, every figure is a safe non-negative integer.
import test from "ava";
import fc from "fast-check";
import { devidFromSuperblock } from "../collectors/errcounters/collector.js";
import {
  BEFORE_MS,
  type CounterSample,
  type KernelLogQuery,
  MAX_PENDING,
  PendingRises,
  risesBetween,
} from "../collectors/errcounters/crosscheck.js";
import {
  parseBtrfsErrorStats,
  parseCounter,
  parseEpochSeconds,
  parseExt4Record,
  parseFunctionName,
  show,
} from "../collectors/errcounters/parse.js";

test("counters: SCSI hex and ext4/btrfs decimal, with the newline sysfs adds", (t) => {
  t.is(parseCounter("0x1f\n"), 31);
  t.is(parseCounter("0X1F"), 31);
  t.is(parseCounter("0x0\n"), 0);
  t.is(parseCounter("12\n"), 12);
  t.is(parseCounter("0x1fffffffffffff"), Number.MAX_SAFE_INTEGER);
  t.is(parseCounter("9007199254740991"), Number.MAX_SAFE_INTEGER);
});

test("counters: garbage is null, never a number made up", (t) => {
  for (const bad of [
    "",
    "\n",
    "0x",
    "0xg1",
    "-1",
    "1.5",
    "1e3",
    " 12 34",
    "0x20000000000000", // 2^53: not exactly representable
    "9007199254740992",
    "0xffffffffffffffff",
    "99999999999999999999",
    "12abc",
    "NaN",
    "Infinity",
    "0x1f\n0x2",
    "\u0000",
  ])
    t.is(parseCounter(bad), null, JSON.stringify(bad));
});

test("ext4 times: seconds since the epoch; 0 is never, and far future or garbage is null", (t) => {
  t.is(parseEpochSeconds("1796293766\n"), 1796293766);
  t.is(parseEpochSeconds("0\n"), null);
  t.is(parseEpochSeconds(String(2 ** 40)), null);
  t.is(parseEpochSeconds("yesterday"), null);
});

test("ext4 function names: a C identifier of at most 32 bytes, else null", (t) => {
  t.is(parseFunctionName("trigger_test_error\n"), "trigger_test_error");
  t.is(parseFunctionName("ext4_lookup"), "ext4_lookup");
  t.is(parseFunctionName("\n"), null);
  t.is(parseFunctionName("a".repeat(33)), null);
  t.is(parseFunctionName('evil label"}'), null);
  t.is(parseFunctionName("\u001b[31mred"), null);
  t.is(parseFunctionName("1abc"), null);
});

test("an ext4 record: none when time is 0; 0 fields are absent; a missing file is null", (t) => {
  t.is(parseExt4Record({ time: "0\n", func: "\n", line: "0\n" }), null);
  t.is(parseExt4Record({ time: undefined, func: "x" }), null);
  t.deepEqual(
    parseExt4Record({
      time: "1796293766\n",
      func: "trigger_test_error\n",
      line: "129\n",
      ino: "0\n",
      block: "0\n",
      errcode: "5\n",
    }),
    {
      time_s: 1796293766,
      func: "trigger_test_error",
      line: 129,
      ino: null,
      block: null,
      errcode: 5,
    },
  );
  // Older kernels have no errcode file; a function name of garbage is null, the record stays.
  t.like(parseExt4Record({ time: "1700000000", func: "bad name" }), {
    time_s: 1700000000,
    func: null,
    errcode: null,
  });
});

const STATS = "write_errs 0\nread_errs 3\nflush_errs 0\ncorruption_errs 1\ngeneration_errs 0\n";

test("btrfs error_stats: the five counters, or an error that says what is wrong", (t) => {
  t.deepEqual(parseBtrfsErrorStats(STATS), {
    write: 0,
    read: 3,
    flush: 0,
    corruption: 1,
    generation: 0,
  });
  t.deepEqual(parseBtrfsErrorStats(""), {
    error: "missing write_errs, read_errs, flush_errs, corruption_errs, generation_errs",
  });
  t.deepEqual(parseBtrfsErrorStats(STATS.replace("read_errs 3", "read_errs x")), {
    error: 'read_errs is not a counter: "x"',
  });
  t.deepEqual(parseBtrfsErrorStats(`${STATS}write_errs 1\n`), { error: "6 lines, expected 5" });
  t.deepEqual(parseBtrfsErrorStats(STATS.replace("flush_errs 0", "write_errs 0")), {
    error: "write_errs twice",
  });
  t.deepEqual(parseBtrfsErrorStats(STATS.replace("generation_errs 0\n", "")), {
    error: "missing generation_errs",
  });
  t.true("error" in parseBtrfsErrorStats(STATS.replace("write_errs", "bogus_errs")));
  // Truncated mid-read (a short read of a page): the missing counters are said.
  t.true("error" in parseBtrfsErrorStats(STATS.slice(0, 30)));
});

test("untrusted text in messages is printable and bounded", (t) => {
  t.is(show("a\u0000b\nc"), '"a?b?c"');
  t.is(show("x".repeat(100)).length, 45);
});

test("fuzz: no parser throws; every value is a safe non-negative integer or null", (t) => {
  const text = fc.oneof(
    fc.string({ unit: "binary", maxLength: 200 }),
    fc
      .array(
        fc.constantFrom("0x", "1f", "ff", "9", "write_errs ", "read_errs ", "\n", " ", "-", "0"),
        { maxLength: 40 },
      )
      .map((a) => a.join("")),
  );
  fc.assert(
    fc.property(text, (s) => {
      const v = parseCounter(s);
      const e = parseEpochSeconds(s);
      const f = parseFunctionName(s);
      const b = parseBtrfsErrorStats(s);
      return (
        (v === null || (Number.isSafeInteger(v) && v >= 0)) &&
        (e === null || (Number.isSafeInteger(e) && e > 0)) &&
        (f === null || /^[A-Za-z_]\w{0,31}$/.test(f)) &&
        ("error" in b || Object.values(b).every((x) => Number.isSafeInteger(x) && x >= 0))
      );
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

test("a btrfs superblock's devid, only for this filesystem's btrfs superblock", (t) => {
  const fsid = "39e3d69b-a8b5-4a73-8a85-71f4723089cc";
  const sb = Buffer.alloc(4096);
  Buffer.from(fsid.replace(/-/g, ""), "hex").copy(sb, 32);
  sb.write("_BHRfS_M", 64, "latin1");
  sb.writeBigUInt64LE(2n, 201);
  t.is(devidFromSuperblock(sb, fsid), 2);
  t.is(devidFromSuperblock(sb, "00000000-a8b5-4a73-8a85-71f4723089cc"), null);
  t.is(devidFromSuperblock(sb.subarray(0, 100), fsid), null);
  const other = Buffer.from(sb);
  other.write("XFSB____", 64, "latin1");
  t.is(devidFromSuperblock(other, fsid), null);
  sb.writeBigUInt64LE(2n ** 60n, 201);
  t.is(devidFromSuperblock(sb, fsid), null);
});

const ext4 = (value: number, device = "loop0"): CounterSample => ({
  counter: "ext4_errors",
  device,
  disk: device,
  mountpoint: "/mnt",
  value,
  logged: true,
});

test("rises: the first sample is a baseline, a counter going back is a new baseline", (t) => {
  const a = risesBetween(null, [ext4(3)], 0, 1000);
  t.deepEqual(a.rises, []);
  const b = risesBetween(a.values, [ext4(5), ext4(1, "loop1")], 1000, 2000);
  t.deepEqual(
    b.rises.map((r) => [r.device, r.from, r.to, r.sinceMs, r.atMs]),
    [["loop0", 3, 5, 1000, 2000]],
  );
  const c = risesBetween(b.values, [ext4(0), ext4(1, "loop1")], 2000, 3000);
  t.deepEqual(c.rises, []);
  t.deepEqual(risesBetween(c.values, [ext4(1)], 3000, 4000).rises.length, 1);
});

test("the cross-check waits for its window, then asks the kernel log about the rise's disk", (t) => {
  const asked: Array<[string, number, number]> = [];
  const lines = new Map([["loop0", 0]]);
  const query: KernelLogQuery = (disk, from, to) => {
    asked.push([disk, from, to]);
    return { lines: lines.get(disk) ?? 0, lost: 0, suppressed: 0 };
  };
  const p = new PendingRises(30_000, 10_000);
  const [r] = risesBetween(
    risesBetween(null, [ext4(1)], 0, 100_000).values,
    [ext4(2)],
    100_000,
    115_000,
  ).rises;
  if (!r) return t.fail("no rise");
  t.is(p.add([r, { ...r, logged: false }, { ...r, disk: null }]), 0);
  t.is(p.size, 1, "only rises the kernel always logs, on a known disk, wait");
  // Not before the window (30 s after the sample) and the history flush (10 s) have passed.
  t.deepEqual(p.judge(115_000 + 39_999, query), []);
  const [c] = p.judge(115_000 + 40_000, query);
  t.deepEqual(asked, [["loop0", 100_000 - BEFORE_MS, 145_000]]);
  t.like(c, { lines: 0, fromMs: 95_000, toMs: 145_000 });
  t.is(p.size, 0);
  t.deepEqual(p.judge(10 ** 9, query), [], "judged once");
});

test("the queue of rises is bounded: the oldest go unchecked", (t) => {
  const p = new PendingRises(1000, 0);
  const rise = risesBetween(new Map([["ext4_errors\u0000loop0\u0000/mnt", 0]]), [ext4(1)], 0, 1)
    .rises[0];
  if (!rise) return t.fail("no rise");
  t.is(p.add(Array.from({ length: MAX_PENDING + 7 }, (_, i) => ({ ...rise, atMs: i }))), 7);
  t.is(p.size, MAX_PENDING);
});
