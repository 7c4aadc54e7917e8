// File work inside a directory owned by someone else (the WAL directory belongs to the
// database's user, who must be assumed hostile). Node has no openat(2), so the directory is
// opened once, O_NOFOLLOW, checked against the identity recorded when it was resolved, and
// every name is then reached through /proc/self/fd/<dirfd>/<name>: the kernel resolves the
// directory from the open descriptor, never from a path that could have been swapped since.
// Files are opened O_NOFOLLOW | O_NONBLOCK (a symlink fails, a FIFO cannot block) and compared
// by fstat with what was listed; new files are created O_EXCL; owner, mode and times are set
// through the descriptor. Synchronous on purpose: it runs in worker threads.
import {
  closeSync,
  constants as C,
  fstatSync,
  fsyncSync,
  lstatSync,
  openSync,
  readdirSync,
  realpathSync,
  renameSync,
  type Stats,
  statfsSync,
  unlinkSync,
} from "node:fs";
import { spaceOf } from "./host/statfs.js";

/** What a file or directory is, independent of its name. */
export interface Identity {
  readonly dev: number;
  readonly ino: number;
}

/** A file as it was listed: the read must be of this very file, unchanged. */
export interface Listed extends Identity {
  readonly size: number;
  readonly mtimeMs: number;
}

/** The check failed: the name no longer is the file that was listed, or never was a plain one. */
export class NotTheListedFile extends Error {
  override readonly name = "NotTheListedFile";
  readonly code = "NotTheListedFile";
}

/** The directory reached by the configured path is not the one recorded at start or reload. */
export class DirChanged extends Error {
  override readonly name = "DirChanged";
  readonly code = "DirChanged";
}

const READ_FLAGS = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK | C.O_NOCTTY;
const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;
const CREATE_FLAGS = C.O_RDWR | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW | C.O_NOCTTY;

/** One path component: never empty, ".", ".." or anything with a slash or NUL. */
export function checkName(name: string): string {
  if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
    throw new Error(`not a plain file name: ${JSON.stringify(name)}`);
  }
  return name;
}

export const sameFile = (a: Identity, b: Identity): boolean => a.dev === b.dev && a.ino === b.ino;

/** A directory resolved once: where a configured path (maybe a symlink) leads, and who owns it. */
export interface ResolvedDir extends Identity {
  readonly configured: string;
  readonly real: string;
  readonly uid: number;
  readonly gid: number;
}

/** Follows the configured path once (a WAL on another disk through a symlink is common). */
export function resolveDir(configured: string): ResolvedDir {
  const real = realpathSync(configured);
  const st = lstatSync(real);
  if (!st.isDirectory()) throw new Error(`${configured} is not a directory`);
  return { configured, real, dev: st.dev, ino: st.ino, uid: st.uid, gid: st.gid };
}

/**
 * True when the configured path still leads to the same directory. A link that changed since
 * it was resolved is never acted through: a reload (SIGHUP) accepts the new target.
 */
export function stillResolves(r: ResolvedDir): boolean {
  try {
    return sameResolution(resolveDir(r.configured), r);
  } catch {
    return false;
  }
}

/** Two resolutions lead to the same directory: same real path, same device and inode. */
export const sameResolution = (a: ResolvedDir, b: ResolvedDir): boolean =>
  a.real === b.real && sameFile(a, b);

export class DirHandle implements Identity {
  readonly dev: number;
  readonly ino: number;
  readonly uid: number;
  readonly gid: number;

  private constructor(
    readonly fd: number,
    readonly label: string,
    st: Stats,
  ) {
    this.dev = st.dev;
    this.ino = st.ino;
    this.uid = st.uid;
    this.gid = st.gid;
  }

  /**
   * Opens a resolved directory without following a link at its last component, and checks it
   * is the directory recorded at resolution (same device and inode).
   */
  static open(dir: ResolvedDir | string): DirHandle {
    const path = typeof dir === "string" ? dir : dir.real;
    const fd = openSync(path, DIR_FLAGS);
    let st: Stats;
    try {
      st = fstatSync(fd);
      if (typeof dir !== "string" && !sameFile(st, dir)) {
        throw new DirChanged(
          `${dir.configured} is no longer the directory resolved at start or reload (${dir.real})`,
        );
      }
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    return new DirHandle(fd, typeof dir === "string" ? dir : dir.configured, st);
  }

  /** A path the kernel resolves through this descriptor (for the one name only). */
  at(name: string): string {
    return `/proc/self/fd/${this.fd}/${checkName(name)}`;
  }

  /** The names in the directory. */
  list(): string[] {
    return readdirSync(`/proc/self/fd/${this.fd}`);
  }

  /** lstat of a name in the directory, or null when there is none. */
  lstat(name: string): Stats | null {
    try {
      return lstatSync(this.at(name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
  }

  /**
   * Opens the file that was listed under `name` for reading: a regular file with one link, the
   * same device and inode (and, when given, size and mtime). Anything else is closed unread.
   */
  openListed(name: string, listed: Identity & Partial<Listed>): { fd: number; st: Stats } {
    let fd: number;
    try {
      fd = openSync(this.at(name), READ_FLAGS);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ELOOP" || code === "ENOENT" || code === "ENXIO")
        throw new NotTheListedFile(`${name}: ${code === "ELOOP" ? "now a symbolic link" : "gone"}`);
      throw e;
    }
    try {
      const st = fstatSync(fd);
      const why = !st.isFile()
        ? "not a regular file"
        : st.nlink !== 1
          ? `${st.nlink} links (a hard link could reach a file outside the directory)`
          : !sameFile(st, listed)
            ? "not the file that was listed (another inode)"
            : listed.size !== undefined && st.size !== listed.size
              ? `size changed (${listed.size} -> ${st.size})`
              : listed.mtimeMs !== undefined && st.mtimeMs !== listed.mtimeMs
                ? "modified since it was listed"
                : null;
      if (why) throw new NotTheListedFile(`${name}: ${why}`);
      return { fd, st };
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /**
   * Creates `name` new, 0600, never through a link: a stale entry of that name (ours from a
   * crash, or anything planted) is unlinked first, then O_CREAT | O_EXCL | O_NOFOLLOW.
   */
  createExclusive(name: string): { fd: number; st: Stats } {
    this.unlinkIfPresent(name);
    const fd = openSync(this.at(name), CREATE_FLAGS, 0o600);
    try {
      return { fd, st: fstatSync(fd) };
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** Removes a name (a link is removed, never followed); false when there was none. */
  unlinkIfPresent(name: string): boolean {
    try {
      unlinkSync(this.at(name));
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw e;
    }
  }

  unlink(name: string): void {
    unlinkSync(this.at(name));
  }

  rename(from: string, to: string): void {
    renameSync(this.at(from), this.at(to));
  }

  /** Makes names created, renamed or removed in the directory durable. */
  fsync(): void {
    fsyncSync(this.fd);
  }

  /** Bytes an unprivileged writer may still use on the directory's filesystem. */
  available(): number {
    // The agent's own procfs, not [host] proc_path: the kernel resolves this descriptor.
    return spaceOf(statfsSync(`/proc/self/fd/${this.fd}`)).avail_bytes;
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Runs `fn` with the directory open, closing it whatever happens. */
export function withDir<T>(dir: ResolvedDir | string, fn: (d: DirHandle) => T): T {
  const d = DirHandle.open(dir);
  let result: T;
  try {
    result = fn(d);
  } catch (e) {
    d.close();
    throw e;
  }
  if (result instanceof Promise) {
    return result.finally(() => d.close()) as T;
  }
  d.close();
  return result;
}
