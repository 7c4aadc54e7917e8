// Compression runs in a worker thread: off the event loop, and killed with the agent (a child
// process would outlive a SIGKILL and race the restarted agent's recovery).
import { existsSync } from "node:fs";
import { parentPort } from "node:worker_threads";
import { DirHandle, type Listed, type ResolvedDir } from "../../core/safefs.js";
import { type CompressOptions, compressSegment, type Step } from "./steps.js";

export interface CompressJob {
  readonly dir: ResolvedDir;
  readonly name: string;
  readonly listed: Listed;
  readonly options: CompressOptions;
}

export type WorkerMsg =
  | { readonly step: Step }
  | { readonly result: { segment: string; bytes: number; compressedBytes: number; sha256: string } }
  | { readonly error: string; readonly code: string };

// Fault injection for tests only: after this step the worker waits while the file named by
// STEMEDB_AGENT_TEST_PAUSE_FILE exists (at most a minute), so a kill or a racing writer lands
// there deliberately. Unset in production; it can only delay the work, never change it.
const PAUSE_AFTER = process.env["STEMEDB_AGENT_TEST_PAUSE_AFTER_STEP"] ?? "";
const PAUSE_FILE = process.env["STEMEDB_AGENT_TEST_PAUSE_FILE"] ?? "";

async function pause(): Promise<void> {
  const until = Date.now() + 60_000;
  while (Date.now() < until && (PAUSE_FILE === "" || existsSync(PAUSE_FILE)))
    await new Promise((r) => setTimeout(r, 20));
}

async function run(job: CompressJob): Promise<WorkerMsg> {
  const d = DirHandle.open(job.dir);
  try {
    const result = await compressSegment(d, job.name, job.listed, job.options, async (step) => {
      parentPort?.postMessage({ step } satisfies WorkerMsg);
      if (step === PAUSE_AFTER) await pause();
    });
    return { result };
  } finally {
    d.close();
  }
}

parentPort?.on("message", (job: CompressJob) => {
  run(job).then(
    (msg) => parentPort?.postMessage(msg),
    (e: Error & { code?: string }) =>
      parentPort?.postMessage({ error: e.message, code: e.code ?? e.name } satisfies WorkerMsg),
  );
});
