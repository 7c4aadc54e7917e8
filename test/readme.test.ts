// The README's configuration reference must name every key the agent accepts.
import { readFileSync } from "node:fs";
import test from "ava";
import { parse } from "smol-toml";
import { loadConfig, printConfig } from "../core/config/load.js";

const README = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

function keys(obj: Record<string, unknown>, prefix = ""): string[] {
  return Object.entries(obj).flatMap(([k, v]) =>
    typeof v === "object" && v !== null && !Array.isArray(v)
      ? keys(v as Record<string, unknown>, `${prefix}${k}.`)
      : [`${prefix}${k}`],
  );
}

test("every configuration key is documented in the README under its section", (t) => {
  const r = loadConfig({ env: {}, defaultFile: "/nonexistent" });
  if (!r.ok) return t.fail();
  const all = keys(parse(printConfig(r.loaded.config)));
  const common = new Set(["enabled", "interval", "timeout", "jitter"]);
  const missing: string[] = [];
  for (const key of all) {
    const i = key.lastIndexOf(".");
    const section = key.slice(0, i);
    const name = key.slice(i + 1);
    const start = README.indexOf(`### \`[${section}]\``);
    if (start < 0) {
      missing.push(`${key} (no section [${section}])`);
      continue;
    }
    const end = README.indexOf("\n### ", start + 1);
    const body = README.slice(start, end < 0 ? undefined : end);
    // enabled/interval/timeout/jitter are described once for all periodic collectors.
    if (
      !body.includes(`| \`${name}\` |`) &&
      !(common.has(name) && section.startsWith("collectors."))
    )
      missing.push(key);
  }
  t.deepEqual(missing, []);
});

test("the quick start is exactly the two documented commands and CI runs the second", (t) => {
  const qs = README.slice(
    README.indexOf("## Quick start"),
    README.indexOf("## What it does today"),
  );
  const blocks = [...qs.matchAll(/```sh\n([^`]*)```/g)].map((m) => (m[1] ?? "").trim());
  t.deepEqual(blocks, ["npm ci && npm start", "npm ci && npm test"]);
  const ci = readFileSync(new URL("../../.ci/run", import.meta.url), "utf8");
  t.true(ci.includes("npm ci && npm test"));
});
