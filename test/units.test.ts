import test from "ava";
import { formatDuration, formatSize, parseDuration, parseSize } from "../core/config/units.js";

test("durations parse in every unit and compound forms", (t) => {
  const cases: Array<[string, number]> = [
    ["500ms", 500],
    ["10s", 10_000],
    ["10m", 600_000],
    ["1h30m", 5_400_000],
    ["7d", 604_800_000],
    ["1.5s", 1500],
    ["0", 0],
    [" 2h ", 7_200_000],
  ];
  for (const [s, v] of cases) t.deepEqual(parseDuration(s), { ok: true, value: v }, s);
});

test("bad durations are refused with the offending text in the reason", (t) => {
  for (const s of ["10", "10x", "", "m", "-5s", "10 m", "1h-30m", "1e3s", "99999999d"]) {
    const r = parseDuration(s);
    t.false(r.ok, s);
    if (!r.ok) t.true(r.reason.includes(JSON.stringify(s)), r.reason);
  }
});

test("durations format back to the shortest exact text", (t) => {
  for (const [v, s] of [
    [600_000, "10m"],
    [5_400_000, "1h30m"],
    [1500, "1s500ms"],
    [0, "0s"],
    [86_400_000, "1d"],
  ] as const) {
    t.is(formatDuration(v), s);
    t.deepEqual(parseDuration(s), { ok: true, value: v });
  }
});

test("sizes parse binary and decimal units", (t) => {
  const cases: Array<[string, number]> = [
    ["64MiB", 67_108_864],
    ["4KiB", 4096],
    ["10MB", 10_000_000],
    ["512", 512],
    ["1.5GiB", 1_610_612_736],
    ["7B", 7],
  ];
  for (const [s, v] of cases) t.deepEqual(parseSize(s), { ok: true, value: v }, s);
  for (const s of ["64MB/s", "lots", "-1KiB", "1XiB", ""]) t.false(parseSize(s).ok, s);
  t.is(formatSize(67_108_864), "64MiB");
  t.is(formatSize(1000), "1000B");
});
