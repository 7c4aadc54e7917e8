// Listing the WAL directory: only names matching the pattern are lstat'ed (never followed),
// yielding to the event loop every few thousand entries. Null when the directory cannot be listed.
import { lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { type DirEntry, patternRegex } from "./inventory.js";

const YIELD_EVERY = 2000;

export async function listSegments(
  dir: string,
  pattern: string,
  signal?: AbortSignal,
): Promise<DirEntry[] | null> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return null;
  }
  const re = patternRegex(pattern);
  const out: DirEntry[] = [];
  let n = 0;
  for (const name of names) {
    if (!re.plain.test(name) && !re.gz.test(name)) continue;
    if (++n % YIELD_EVERY === 0) {
      await new Promise<void>((r) => setImmediate(r));
      if (signal?.aborted) throw signal.reason as Error;
    }
    try {
      const st = lstatSync(join(dir, name));
      out.push({
        name,
        type: st.isSymbolicLink()
          ? "symlink"
          : st.isFile()
            ? "file"
            : st.isDirectory()
              ? "dir"
              : "other",
        size: st.size,
        mtimeMs: st.mtimeMs,
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        dev: st.dev,
        ino: st.ino,
        nlink: st.nlink,
      });
    } catch {
      // removed between readdir and lstat: the next scan sees the truth
    }
  }
  return out;
}
