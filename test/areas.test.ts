import test from "ava";
import { loadConfig } from "../agent/config/load.js";
import { buildAreas, type Latest } from "../agent/status/areas.js";
import { diagnose } from "../agent/status/diagnose.js";

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

// WAL fsync slow (one probe at 200 ms; no history, so the last probe stands for the p99) while
// backup.service writes 180 MiB/s: what status and diagnose say depends on what the agent holds.
const slowNode = {
  fsync_probe: { probes: [{ dir: "/var/lib/stemedb/wal", mountpoint: "/var/lib/stemedb", state: "ok", seconds: 0.2 }] },
  procio: { interval_seconds: 5, processes: 90, unreadable: 0, units: [], top: [{ pid: 4242, comm: "restic", unit: "backup.service", read_bps: 0, write_bps: 180 * 1048576, read_bytes: 0, write_bytes: 0, kthread: false }] },
};
const bp = (mode: string, paused: { method: string; since: string; until: string; reason: string } | null) => ({ name: "backup_pause", mode, breaker_open: false, busy: null, last_decision: "waiting: WAL fsync slow for 2 min of 10 min", units: [{ unit: "backup.service", paused }] });
const step3 = (rs: ReturnType<typeof bp>[]) => diagnose(cfg, latest(slowNode), null, Date.now(), rs).steps.find((s) => s.step === "3. iotop: competing I/O");

test("diagnose says what the agent did or will do about a competing backup, in each mode; status flags the writer", (t) => {
  t.is(buildAreas(cfg, latest(slowNode), null, { verdict: "healthy", reasons: [] }).find((a) => a.area === "competing_io")?.verdict, "warn");
  t.is(buildAreas(cfg, latest({ ...slowNode, fsync_probe: { probes: [{ ...slowNode.fsync_probe.probes[0], seconds: 0.001 }] } }), null, { verdict: "healthy", reasons: [] }).find((a) => a.area === "competing_io")?.verdict, "ok", "fsync fast: a busy backup is no finding");
  t.regex(step3([bp("dry-run", null)])?.action ?? "", /^backup\.service competes for the disk: pause it with agentctl backups pause backup\.service --for 30m \(backup_pause is dry-run, it only plans; mode = "on" lets it act\) \(last decision: waiting/);
  t.regex(step3([bp("on", null)])?.action ?? "", /^backup\.service competes for the disk: backup_pause pauses it once p99 has been over 100 ms for 10 min/);
  const held = step3([bp("on", { method: "freeze", since: "2026-12-02T10:02:00.000Z", until: "2026-12-02T10:32:00.000Z", reason: "WAL fsync p99 140 ms; backup.service doing 180.0 MiB/s of I/O" })]);
  t.is(held?.action, "backup.service paused (freeze) since 10:02:00Z, resumes by 10:32:00Z at the latest: WAL fsync p99 140 ms; backup.service doing 180.0 MiB/s of I/O (agentctl backups)");
  const raw = diagnose(cfg, latest(slowNode), null).steps.find((s) => s.step === "5. raw fsync test");
  t.is(raw?.verdict, "crit", "the last probe itself took 200 ms");
});
