// The fsync probe's worker thread: synchronous pwrite + fdatasync on a reused, fully written
// file, timed right around the two calls. It runs off the main thread so that a device hung in
// uninterruptible I/O blocks only this thread; the agent stays responsive and the hang itself
// becomes the signal.
import { closeSync, fdatasyncSync, fstatSync, fsyncSync, writeSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { parentPort, workerData } from "node:worker_threads";
import { DirHandle, type ResolvedDir, resolveDir, sameResolution } from "../../core/safefs.js";
import {
  PROBE_FILE,
  PROBE_FILE_SIZE as FILE_SIZE,
  type ProbeReply,
  type ProbeRequest,
} from "./protocol.js";

const { dir, blockSize } = workerData as { dir: string; blockSize: number };
let fd: number | undefined;
let offset = 0;
const block = Buffer.alloc(blockSize);
/** Where `dir` led the first time: a link that leads elsewhere later is not followed. */
let resolved: ResolvedDir | undefined;

/**
 * Creates the probe file afresh (the directory may belong to another user, who may have put
 * anything under its name): the name is removed, then created O_EXCL | O_NOFOLLOW through the
 * directory's descriptor, written in full (real zeros, not sparse) and synced with its directory.
 */
function prepare(): boolean {
  const now = resolveDir(dir);
  if (resolved && !sameResolution(now, resolved)) {
    throw Object.assign(
      new Error(`${dir} now leads to ${now.real}, not ${resolved.real} as when the probe started`),
      { code: "EDIRCHANGED" },
    );
  }
  resolved ??= now;
  const d = DirHandle.open(resolved);
  try {
    const f = d.createExclusive(PROBE_FILE);
    fd = f.fd;
    const zeros = Buffer.alloc(64 * 1024);
    for (let o = 0; o < FILE_SIZE; o += zeros.length) writeSync(fd, zeros, 0, zeros.length, o);
    fsyncSync(fd);
    d.fsync();
  } finally {
    d.close();
  }
  return true;
}

/** Our file, still linked once: an unlinked or re-linked probe file is created again. */
function usable(f: number): boolean {
  return fstatSync(f).nlink === 1;
}

parentPort?.on("message", (req: ProbeRequest) => {
  let reply: ProbeReply;
  try {
    if (fd !== undefined && !usable(fd)) {
      closeSync(fd);
      fd = undefined;
    }
    const prepared = fd === undefined ? prepare() : false;
    block.writeDoubleLE(Date.now(), 0); // a changing block, so no layer can skip the write
    const t0 = performance.now();
    writeSync(fd as number, block, 0, blockSize, offset);
    fdatasyncSync(fd as number);
    const seconds = (performance.now() - t0) / 1000;
    offset = (offset + blockSize) % FILE_SIZE; // block_size is a power of two <= 64 KiB (config)
    reply = { id: req.id, ok: true, seconds, prepared };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    // Reopen next time: the filesystem may have been remounted or the file removed.
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // already unusable
      }
      fd = undefined;
    }
    reply = { id: req.id, ok: false, code: err.code ?? "EUNKNOWN", message: err.message };
  }
  parentPort?.postMessage(reply);
});
