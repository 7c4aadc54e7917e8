// Where the emergency ballast lives: a root-owned 0700 directory of the agent's own on the WAL's
// filesystem, never a name the database's user could swap, never inside the WAL directory.
//
//   <state_dir>/ballast                 when the state directory is on the WAL's filesystem
//   <fs root>/.stemedb-agent-ballast    else, at the WAL filesystem's mount point (mountinfo)
//
// The parent must be root's and closed to others (or sticky, so nobody else may rename a name of
// root's in it). The directory is made with mkdir, checked with lstat (a directory, uid 0, mode
// 0700, the WAL's device), opened O_DIRECTORY | O_NOFOLLOW and compared with what lstat saw; every
// later operation goes through that descriptor (/proc/self/fd/N/name), never through a path.
import { fstatSync, mkdirSync, readFileSync, realpathSync, type Stats, statSync } from "node:fs";
import { errorMessage } from "../../core/errors.js";
import { mountFor, parseMountinfo } from "../../core/host/mountinfo.js";
import { DirHandle, sameFile } from "../../core/safefs.js";

/** In the state directory. */
export const STATE_NAME = "ballast";
/** At the WAL filesystem's root. */
export const ROOT_NAME = ".stemedb-agent-ballast";
/** The file, CockroachDB's name for it. */
export const BALLAST_FILE = "EMERGENCY_BALLAST";

/** The ballast cannot be kept here, and why (said to the operator as it is). */
export class PlaceRefused extends Error {
  override readonly name = "PlaceRefused";
  readonly code = "PlaceRefused";
}

/** Where the directory goes: its parent (a real path) and its name. */
export interface PlaceChoice {
  readonly parent: string;
  readonly name: string;
  /** The WAL filesystem's device (st_dev of the WAL directory). */
  readonly dev: number;
  /** "state_dir" or "filesystem root": for what status says. */
  readonly kind: "state_dir" | "filesystem root";
}

export const placePath = (c: Pick<PlaceChoice, "parent" | "name">): string =>
  `${c.parent === "/" ? "" : c.parent}/${c.name}`;

const inside = (path: string, dir: string) => path === dir || path.startsWith(`${dir}/`);

/** Chooses the place without creating or opening anything. Throws PlaceRefused. */
export function choosePlace(o: {
  readonly walDir: string;
  readonly stateDir: string;
  /** The agent's own mount table (the kernel resolves every path the agent uses through it). */
  readonly mountinfo?: string;
}): PlaceChoice {
  let wal: string;
  let walSt: Stats;
  try {
    wal = realpathSync(o.walDir);
    walSt = statSync(wal);
  } catch (e) {
    throw new PlaceRefused(`the WAL directory ${o.walDir} cannot be resolved: ${errorMessage(e)}`);
  }
  try {
    const state = realpathSync(o.stateDir);
    if (statSync(state).dev === walSt.dev && !inside(state, wal) && !inside(wal, state))
      return { parent: state, name: STATE_NAME, dev: walSt.dev, kind: "state_dir" };
  } catch {
    // no state directory (yet): the filesystem's root
  }
  let text: string;
  try {
    text = o.mountinfo ?? readFileSync("/proc/self/mountinfo", "utf8");
  } catch (e) {
    throw new PlaceRefused(`cannot read /proc/self/mountinfo: ${errorMessage(e)}`);
  }
  const mounts = parseMountinfo(text).mounts;
  const m = mountFor(wal, mounts);
  if (!m) throw new PlaceRefused(`no mount in /proc/self/mountinfo holds ${wal}`);
  // The filesystem's own root: a mount of the same device showing its root ("/"), the one that
  // holds the WAL directory first (a bind mount of a subdirectory, as systemd's ReadWritePaths=
  // makes of the WAL directory, is not the root).
  const roots = mounts.filter((x) => x.major === m.major && x.minor === m.minor && x.root === "/");
  const root =
    roots
      .filter((x) => inside(wal, x.mountPoint))
      .sort((a, b) => b.mountPoint.length - a.mountPoint.length)[0] ?? roots[0];
  if (!root)
    throw new PlaceRefused(
      `the WAL filesystem's root is not mounted here (only ${m.root} of it, at ${m.mountPoint}); ` +
        "put the state directory on the WAL's filesystem",
    );
  if (inside(root.mountPoint, wal))
    throw new PlaceRefused(
      `the WAL directory ${wal} is its filesystem's root, and the ballast never goes in the WAL ` +
        "directory: put the state directory on the WAL's filesystem",
    );
  let dev: number;
  try {
    dev = statSync(root.mountPoint).dev;
  } catch (e) {
    throw new PlaceRefused(`${root.mountPoint}: ${errorMessage(e)}`);
  }
  if (dev !== walSt.dev)
    throw new PlaceRefused(
      `${root.mountPoint} is not the WAL directory's device (a btrfs subvolume?): ` +
        "put the state directory on the WAL's filesystem",
    );
  return { parent: root.mountPoint, name: ROOT_NAME, dev: walSt.dev, kind: "filesystem root" };
}

