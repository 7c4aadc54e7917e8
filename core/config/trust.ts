// StrictModes, as sshd has them: a root agent trusts its configuration (verify_command is run as
// root) and its state (which units --resume-paused starts) only when nobody but root can have
// written them. A file or directory is trusted when root owns it and it is not group- or
// world-writable, and so is every directory above it; an ancestor may be world-writable if it is
// root-owned and sticky (/tmp: others cannot replace what is in it). Checked as root only.
import { chmodSync, type Stats, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { realpathSync } from "node:fs";
import { errorCode } from "../errors.js";

export const STATE_DIR_MODE = 0o700;
/** makedev(1, 3) */
const DEV_NULL = (1 << 8) | 3;

export const runningAsRoot = (): boolean => process.geteuid?.() === 0;

const octal = (m: number) => `0${(m & 0o7777).toString(8)}`;

/** The directories above `path`, nearest first, through the path as given and as resolved. */
function ancestors(path: string): string[] {
  const out = new Set<string>();
  for (const p of [resolve(path), safeRealpath(path)]) {
    for (let d = dirname(p); ; d = dirname(d)) {
      out.add(d);
      if (d === "/") break;
    }
  }
  return [...out];
}

function safeRealpath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

/** Why an ancestor directory cannot be trusted, or null. */
function ancestorProblem(dir: string, st: Stats, of: string): string | null {
  const fix = `fix: chown root ${dir} && chmod go-w ${dir}`;
  if (st.uid !== 0)
    return `${dir} (above ${of}) is owned by uid ${st.uid}, not root (mode ${octal(st.mode)}); ${fix}`;
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0)
    return (
      `${dir} (above ${of}) is group- or world-writable without the sticky bit (owner root, ` +
      `mode ${octal(st.mode)}); ${fix}`
    );
  return null;
}

function checkAncestors(path: string): string | null {
  for (const d of ancestors(path)) {
    let st: Stats;
    try {
      st = statSync(d);
    } catch {
      continue; // not there (yet): nothing in it to replace
    }
    const p = ancestorProblem(d, st, path);
    if (p !== null) return p;
  }
  return null;
}

/** Why the configuration file cannot be trusted by a root agent, or null. */
export function configFileProblem(file: string): string | null {
  let st: Stats;
  try {
    st = statSync(file);
  } catch (e) {
    return `${file}: cannot check its owner and mode: ${errorCode(e) ?? String(e)}`;
  }
  // /dev/null (--config /dev/null: defaults only) is world-writable, but nothing written stays.
  if (st.isCharacterDevice() && st.rdev === DEV_NULL) return null;
  const why = "it holds verify_command, run as root";
  const fix = `fix: chown root ${file} && chmod go-w ${file}`;
  if (st.uid !== 0)
    return `${file} is owned by uid ${st.uid}, not root (mode ${octal(st.mode)}); ${why}; ${fix}`;
  if ((st.mode & 0o022) !== 0)
    return `${file} is group- or world-writable (owner root, mode ${octal(st.mode)}); ${why}; ${fix}`;
  return checkAncestors(file);
}

/**
 * The state directory, made ready for a root agent: created 0700 if missing; a root-owned one
 * that others may read (0750, 0755 from older installs) tightened to 0700. Refused: not owned by
 * root, group- or world-writable (someone else may already have put files in it), or an
 * untrusted directory above it. Returns the problem, or the notes to log.
 */
export function prepareStateDir(dir: string): { problem: string } | { notes: string[] } {
  const above = checkAncestors(dir);
  if (above !== null) return { problem: above };
  const notes: string[] = [];
  let st: Stats;
  try {
    st = statSync(dir);
  } catch (e) {
    if (errorCode(e) !== "ENOENT")
      return { problem: `state directory ${dir}: cannot check it: ${errorCode(e) ?? String(e)}` };
    return { notes }; // created 0700 where the history is opened
  }
  const fix = `fix: chown root ${dir} && chmod 0700 ${dir}`;
  if (!st.isDirectory()) return { problem: `state directory ${dir} is not a directory` };
  if (st.uid !== 0)
    return {
      problem:
        `state directory ${dir} is owned by uid ${st.uid}, not root (mode ${octal(st.mode)}); ` +
        `it holds what --resume-paused acts on; ${fix}`,
    };
  if ((st.mode & 0o022) !== 0)
    return {
      problem:
        `state directory ${dir} is group- or world-writable (owner root, mode ${octal(st.mode)}); ` +
        `others may have planted files in it; check its contents, then ${fix}`,
    };
  if ((st.mode & 0o7777) !== STATE_DIR_MODE) {
    chmodSync(dir, STATE_DIR_MODE);
    notes.push(`state directory ${dir} was mode ${octal(st.mode)}: tightened to 0700`);
  }
  return { notes };
}
