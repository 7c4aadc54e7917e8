// Compression runs in a worker thread: off the event loop, and killed with the agent (a child
// process would outlive a SIGKILL and race the restarted agent's recovery).
import { parentPort } from "node:worker_threads";
import { compressSegment } from "./steps.js";

export interface CompressJob {
  readonly path: string;
  readonly level: number;
  readonly bytesPerSecond: number;
}

parentPort?.on("message", (job: CompressJob) => {
  compressSegment(job.path, job.level, job.bytesPerSecond, (step) => parentPort?.postMessage({ step })).then(
    (result) => parentPort?.postMessage({ result }),
    (e: Error & { code?: string }) => parentPort?.postMessage({ error: e.message, code: e.code ?? e.name }),
  );
});
