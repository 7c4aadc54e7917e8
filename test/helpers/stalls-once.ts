// Run by test/stalls.test.ts with capabilities dropped (setpriv): one sample of the stalls
// collector for the WAL directory in argv[2]; prints its database part as one JSON line.
import { StallsCollector } from "../../collectors/stalls/collector.js";
import { isStemedbDatabase } from "../../judge/index.js";

const wal = process.argv[2] ?? "/nonexistent";
const col = new StallsCollector({
  procPath: "/proc",
  sysPath: "/sys",
  walDir: wal,
  isDatabase: isStemedbDatabase,
});
const o = await col.collect({ signal: new AbortController().signal });
process.stdout.write(`${JSON.stringify(o.db)}\n`);