/** Why a directory must not be the parent (someone but root could swap a name in it), or null. */
function parentProblem(st: Stats, dev: number): string | null {
  if (st.dev !== dev) return "not on the WAL's filesystem";
  if (st.uid !== 0) return `owned by uid ${st.uid}, not root: that user could swap the name`;
  const sticky = (st.mode & 0o1000) !== 0;
  if ((st.mode & 0o022) !== 0 && !sticky)
    return `mode ${(st.mode & 0o7777).toString(8)}: others could swap the name`;
  return null;
}

/** Why the directory under the name is not the agent's, or null. */
function placeProblem(st: Stats, dev: number): string | null {
  if (st.isSymbolicLink()) return "a symbolic link";
  if (!st.isDirectory()) return "not a directory";
  if (st.uid !== 0) return `owned by uid ${st.uid}, not root`;
  if ((st.mode & 0o7777) !== 0o700) return `mode ${(st.mode & 0o7777).toString(8)}, not 0700`;
  if (st.dev !== dev) return "not on the WAL's filesystem";
  return null;
}

/**
 * The place, opened: the directory held by its descriptor. Null when it does not exist and
 * `create` is false (dry-run never makes it). Throws PlaceRefused when anything is not as it must
 * be; nothing planted is followed, removed or used.
 */
export function openPlace(choice: PlaceChoice, create: boolean): DirHandle | null {
  const where = placePath(choice);
  let parent: DirHandle;
  try {
    parent = DirHandle.open(choice.parent);
  } catch (e) {
    throw new PlaceRefused(`cannot open ${choice.parent}: ${errorMessage(e)}`);
  }
  try {
    const why = parentProblem(statOf(parent), choice.dev);
    if (why) throw new PlaceRefused(`${choice.parent} cannot hold the ballast: ${why}`);
    let st = parent.lstat(choice.name);
    if (st === null) {
      if (!create) return null;
      try {
        mkdirSync(parent.at(choice.name), 0o700);
      } catch (e) {
        throw new PlaceRefused(`cannot create ${where}: ${errorMessage(e)}`);
      }
      st = parent.lstat(choice.name);
      if (st === null) throw new PlaceRefused(`${where} vanished right after it was made`);
    }
    const bad = placeProblem(st, choice.dev);
    if (bad) throw new PlaceRefused(`${where} is not the agent's (${bad}): refused, left as it is`);
    let dir: DirHandle;
    try {
      dir = DirHandle.open(parent.at(choice.name));
    } catch (e) {
      throw new PlaceRefused(`cannot open ${where}: ${errorMessage(e)}`);
    }
    const held = statOf(dir);
    if (!sameFile(held, st) || placeProblem(held, choice.dev) !== null) {
      dir.close();
      throw new PlaceRefused(`${where} changed while it was opened: refused`);
    }
    return dir;
  } finally {
    parent.close();
  }
}

/** The held directory is still the one its name leads to (it was not removed or replaced). */
export function stillPlaced(choice: PlaceChoice, dir: DirHandle): boolean {
  try {
    const parent = DirHandle.open(choice.parent);
    try {
      const st = parent.lstat(choice.name);
      return st !== null && sameFile(st, dir) && statOf(dir).nlink > 0;
    } finally {
      parent.close();
    }
  } catch {
    return false;
  }
}

const statOf = (d: DirHandle): Stats => fstatSync(d.fd);
