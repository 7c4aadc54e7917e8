// Pure parsers for per-process and per-cgroup I/O accounting.

/** /proc/<pid>/io (proc(5)). read_bytes/write_bytes are storage I/O; rchar/wchar are any read()/write(). */
export interface ProcIo {
  readonly readBytes: number;
  readonly writeBytes: number;
  readonly cancelledWriteBytes: number;
}

export function parseProcIo(text: string): ProcIo | string {
  const v = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^(\w+):\s+(\d+)$/.exec(line.trim());
    if (m) v.set(m[1] as string, Number(m[2]));
  }
  // Past 2^53 digits lose units (past ~1e308 they are Infinity): garbage, not a counter.
  for (const k of ["read_bytes", "write_bytes", "cancelled_write_bytes"]) {
    const n = v.get(k);
    if (n !== undefined && !Number.isSafeInteger(n)) return `${k} out of range`;
  }
  const readBytes = v.get("read_bytes");
  const writeBytes = v.get("write_bytes");
  if (readBytes === undefined || writeBytes === undefined) return "no read_bytes/write_bytes";
  return { readBytes, writeBytes, cancelledWriteBytes: v.get("cancelled_write_bytes") ?? 0 };
}

/**
 * The systemd unit of a process from /proc/<pid>/cgroup: the last .service/.scope/.socket/...
 * component of its cgroup v2 path ("0::/system.slice/backup.service" -> "backup.service").
 * On hybrid hosts the v2 line can be empty ("0::/"); the v1 name=systemd line then tells.
 */
export function parseCgroupUnit(text: string): { unit: string | null; path: string | null } {
  let v2: string | null = null;
  let named: string | null = null;
  for (const line of text.split("\n")) {
    const [id, controllers, path] = [
      line.slice(0, line.indexOf(":")),
      line.slice(line.indexOf(":") + 1, line.lastIndexOf(":")),
      line.slice(line.lastIndexOf(":") + 1),
    ];
    if (id === "0" && controllers === "") v2 = path;
    else if (controllers === "name=systemd") named = path;
  }
  const unitOf = (p: string | null) => {
    if (!p) return null;
    const parts = p.split("/").filter((x) => /\.(service|scope|socket|mount|swap|timer)$/.test(x));
    return parts.at(-1) ?? null;
  };
  return { unit: unitOf(v2) ?? unitOf(named), path: v2 };
}

/** cgroup v2 io.stat: one line per device "MAJ:MIN key=value ...". */
export interface IoStatEntry {
  readonly rbytes: number;
  readonly wbytes: number;
  readonly rios: number;
  readonly wios: number;
  readonly dbytes: number;
  readonly dios: number;
}

export function parseIoStat(text: string): Map<string, IoStatEntry> {
  const out = new Map<string, IoStatEntry>();
  for (const line of text.split("\n")) {
    const tok = line.trim().split(/\s+/);
    const dev = tok[0];
    if (!dev || !/^\d+:\d+$/.test(dev)) continue;
    const kv = new Map<string, number>();
    for (const t of tok.slice(1)) {
      const i = t.indexOf("=");
      const n = Number(t.slice(i + 1));
      // Counters are unsigned decimal integers; Number() would also take "", "-1", "1e3", "0x10".
      if (i > 0 && /^\d+$/.test(t.slice(i + 1)) && Number.isSafeInteger(n))
        kv.set(t.slice(0, i), n);
    }
    out.set(dev, {
      rbytes: kv.get("rbytes") ?? 0,
      wbytes: kv.get("wbytes") ?? 0,
      rios: kv.get("rios") ?? 0,
      wios: kv.get("wios") ?? 0,
      dbytes: kv.get("dbytes") ?? 0,
      dios: kv.get("dios") ?? 0,
    });
  }
  return out;
}
