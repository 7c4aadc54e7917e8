// test/suites.txt sorts every test file into the fast suite (run on every supported Node line)
// or the slow one (the shipped line only): a file missing there would silently run on one line
// only, or nowhere with --fast, so the list must name each file exactly once.
import test from "ava";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./helpers/container.js";

const LIST = readFileSync(join(REPO_ROOT, "test/suites.txt"), "utf8");
const entries = LIST.split("\n")
  .map((l) => l.trim())
  .filter((l) => l !== "" && !l.startsWith("#"))
  .map((l) => {
    const [file = "", kind = "", ...why] = l.split(/\s+/);
    return { file, kind, why: why.join(" ") };
  });

test("every test file is listed in test/suites.txt, once, as fast or slow", (t) => {
  const files = readdirSync(join(REPO_ROOT, "test"))
    .filter((n) => n.endsWith(".test.ts"))
    .sort();
  const listed = entries.map((e) => e.file);
  t.deepEqual(
    files.filter((f) => !listed.includes(f)),
    [],
    "test files missing from test/suites.txt",
  );
  t.deepEqual(
    listed.filter((f) => !files.includes(f)),
    [],
    "test/suites.txt names files that do not exist",
  );
  t.deepEqual(
    listed.filter((f, i) => listed.indexOf(f) !== i),
    [],
    "listed twice",
  );
  t.deepEqual(
    entries.filter((e) => e.kind !== "fast" && e.kind !== "slow").map((e) => e.file),
    [],
    "kind is fast or slow",
  );
  t.deepEqual(
    entries.filter((e) => e.why === "").map((e) => e.file),
    [],
    "each entry says why",
  );
});

test("the fast suite holds no test that boots a container or starts the agent", (t) => {
  const heavy = entries
    .filter((e) => e.kind === "fast" && e.file.endsWith(".test.ts"))
    .filter((e) => {
      const src = readFileSync(join(REPO_ROOT, "test", e.file), "utf8");
      return /\b(bootContainer|startAgent|agentOnce|makeLoopFs|bootDebianRoot)\(/.test(src);
    })
    .map((e) => e.file);
  t.deepEqual(heavy, []);
});
