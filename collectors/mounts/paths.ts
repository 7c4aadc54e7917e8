import { realpath } from "node:fs/promises";
import { dirname } from "node:path";

/**
 * realpath of `p`, or of its nearest existing ancestor when `p` is missing (a WAL directory
 * not created yet still lives on some mount). `exists` tells which.
 */
export async function nearestExisting(p: string): Promise<{ real: string; exists: boolean }> {
  let cur = p;
  for (let i = 0; i < 64; i++) {
    try {
      return { real: await realpath(cur), exists: cur === p };
    } catch {
      const up = dirname(cur);
      if (up === cur) break;
      cur = up;
    }
  }
  return { real: "/", exists: false };
}
