// The fsync probe's worker thread: synchronous pwrite + fdatasync on a reused, fully written
// file, timed right around the two calls. It runs off the main thread so that a device hung in
// uninterruptible I/O blocks only this thread; the agent stays responsive and the hang itself
// becomes the signal (see shared notes, disk-systemd 2.3).
import { closeSync, fdatasyncSync, fstatSync, fsyncSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parentPort, workerData } from "node:worker_threads";

import { PROBE_FILE, PROBE_FILE_SIZE as FILE_SIZE, type ProbeReply, type ProbeRequest } from "./protocol.js";

const { dir, blockSize } = workerData as { dir: string; blockSize: number };
const path = join(dir, PROBE_FILE);
let fd: number | undefined;
let offset = 0;
const block = Buffer.alloc(blockSize);

/** Opens the probe file, writing it in full once (real zeros, not sparse) and syncing it and its directory. */
function prepare(): boolean {
  fd = openSync(path, "a+", 0o600);
  closeSync(fd);
  fd = openSync(path, "r+");
  if (fstatSync(fd).size >= FILE_SIZE) return false;
  const zeros = Buffer.alloc(64 * 1024);
  for (let o = 0; o < FILE_SIZE; o += zeros.length) writeSync(fd, zeros, 0, zeros.length, o);
  fsyncSync(fd);
  const dfd = openSync(dir, "r");
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
  return true;
}

parentPort?.on("message", (req: ProbeRequest) => {
  let reply: ProbeReply;
  try {
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
