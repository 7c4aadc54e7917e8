// The WAL write test's worker thread: the runbook's `dd if=/dev/zero of=… bs=1M oflag=direct`,
// bounded in size and time, on the WAL's filesystem but outside the WAL directory (which belongs
// to the database's user). Synchronous writes in their own thread: the agent's event loop never
// waits on them, and a device hung in uninterruptible I/O blocks only this thread.
//
// Where: a directory of the agent's own (root's, 0700) in the state directory when that is on the
// WAL's filesystem, else next to the WAL directory; every name in it is reached through its open
// descriptor, so nothing the database's user renames, links or plants is ever followed.
import {
  closeSync,
  constants as C,
  fdatasyncSync,
  fstatSync,
  mkdirSync,
  openSync,
  realpathSync,
  rmdirSync,
  statSync,
  writeSync,
} from "node:fs";
import { basename, dirname } from "node:path";
import { performance } from "node:perf_hooks";
import { parentPort, workerData } from "node:worker_threads";
import { DirHandle, sameFile } from "../../core/safefs.js";
import { errorMessage } from "../../core/errors.js";
import {
  BLOCK,
  TEST_DIR,
  TEST_FILE,
  type WriteTestReply,
  type WriteTestRequest,
} from "./write-test-protocol.js";

/** A reason the test cannot run here, said to the operator as it is. */
class Refusal extends Error {}

/** The parent directory and the name of the test's directory: configured, or chosen. */
function place(req: WriteTestRequest, walDev: number): { parent: string; name: string } {
  const wal = realpathSync(req.walDir);
  if (req.dir !== "") {
    const parent = realpathSync(dirname(req.dir));
    if (parent === wal || parent.startsWith(`${wal}/`))
      throw new Refusal(
        `[diagnose] write_test_dir ${req.dir} is inside the WAL directory, which belongs to the database's user`,
      );
    if (statSync(parent).dev !== walDev)
      throw new Refusal(
        `[diagnose] write_test_dir ${req.dir} is not on the WAL's filesystem: the test would measure another disk`,
      );
    return { parent, name: basename(req.dir) };
  }
  for (const parent of [req.stateDir, dirname(wal)]) {
    try {
      const real = realpathSync(parent);
      if (real !== wal && statSync(real).dev === walDev) return { parent: real, name: TEST_DIR };
    } catch {
      // not there: the next candidate
    }
  }
  throw new Refusal(
    `no directory outside ${req.walDir} is on its filesystem (the WAL directory is the filesystem's ` +
      "root?): set [diagnose] write_test_dir to a path on it",
  );
}

/**
 * Opens the test's directory under `parent`, creating it (0700) when absent. Anything else under
 * the name that is not a directory (a link, a FIFO: planted, or left by a crash) is removed
 * first, as the directory's owner could; a directory that is not root's and closed to others is
 * never used.
 */
function openTestDir(
  parent: DirHandle,
  name: string,
  walDev: number,
): { dir: DirHandle; created: boolean } {
  let created = false;
  const st = parent.lstat(name);
  if (st !== null && !st.isDirectory()) parent.unlink(name);
  if (st === null || !st.isDirectory()) {
    mkdirSync(parent.at(name), 0o700); // EEXIST: raced by someone planting again; fails the test
    created = true;
  }
  const dir = DirHandle.open(parent.at(name)); // O_NOFOLLOW: a link swapped in fails here
  const own = fstatSync(dir.fd);
  const why =
    own.uid !== 0
      ? `owned by uid ${own.uid}, not root`
      : (own.mode & 0o077) !== 0
        ? `mode ${(own.mode & 0o777).toString(8)}, open to others`
        : own.dev !== walDev
          ? "not on the WAL's filesystem"
          : null;
  if (why !== null) {
    dir.close();
    throw new Refusal(
      `${name} in ${parent.label} is not the agent's (${why}): remove it to run the test`,
    );
  }
  return { dir, created };
}

