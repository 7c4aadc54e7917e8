// docs/architecture.md is the map a newcomer reads: every path it names must exist, and every
// source directory must be on it, so the picture and the tree cannot drift apart.
import test from "ava";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { REPO_ROOT } from "./helpers/container.js";

const DOC = readFileSync(join(REPO_ROOT, "docs/architecture.md"), "utf8");
const LAYERS = ["core", "collectors", "judge", "remediators", "agent"];

function sourceDirs(dir: string): string[] {
  const out: string[] = [];
  const entries = readdirSync(dir);
  if (entries.some((n) => n.endsWith(".ts"))) out.push(relative(REPO_ROOT, dir));
  for (const n of entries) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...sourceDirs(p));
  }
  return out;
}

test("every path docs/architecture.md names exists", (t) => {
  const named = [...DOC.matchAll(/`([a-z_][a-z0-9_.-]*(?:\/[a-z0-9_.*<>-]*)+)`/gi)]
    .map((m) => m[1]!)
    .filter((p) => !p.includes("<") && !p.includes("*") && !p.startsWith("/"));
  t.true(named.length > 30, `only ${named.length} paths found: the pattern is broken`);
  const missing = named.filter((p) => !existsSync(join(REPO_ROOT, p)));
  t.deepEqual(missing, []);
});

test("every source directory is on the map", (t) => {
  const dirs = LAYERS.filter((l) => existsSync(join(REPO_ROOT, l))).flatMap((l) =>
    sourceDirs(join(REPO_ROOT, l)),
  );
  const absent = dirs.filter((d) => !DOC.includes(`| \`${d}/\` |`));
  t.deepEqual(absent, []);
});

test("every source file is on the map, under its directory", (t) => {
  const files = LAYERS.filter((l) => existsSync(join(REPO_ROOT, l)))
    .flatMap((l) => sourceDirs(join(REPO_ROOT, l)))
    .flatMap((d) =>
      readdirSync(join(REPO_ROOT, d))
        .filter((n) => n.endsWith(".ts"))
        .map((n) => `${d}/${n}`),
    );
  // Files are listed by name in their directory's line: `dir/` then `name.ts`.
  const absent = files.filter((f) => {
    const dir = f.slice(0, f.lastIndexOf("/") + 1);
    const name = f.slice(dir.length);
    const line = DOC.split("\n").find((l) => l.startsWith(`| \`${dir}\` |`));
    return line === undefined || !line.includes(`\`${name}\``);
  });
  t.deepEqual(absent, []);
});
