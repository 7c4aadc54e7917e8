// /proc/<pid>/mountinfo, parsed (proc(5)). Pure.
//   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//   (1)(2) (3)   (4)   (5)      (6)      (7)   (8) (9)   (10)         (11)
// Paths are octal-escaped by the kernel (space \040, tab \011, newline \012, backslash \134).

export interface MountInfo {
  readonly mountId: number;
  readonly parentId: number;
  readonly major: number;
  readonly minor: number;
  /** Root of the mount within its filesystem (a bind mount's source dir, a btrfs subvolume). */
  readonly root: string;
  readonly mountPoint: string;
  /** Per-mount options (rw/ro, noatime, nosuid, ...). */
  readonly mountOptions: readonly string[];
  /** Propagation fields such as "shared:1", "master:2". */
  readonly optionalFields: readonly string[];
  readonly fsType: string;
  readonly source: string;
  /** Per-superblock options (rw/ro, errors=, data=, barrier ...). */
  readonly superOptions: readonly string[];
}

export interface MountinfoResult {
  readonly mounts: MountInfo[];
  readonly problems: string[];
}

export function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMountinfo(text: string): MountinfoResult {
  const mounts: MountInfo[] = [];
  const problems: string[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === "") continue;
    const r = parseMountinfoLine(line);
    if (typeof r === "string") problems.push(`line ${i + 1}: ${r}`);
    else mounts.push(r);
  }
  return { mounts, problems };
}

export function parseMountinfoLine(line: string): MountInfo | string {
  if (line.length > 64 * 1024) return "line too long";
  const tok = line.split(" ");
  const sep = tok.indexOf("-", 6);
  if (tok.length < 10 || sep < 0 || tok.length < sep + 4)
    return `malformed (expected "... - fstype source options")`;
  const [id, parent, devno, root, mp, opts] = tok as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const dm = /^(\d+):(\d+)$/.exec(devno);
  if (!/^\d+$/.test(id) || !/^\d+$/.test(parent) || !dm)
    return `malformed ids or device number ${JSON.stringify(devno.slice(0, 40))}`;
  const [mountId, parentId, major, minor] = [
    Number(id),
    Number(parent),
    Number(dm[1]),
    Number(dm[2]),
  ];
  // Digits alone do not make a number: past 2^53 they lose units, past ~1e308 they are Infinity.
  if (![mountId, parentId, major, minor].every(Number.isSafeInteger))
    return `ids or device number out of range: ${JSON.stringify(`${id} ${parent} ${devno}`.slice(0, 80))}`;
  return {
    mountId,
    parentId,
    major,
    minor,
    root: unescapeMountPath(root),
    mountPoint: unescapeMountPath(mp),
    mountOptions: opts.split(","),
    optionalFields: tok.slice(6, sep),
    fsType: tok[sep + 1] as string,
    source: unescapeMountPath(tok[sep + 2] as string),
    superOptions: (tok[sep + 3] as string).split(","),
  };
}

/**
 * The mount a path (already resolved with realpath) lives on: the longest mount point that is
 * a prefix of it; of equal ones the last listed (a later mount hides an earlier one).
 */
export function mountFor(path: string, mounts: readonly MountInfo[]): MountInfo | undefined {
  let best: MountInfo | undefined;
  for (const m of mounts) {
    const mp = m.mountPoint;
    const inside = path === mp || mp === "/" || path.startsWith(mp.endsWith("/") ? mp : `${mp}/`);
    if (inside && (!best || mp.length >= best.mountPoint.length)) best = m;
  }
  return best;
}
