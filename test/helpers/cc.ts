// Test programs written in C (stand-in databases with threads): compiled once per test file.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

/** Compiles `source` into `dir/name` (gcc -O0 -pthread); throws with gcc's message on failure. */
export function compileC(dir: string, name: string, source: string): string {
  const src = join(dir, `${name}.c`);
  writeFileSync(src, source);
  const bin = join(dir, name);
  const r = spawnSync("gcc", ["-O0", "-pthread", "-o", bin, src], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`gcc: ${r.stderr}`);
  return bin;
}
