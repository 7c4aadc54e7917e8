// The ballast file, EMERGENCY_BALLAST, in the held directory (./place.ts): created, reserved and
// released only through descriptors.
//
//   create   O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600
//   reserve  `ionice -c 3 -t nice -n 19 fallocate -o OFF -l LEN /proc/self/fd/0`, the file as the
//            child's standard input (no name is opened); then fstat: st_blocks * 512 must cover it.
//            No zeros are written: a dd of zeros stalled the fsync probe's p99 by seconds.
//   release  ftruncate 0, fsync; unlink by name in the held directory only if the name is still the
//            file held (fstat identity); fsync the directory; `sync -f` (btrfs frees lazily)
import {
  closeSync,
  constants as C,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  type Stats,
} from "node:fs";
import { errorMessage } from "../../core/errors.js";
import { run, type RunResult } from "../../core/exec.js";
import { type DirHandle, sameFile } from "../../core/safefs.js";
import { BALLAST_FILE } from "./place.js";

/** The filesystem cannot keep a ballast (it would not be reserved space on the disk). */
export class BallastRefused extends Error {
  override readonly name = "BallastRefused";
  readonly code = "BallastRefused";
}

/** fallocate ran out of space: the plan's figures were overtaken by a writer. */
export class NoSpace extends Error {
  override readonly name = "NoSpace";
  readonly code = "NoSpace";
}

/** The ballast file, open. */
export interface Held {
  readonly fd: number;
  readonly st: Stats;
}

/** Bytes the file holds on the disk (allocated blocks), not its apparent size. */
export const allocated = (st: Pick<Stats, "blocks">): number => st.blocks * 512;

const OPEN_FLAGS = C.O_RDWR | C.O_NOFOLLOW | C.O_NONBLOCK | C.O_NOCTTY;
const CREATE_FLAGS = C.O_RDWR | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW | C.O_NOCTTY;

/** statfs f_type of filesystems that keep files in memory: a ballast there reserves no disk. */
const IN_MEMORY: ReadonlyMap<number, string> = new Map([
  [0x01021994, "tmpfs"],
  [0x858458f6, "ramfs"],
]);

/** Why a filesystem of this statfs type cannot hold a ballast, or null. */
export function inMemory(type: number): string | null {
  const mem = IN_MEMORY.get(type);
  return mem
    ? `the WAL's filesystem is ${mem}: its files live in memory, a ballast would reserve no disk`
    : null;
}

/** What is wrong with the file under the ballast's name, or null (only root writes there). */
function fileProblem(st: Stats): string | null {
  if (!st.isFile()) return "not a regular file";
  if (st.nlink !== 1) return `${st.nlink} links`;
  if (st.uid !== 0) return `owned by uid ${st.uid}`;
  return null;
}

/**
 * The ballast in the held directory, opened; null when there is none. Throws BallastRefused.
 * `where` names the directory in messages.
 */
export function openBallast(dir: DirHandle, where = dir.label): Held | null {
  let fd: number;
  try {
    fd = openSync(dir.at(BALLAST_FILE), OPEN_FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return null;
    if (code === "ELOOP" || code === "ENXIO")
      throw new BallastRefused(`${BALLAST_FILE} in ${where} is not a regular file: left alone`);
    throw e;
  }
  const st = fstatSync(fd);
  const why = fileProblem(st);
  if (why) {
    closeSync(fd);
    throw new BallastRefused(`${BALLAST_FILE} in ${where} is ${why}: left alone`);
  }
  return { fd, st };
}

/** A new, empty ballast file (exclusively: an existing name is an error, never reused). */
export function createBallast(dir: DirHandle): Held {
  const fd = openSync(dir.at(BALLAST_FILE), CREATE_FLAGS, 0o600);
  return { fd, st: fstatSync(fd) };
}

/** Runs a tool; injectable so tests can see what is run. */
export type Runner = (
  file: string,
  args: readonly string[],
  opts: { stdinFd: number; signal?: AbortSignal },
) => Promise<RunResult>;

export const defaultRunner: Runner = (file, args, opts) =>
  run(file, args, { ...opts, maxOutput: 64 * 1024, killGrace: 1000 });

/** The command line of one reservation step (the file is the child's fd 0). */
export function reserveCommand(offset: number, length: number): [string, string[]] {
  return [
    "ionice",
    [
      ..."-c 3 -t nice -n 19 fallocate".split(" "),
      "-o",
      String(offset),
      "-l",
      String(length),
      "/proc/self/fd/0",
    ],
  ];
}

/**
 * Reserves [offset, offset + length) of the file at idle priority, then checks the blocks are
 * really allocated. Returns the file's state after the step.
 */
export async function reserve(
  held: Held,
  offset: number,
  length: number,
  opts: { signal?: AbortSignal; runner?: Runner } = {},
): Promise<Stats> {
  const [cmd, args] = reserveCommand(offset, length);
  const r = await (opts.runner ?? defaultRunner)(cmd, args, {
    stdinFd: held.fd,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  if (r.code !== 0) {
    const said = (r.stderr.trim() || `exit ${r.code ?? r.signal}`).slice(0, 300);
    if (/not supported/i.test(said))
      throw new BallastRefused(`fallocate is not supported on the WAL's filesystem (${said})`);
    if (/no space left|quota/i.test(said)) throw new NoSpace(`fallocate: ${said}`);
    throw new Error(`fallocate -o ${offset} -l ${length}: ${said}`);
  }
  const st = fstatSync(held.fd);
  const want = offset + length;
  if (allocated(st) < want)
    throw new BallastRefused(
      `the filesystem did not reserve the blocks (${allocated(st)} of ${want} bytes allocated ` +
        "after fallocate): the space would not be there when it is needed",
    );
  return st;
}

/**
 * Gives the ballast back: truncated and made durable (the space is free even if the name could
 * not be removed), unlinked if the name is still the file held, the directory fsynced, then the
 * filesystem synced. Closes the file. Returns the bytes it held.
 */
export async function release(
  dir: DirHandle,
  held: Held,
  opts: { runner?: Runner } = {},
): Promise<{ bytes: number; unlinked: boolean; synced: string | null }> {
  let bytes: number;
  let unlinked = false;
  try {
    bytes = allocated(fstatSync(held.fd));
    ftruncateSync(held.fd, 0);
    fsyncSync(held.fd);
    const now = dir.lstat(BALLAST_FILE);
    if (now !== null && sameFile(now, held.st)) {
      dir.unlink(BALLAST_FILE);
      unlinked = true;
    }
    dir.fsync();
  } finally {
    closeQuietly(held.fd);
  }
  // syncfs(2) of the filesystem, reached through the held directory (btrfs frees lazily).
  let synced: string | null = null;
  try {
    const r = await (opts.runner ?? defaultRunner)("sync", ["-f", "/proc/self/fd/0"], {
      stdinFd: dir.fd,
    });
    if (r.code !== 0) synced = `sync -f: ${r.stderr.trim() || `exit ${r.code}`}`;
  } catch (e) {
    synced = `sync -f: ${errorMessage(e)}`;
  }
  return { bytes, unlinked, synced };
}

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
