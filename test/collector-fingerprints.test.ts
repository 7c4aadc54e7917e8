// A reload rebuilds a collector exactly when the options it is built from change: fingerprints
// are computed from each factory's options, never written by hand.
import test from "ava";
import { collectorFingerprints, collectorOptions } from "../collectors/index.js";
import { loadConfig } from "../core/config/load.js";
import type { Config } from "../core/config/schema.js";
import { fingerprint } from "../core/fingerprint.js";

function defaults(): Config {
  const r = loadConfig({ env: {}, defaultFile: "/nonexistent" });
  if (!r.ok) throw new Error(r.problems.join("\n"));
  return r.loaded.config;
}

/** Every leaf of the configuration, as a path of keys. */
function leaves(v: unknown, path: string[] = []): string[][] {
  if (v && typeof v === "object" && !Array.isArray(v))
    return Object.entries(v).flatMap(([k, x]) => leaves(x, [...path, k]));
  return [path];
}

/** The configuration with one leaf changed (strings, numbers, booleans, arrays). */
function changed(c: Config, path: string[]): Config {
  const copy = structuredClone(c) as unknown as Record<string, unknown>;
  let o = copy;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string, unknown>;
  const key = path[path.length - 1] as string;
  const v = o[key];
  o[key] =
    typeof v === "string"
      ? `${v}x`
      : typeof v === "number"
        ? v + 1
        : typeof v === "boolean"
          ? !v
          : Array.isArray(v)
            ? [...(v as unknown[]), v.length > 0 ? v[0] : "/x"]
            : v;
  return copy as unknown as Config;
}

test("a changed option always changes the fingerprint, and nothing else does", (t) => {
  const base = defaults();
  // Every collector on, so each factory's options are looked at.
  for (const s of Object.values(base.collectors)) (s as { enabled: boolean }).enabled = true;
  const before = collectorFingerprints(base);
  const opts = collectorOptions(base);
  t.true(before.size >= 7);
  for (const path of leaves(base)) {
    if (path.at(-1) === "enabled") continue;
    const next = changed(base, path);
    const after = collectorFingerprints(next);
    const nextOpts = collectorOptions(next);
    for (const [name, fp] of before) {
      const optsChanged = fingerprint(opts.get(name)) !== fingerprint(nextOpts.get(name));
      t.is(
        after.get(name) !== fp,
        optsChanged,
        `${path.join(".")} -> ${name}: options ${optsChanged ? "changed" : "same"}`,
      );
    }
  }
});

test("changing host.proc_path rebuilds smart (it decides isolation from <proc>/self/status)", (t) => {
  const base = defaults();
  base.collectors.smart.enabled = true;
  const next = changed(base, ["host", "proc_path"]);
  t.not(collectorFingerprints(next).get("smart"), collectorFingerprints(base).get("smart"));
});

test("a schedule-only change (interval, jitter) rebuilds nothing", (t) => {
  const base = defaults();
  for (const s of Object.values(base.collectors)) (s as { enabled: boolean }).enabled = true;
  const before = collectorFingerprints(base);
  for (const path of [
    ["collectors", "diskstats", "interval"],
    ["collectors", "smart", "jitter"],
    ["collectors", "wal", "timeout"],
  ]) {
    const after = collectorFingerprints(changed(base, path));
    t.deepEqual([...after], [...before], path.join("."));
  }
});

test("fingerprints do not depend on key order and tell undefined from absent", (t) => {
  t.is(
    fingerprint({ a: 1, b: [2, { d: 1, c: 2 }] }),
    fingerprint({ b: [2, { c: 2, d: 1 }], a: 1 }),
  );
  t.not(fingerprint({ a: undefined }), fingerprint({}));
});