/**
 * `size` bytes whose address satisfies the kernel's O_DIRECT alignment, or null when the kernel
 * takes none (the filesystem refuses O_DIRECT writes). JavaScript cannot see a buffer's address:
 * a Buffer of 1 MiB comes from malloc, 16 bytes past a page, and from such a buffer a direct write
 * is split and copied (5-10 times slower here than dd, which writes from page-aligned memory). A
 * WebAssembly.Memory is mapped by V8 on whole pages, so its start is page-aligned; one block
 * written at file offset 0 checks that the kernel takes it. If it does not, malloc's 16-byte steps
 * are tried in a plain buffer until it does.
 */
/** The one WebAssembly API used (the project's TypeScript lib has no DOM or WebAssembly types). */
declare const WebAssembly: {
  Memory: new (d: { initial: number; maximum: number }) => { readonly buffer: ArrayBuffer };
};

function alignedBlock(fd: number, size: number): Buffer | null {
  const pages = Math.ceil(size / 65536);
  const tries: Array<[Buffer, number[]]> = [
    [Buffer.from(new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer), [0]],
    [Buffer.alloc(size + 4096), Array.from({ length: 256 }, (_, i) => i * 16)],
  ];
  for (const [buf, offsets] of tries)
    for (const off of offsets) {
      try {
        writeSync(fd, buf, off, 4096, 0);
        return buf.subarray(off, off + size);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EINVAL") throw e;
      }
    }
  return null;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;
}

function run(req: WriteTestRequest): WriteTestReply {
  const walDev = statSync(req.walDir).dev;
  const { parent: parentPath, name } = place(req, walDev);
  const parent = DirHandle.open(parentPath);
  let dir: DirHandle | undefined;
  let created = false;
  let fd: number | undefined;
  try {
    if (parent.dev !== walDev) throw new Refusal(`${parentPath} changed while the test started`);
    ({ dir, created } = openTestDir(parent, name, walDev));
    dir.unlinkIfPresent(TEST_FILE); // a crash's leftover: only root can write here
    const where = `${parentPath}/${name}/${TEST_FILE}`;
    try {
      fd = openSync(
        dir.at(TEST_FILE),
        C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW | C.O_DIRECT,
        0o600,
      );
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EINVAL")
        throw new Refusal(
          `the WAL's filesystem refuses O_DIRECT (EINVAL opening ${where}; ramfs does): ` +
            "an uncached write test is not possible there",
        );
      throw e;
    }
    const block = alignedBlock(fd, BLOCK);
    if (block === null)
      throw new Refusal(
        `the WAL's filesystem refuses O_DIRECT writes (EINVAL at every buffer alignment, ${where})`,
      );
    const latencies: number[] = [];
    const start = performance.now();
    const deadline = start + req.deadlineMs;
    let written = 0;
    let stopped = false;
    while (written < req.size) {
      if (performance.now() >= deadline) {
        stopped = true;
        break;
      }
      const t0 = performance.now();
      const n = writeSync(fd, block, 0, BLOCK, written);
      latencies.push((performance.now() - t0) / 1000);
      written += n;
    }
    const seconds = (performance.now() - start) / 1000;
    fdatasyncSync(fd); // the file's size, so removing it is all that is left to do
    latencies.sort((a, b) => a - b);
    return {
      ok: true,
      path: where,
      bytes: written,
      seconds,
      writes: latencies.length,
      p50_seconds: quantile(latencies, 0.5),
      p99_seconds: quantile(latencies, 0.99),
      max_seconds: latencies.at(-1) ?? 0,
      stopped_at_deadline: stopped,
    };
  } finally {
    // Removed whatever happened: the file, then the directory if this run made it (one made by
    // an operator, e.g. for the unit's ReadWritePaths=, stays).
    if (fd !== undefined) closeSync(fd);
    if (dir !== undefined) {
      try {
        dir.unlinkIfPresent(TEST_FILE);
      } finally {
        const ours = fstatSync(dir.fd);
        dir.close();
        const now = parent.lstat(name);
        if (created && now !== null && now.isDirectory() && sameFile(now, ours))
          rmdirSync(parent.at(name));
      }
    }
    parent.close();
  }
}

const req = workerData as WriteTestRequest;
let reply: WriteTestReply;
try {
  reply = run(req);
} catch (e) {
  const code =
    e instanceof Refusal ? "EREFUSED" : ((e as NodeJS.ErrnoException).code ?? "EUNKNOWN");
  reply = { ok: false, code, message: errorMessage(e) };
}
parentPort?.postMessage(reply);
