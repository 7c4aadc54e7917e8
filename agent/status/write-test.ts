// agentctl diagnose --active: the replication-lag runbook's WAL write test, run by root through
// the admin socket. It writes real data at full speed, so it is bounded (size, deadline), skipped
// when it would make an incident worse (space short, WAL fsync already slow), and done in a
// worker thread (./write-test-worker.ts) so the agent's event loop never waits on the disk.
import { statfsSync } from "node:fs";
import { Worker } from "node:worker_threads";
import type { Config } from "../../core/config/schema.js";
import { spaceOf } from "../../core/host/statfs.js";
import { errorMessage } from "../../core/errors.js";
import {
  judgeFilesystem,
  judgeWriteTest,
  type Verdict,
  writeTestBlocked,
  writeTestExpectation,
} from "../../judge/index.js";
import type { Latest } from "./areas.js";
import type { WriteTestReply, WriteTestRequest } from "./write-test-protocol.js";

export type WriteTestOutcome =
  | {
      readonly state: "done";
      readonly path: string;
      readonly bytes: number;
      readonly seconds: number;
      readonly bytes_per_second: number;
      readonly writes: number;
      readonly p50_seconds: number;
      readonly p99_seconds: number;
      readonly max_seconds: number;
      /** The deadline came before the configured size was written. */
      readonly stopped_at_deadline: boolean;
      /** The WAL's devices (diskstats roles); empty when not known. */
      readonly devices: readonly string[];
      /** Any of them rotational; null when not known (the SSD expectation is used). */
      readonly rotational: boolean | null;
      readonly expected_bytes_per_second: number;
      readonly verdict: Verdict;
    }
  | { readonly state: "skipped"; readonly reason: string }
  | { readonly state: "failed"; readonly code: string; readonly reason: string };

/** How long past its deadline the worker may take before the test is reported as hung. */
const GRACE_MS = 15_000;

/** Runs the worker; a worker that never answers (a device hung in D state) is reported, not awaited. */
export function runWriteTestWorker(req: WriteTestRequest): Promise<WriteTestReply> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: WriteTestReply) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const w = new Worker(new URL("./write-test-worker.js", import.meta.url), {
      workerData: req,
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 32 },
    });
    w.unref(); // a write hung in D state must not keep a stopping agent alive
    const timer = setTimeout(
      () =>
        finish({
          ok: false,
          code: "ETIMEDOUT",
          message:
            `no answer ${(req.deadlineMs + GRACE_MS) / 1000} s after the start: a write is hanging ` +
            "(the device may be failing; see the storage-errors runbook)",
        }),
      req.deadlineMs + GRACE_MS,
    );
    timer.unref();
    w.on("message", (r: WriteTestReply) => finish(r));
    w.on("error", (e) => finish({ ok: false, code: "EWORKER", message: errorMessage(e) }));
    w.on("exit", () =>
      finish({
        ok: false,
        code: "EWORKER",
        message: "the write test's worker exited without an answer",
      }),
    );
  });
}

/** The WAL's devices and whether any is rotational, from diskstats' roles. */
export function walMedium(latest: Latest): { devices: string[]; rotational: boolean | null } {
  const chain =
    latest
      .get("diskstats")
      ?.observation.roles.filter((r) => r.role === "wal")
      .flatMap((r) => r.chain) ?? [];
  const known = chain.filter((d) => d.rotational !== null);
  return {
    devices: [...new Set(chain.map((d) => d.name))],
    rotational: known.length === 0 ? null : known.some((d) => d.rotational === true),
  };
}

/**
 * Why the test must not run now, or null. `fsync` is the judge's WAL fsync verdict (diagnose's
 * slow-fsync step 1); space is read fresh (statfs), the filesystem's verdict from the mounts
 * collector's latest observation.
 */
export function writeTestSkipReason(c: Config, latest: Latest, fsync: Verdict): string | null {
  let avail: number | null = null;
  try {
    avail = spaceOf(statfsSync(c.wal.dir)).avail_bytes;
  } catch (e) {
    return `cannot read the WAL filesystem's free space: ${errorMessage(e)}`;
  }
  const walMount = latest
    .get("mounts")
    ?.observation.mounts.find((m) => m.paths.some((p) => p.role === "wal"));
  const fs: Verdict = walMount?.space
    ? judgeFilesystem(walMount.space.used_ratio, walMount.full_in_seconds)
    : "unknown";
  const d = c.diagnose;
  return writeTestBlocked(
    { size: d.write_test_size, reserve: d.write_test_reserve, avail_bytes: avail },
    fs,
    fsync,
  );
}

/** The write test, unless it must not run now; never throws. */
export async function writeTest(
  c: Config,
  latest: Latest,
  fsync: Verdict,
): Promise<WriteTestOutcome> {
  const skip = writeTestSkipReason(c, latest, fsync);
  if (skip !== null) return { state: "skipped", reason: skip };
  const r = await runWriteTestWorker({
    walDir: c.wal.dir,
    stateDir: c.agent.state_dir,
    dir: c.diagnose.write_test_dir,
    size: c.diagnose.write_test_size,
    deadlineMs: c.diagnose.write_test_deadline,
  });
  if (!r.ok) return { state: "failed", code: r.code, reason: r.message };
  const { devices, rotational } = walMedium(latest);
  const bps = r.seconds > 0 ? r.bytes / r.seconds : 0;
  return {
    state: "done",
    path: r.path,
    bytes: r.bytes,
    seconds: r.seconds,
    writes: r.writes,
    p50_seconds: r.p50_seconds,
    p99_seconds: r.p99_seconds,
    max_seconds: r.max_seconds,
    stopped_at_deadline: r.stopped_at_deadline,
    bytes_per_second: bps,
    devices,
    rotational,
    expected_bytes_per_second: writeTestExpectation(rotational === true),
    verdict: judgeWriteTest(bps, rotational === true),
  };
}
