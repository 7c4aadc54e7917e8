// Shared pieces of the fault-injection tests (test/faults-*.test.ts): a prepared /proc tree whose
// diskstats counters the test moves, and reading single values from a /metrics scrape.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fetchText, QUIET_COLLECTORS } from "./agent-process.js";

/** A diskstats line (kernel 5.5+ layout, 20 fields) for `device` with its counters scaled by `n`. */
export function diskstatsLine(device: string, n: number, minor = 0): string {
  // reads, merged, sectors, ms, writes, merged, sectors, ms, in flight, io ms, weighted ms,
  // discards x4, flushes, flush ms
  const f = [
    10 * n,
    0,
    80 * n,
    5 * n,
    20 * n,
    0,
    160 * n,
    40 * n,
    0,
    30 * n,
    45 * n,
    0,
    0,
    0,
    0,
    n,
    2 * n,
  ];
  return `   8       ${minor} ${device} ${f.join(" ")}`;
}

/** A prepared procfs tree: diskstats with one disk, and self/mountinfo. Returns its root. */
export function procTree(dir: string): { root: string; tick: (n: number) => void } {
  const root = join(dir, "proc");
  mkdirSync(join(root, "self"), { recursive: true });
  writeFileSync(
    join(root, "self", "mountinfo"),
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n",
  );
  const tick = (n: number) =>
    writeFileSync(join(root, "diskstats"), `${diskstatsLine("sda", n)}\n`);
  tick(1);
  return { root, tick };
}

/** Config that runs only the diskstats collector, over a prepared proc tree and an empty sysfs. */
export function diskstatsOnly(proc: string, sys: string, extra = ""): string {
  mkdirSync(join(sys, "block"), { recursive: true });
  // Every other collector off: the shared list, so a new collector cannot slip in here.
  const off = QUIET_COLLECTORS.replace("[collectors.diskstats]\nenabled = false\n", "");
  return `[host]\nproc_path = "${proc}"\nsys_path = "${sys}"\n[collectors.diskstats]\ninterval = "1s"\n${off}${extra}`;
}

/** The value of one sample in Prometheus text (`name{labels}` exactly as exposed), or undefined. */
export function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

export async function scrape(url: string): Promise<{ status: number; text: string }> {
  const r = await fetchText(`${url}/metrics`);
  return { status: r.status, text: r.text };
}

/** Polls `check` every `everyMs` until it returns a value other than undefined/false, or throws after `timeoutMs`. */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  everyMs = 200,
): Promise<T> {
  const end = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (performance.now() > end)
      throw new Error(
        `not within ${timeoutMs} ms: ` +
          `${what}${last ? ` (last error: ${last instanceof Error ? last.message : JSON.stringify(last)})` : ""}`,
      );
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
