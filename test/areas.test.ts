import test from "ava";
import { loadConfig } from "../agent/config/load.js";
import { buildAreas, type Latest } from "../agent/status/areas.js";

const cfg = (() => {
  const r = loadConfig({ env: {}, defaultFile: "/nonexistent" });
  if (!r.ok) throw new Error(r.problems.join("\n"));
  return r.loaded.config;
})();

function latest(obs: Record<string, unknown>): Latest {
  return { get: <T>(name: string) => (name in obs ? { at: Date.now(), observation: obs[name] as T } : undefined) };
}

const rwMount = { mounts: [{ mountpoint: "/var/lib/stemedb", paths: [{ path: "/var/lib/stemedb/wal", role: "wal", exists: true }], source: "/dev/sdb1", fs_type: "xfs", options: ["rw", "noatime"], findings: [], read_only: false, space: { size_bytes: 100, free_bytes: 50, avail_bytes: 50, used_bytes: 50, used_ratio: 0.5, files: 10, files_free: 5 }, fill_bytes_per_second: null, full_in_seconds: Infinity, error: null }] };

test("a read-only filesystem is seen through the fsync probe's EROFS before the mount flags are re-read", (t) => {
  const areas = buildAreas(cfg, latest({ mounts: rwMount, fsync_probe: { probes: [{ dir: "/var/lib/stemedb/wal", mountpoint: "/var/lib/stemedb", state: "error", errno: "EROFS", message: "read-only file system" }] } }), null, { verdict: "healthy", reasons: [] });
  const m = areas.find((a) => a.area === "mounts");
  t.is(m?.verdict, "crit");
  t.is(m?.summary, "/var/lib/stemedb: read-only (the fsync probe gets EROFS)");
  t.is(areas.find((a) => a.area === "fsync")?.verdict, "crit");
});

test("without any observation every area says what it is waiting for, never a false OK", (t) => {
  const areas = buildAreas(cfg, latest({}), null, { verdict: "healthy", reasons: [] });
  for (const a of areas.filter((x) => !["remediation", "agent", "kernel"].includes(x.area))) t.is(a.verdict, "unknown", a.area);
});
