// Short lines (issue 18): Prettier (width 100) does not break strings, templates, regexes or
// comments, so this holds the rest of the source to 120 characters. A line holding a URL may be
// longer: a URL is not split.
import test from "ava";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./helpers/container.js";

const MAX = 120;

test("no line of the tracked TypeScript and JavaScript source is over 120 characters", (t) => {
  const files = execFileSync("git", ["ls-files", "-z", "--", "*.ts", "*.js"], {
    cwd: REPO_ROOT,
    encoding: "utf8",
  })
    .split("\0")
    .filter((f) => f !== "" && existsSync(join(REPO_ROOT, f)));
  t.true(files.length > 50, "git ls-files listed the sources");
  const long: string[] = [];
  for (const file of files) {
    const lines = readFileSync(join(REPO_ROOT, file), "utf8").split("\n");
    lines.forEach((line, i) => {
      if (line.length > MAX && !/\bhttps?:\/\//.test(line)) {
        long.push(`${file}:${i + 1} (${line.length} characters)`);
      }
    });
  }
  t.deepEqual(long, [], `lines over ${MAX} characters:\n${long.join("\n")}`);
});
