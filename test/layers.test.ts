// The layers import downwards only: core <- collectors <- judge <- remediators <- agent (the app).
// A test rather than a lint plugin: the rule is five lines of data and needs no dependency.
import test from "ava";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { REPO_ROOT } from "./helpers/container.js";

/** What each layer may import (besides itself and npm packages). */
const MAY_IMPORT: Record<string, readonly string[]> = {
  core: [],
  collectors: ["core"],
  judge: ["core", "collectors"],
  remediators: ["core", "collectors", "judge"],
  agent: ["core", "collectors", "judge", "remediators"],
};

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

function relativeImports(file: string): string[] {
  const src = readFileSync(file, "utf8");
  const specs = [...src.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)];
  return specs.map((m) => relative(REPO_ROOT, normalize(join(dirname(file), m[1]!))));
}

test("every import points down the layers", (t) => {
  const wrong: string[] = [];
  let checked = 0;
  for (const [layer, allowed] of Object.entries(MAY_IMPORT)) {
    let files: string[];
    try {
      files = sources(join(REPO_ROOT, layer));
    } catch {
      continue; // a layer that does not exist yet
    }
    for (const f of files) {
      for (const target of relativeImports(f)) {
        checked++;
        const top = target.split("/")[0]!;
        if (top !== layer && !allowed.includes(top)) {
          wrong.push(`${relative(REPO_ROOT, f)} imports ${target}`);
        }
      }
    }
  }
  t.true(checked > 100, `only ${checked} imports seen: the walk is broken`);
  t.deepEqual(wrong, []);
});

test("the installer and the package carry every layer", (t) => {
  const install = readFileSync(join(REPO_ROOT, "scripts/install.sh"), "utf8");
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
    files: string[];
  };
  for (const layer of Object.keys(MAY_IMPORT)) {
    t.regex(install, new RegExp(`cp -a [^\\n]*dist/${layer} `), `install.sh copies dist/${layer}`);
    t.true(pkg.files.includes(`dist/${layer}`), `package.json files has dist/${layer}`);
  }
});
