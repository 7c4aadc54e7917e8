import test from "ava";
import { loadConfig } from "../core/config/load.js";
import { HistoryStore } from "../core/history/store.js";
import { buildAreas, type Latest } from "../agent/status/areas.js";
import { diagnose, stepOf } from "../agent/status/diagnose.js";
import { tempDir } from "./helpers/agent-process.js";
import { historyIn } from "./helpers/quiet.js";

const cfg = (() => {
  const r = loadConfig({ env: {}, defaultFile: "/nonexistent" });
  if (!r.ok) throw new Error(r.problems.join("\n"));
  return r.loaded.config;
})();

function latest(obs: Record<string, unknown>): Latest {
  return {
    get: <T>(name: string) =>
      name in obs ? { at: Date.now(), observation: obs[name] as T } : undefined,
  };
}

const rwMount = {
  mounts: [
    {
      mountpoint: "/var/lib/stemedb",
      paths: [{ path: "/var/lib/stemedb/wal", role: "wal", exists: true }],
      source: "/dev/sdb1",
      fs_type: "xfs",
      options: ["rw", "noatime"],
      findings: [],
      read_only: false,
      space: {
        size_bytes: 100,
        free_bytes: 50,
        avail_bytes: 50,
        used_bytes: 50,
        used_ratio: 0.5,
        files: 10,
        files_free: 5,
      },
      fill_bytes_per_second: null,
      full_in_seconds: Infinity,
      error: null,
    },
  ],
};

test("a read-only filesystem is seen through the fsync probe's EROFS before the mount flags are re-read", (t) => {
  const areas = buildAreas(
    cfg,
    latest({
      mounts: rwMount,
      fsync_probe: {
        probes: [
          {
            dir: "/var/lib/stemedb/wal",
            mountpoint: "/var/lib/stemedb",
            state: "error",
            errno: "EROFS",
            message: "read-only file system",
          },
        ],
      },
    }),
    null,
    { verdict: "healthy", reasons: [] },
  );
  const m = areas.find((a) => a.area === "mounts");
  t.is(m?.verdict, "crit");
  t.is(m?.summary, "/var/lib/stemedb: read-only (the fsync probe gets EROFS)");
  t.is(areas.find((a) => a.area === "fsync")?.verdict, "crit");
});

test("without any observation every area says what it is waiting for, never a false OK", (t) => {
  const areas = buildAreas(cfg, latest({}), null, { verdict: "healthy", reasons: [] });
  for (const a of areas.filter((x) => !["remediation", "agent", "kernel"].includes(x.area)))
    t.is(a.verdict, "unknown", a.area);
});

// WAL fsync slow (one probe at 200 ms; no history, so the last probe stands for the p99) while
// backup.service writes 180 MiB/s: what status and diagnose say depends on what the agent holds.
const slowNode = {
  fsync_probe: {
    probes: [
      { dir: "/var/lib/stemedb/wal", mountpoint: "/var/lib/stemedb", state: "ok", seconds: 0.2 },
    ],
  },
  procio: {
    interval_seconds: 5,
    processes: 90,
    unreadable: 0,
    units: [],
    top: [
      {
        pid: 4242,
        comm: "restic",
        unit: "backup.service",
        read_bps: 0,
        write_bps: 180 * 1048576,
        read_bytes: 0,
        write_bytes: 0,
        kthread: false,
      },
    ],
  },
};
const bp = (
  mode: string,
  paused: { method: string; since: string; until: string; reason: string } | null,
) => ({
  name: "backup_pause",
  mode,
  breaker_open: false,
  busy: null,
  last_decision: "waiting: WAL fsync slow for 2 min of 10 min",
  units: [{ unit: "backup.service", paused }],
});
const step3 = (rs: ReturnType<typeof bp>[]) =>
  stepOf(diagnose(cfg, latest(slowNode), null, Date.now(), rs), "slow-fsync", 3);

test(
  "diagnose says what the agent did or will do about a competing backup, in each mode; status " +
    "flags the writer",
  (t) => {
    t.is(
      buildAreas(cfg, latest(slowNode), null, { verdict: "healthy", reasons: [] }).find(
        (a) => a.area === "competing_io",
      )?.verdict,
      "warn",
    );
    t.is(
      buildAreas(
        cfg,
        latest({
          ...slowNode,
          fsync_probe: { probes: [{ ...slowNode.fsync_probe.probes[0], seconds: 0.001 }] },
        }),
        null,
        { verdict: "healthy", reasons: [] },
      ).find((a) => a.area === "competing_io")?.verdict,
      "ok",
      "fsync fast: a busy backup is no finding",
    );
    t.regex(
      step3([bp("dry-run", null)])?.action ?? "",
      new RegExp(
        String.raw`^backup\.service competes for the disk: pause it with agentctl backups pause backu` +
          String.raw`p\.service --for 30m \(backup_pause is dry-run, it only plans; mode = "on" lets it` +
          String.raw` act\) \(last decision: waiting`,
      ),
    );
    t.regex(
      step3([bp("on", null)])?.action ?? "",
      /^backup\.service competes for the disk: backup_pause pauses it once p99 has been over 100 ms for 10 min/,
    );
    const held = step3([
      bp("on", {
        method: "freeze",
        since: "2026-12-02T10:02:00.000Z",
        until: "2026-12-02T10:32:00.000Z",
        reason: "WAL fsync p99 140 ms; backup.service doing 180.0 MiB/s of I/O",
      }),
    ]);
    t.is(
      held?.action,
      "backup.service paused (freeze) since 10:02:00Z, resumes by 10:32:00Z at the latest: WAL fsync " +
        "p99 140 ms; backup.service doing 180.0 MiB/s of I/O (agentctl backups)",
    );
    const raw = stepOf(diagnose(cfg, latest(slowNode), null), "slow-fsync", 5);
    t.is(raw?.step, "raw fsync test");
    t.is(raw?.verdict, "crit", "the last probe itself took 200 ms");
  },
);

// Kernel log in incidents: rows as the kmsg collector writes them (class kernel_incident, kind
// the worst severity; class kernel, one per fault line).
function kernelHistory(): HistoryStore {
  const { dir, cleanup } = tempDir("sa-areas-");
  const h = historyIn(dir);
  kernelCleanup.push(() => {
    h.close();
    cleanup();
  });
  return h;
}
const kernelCleanup: Array<() => void> = [];
test.after.always(() => kernelCleanup.forEach((c) => c()));

const NOW = Date.parse("2026-12-02T10:30:00Z");
const incident = (
  h: HistoryStore,
  ts: number,
  device: string,
  worst: "crit" | "error" | "warn",
  classes: Record<string, number>,
  sectors: string[] = [],
) => {
  const lines = Object.values(classes).reduce((a, b) => a + b, 0);
  h.event({
    ts,
    class: "kernel_incident",
    kind: worst,
    severity: worst === "error" ? "warn" : worst,
    subject: device,
    message: "x",
    data: { classes, lines, sectors, requests: [], worst },
  });
};
const line = (h: HistoryStore, ts: number, device: string, cls: string, sev: "crit" | "warn") =>
  h.event({ ts, class: "kernel", kind: cls, severity: sev, subject: device, message: cls });

/** One failed SCSI read on sdb at 10:02:03 (four lines, one incident), a link reset on sdc later. */
function twoIncidents(): HistoryStore {
  const h = kernelHistory();
  const at = Date.parse("2026-12-02T10:02:03Z");
  for (const c of ["scsi_medium_error", "scsi_medium_error", "blk_medium_error"])
    line(h, at, "sdb", c, "crit");
  line(h, at, "sdb", "buffer_io_error", "warn");
  incident(
    h,
    at,
    "sdb",
    "crit",
    { scsi_medium_error: 2, blk_medium_error: 1, buffer_io_error: 1 },
    ["5256"],
  );
  line(h, at + 60_000, "sdc", "ata_link_reset", "warn");
  incident(h, at + 60_000, "sdc", "warn", { ata_link_reset: 1 });
  incident(h, NOW - 25 * 3_600_000, "sdd", "crit", { blk_io_error: 1 }); // older than 24 h
  h.flush();
  return h;
}
const kernelArea = (h: HistoryStore) =>
  buildAreas(cfg, latest({}), h, { verdict: "healthy", reasons: [] }, NOW).find(
    (a) => a.area === "kernel",
  );
const storageStep = (h: HistoryStore, obs: Record<string, unknown> = {}) =>
  stepOf(diagnose(cfg, latest(obs), h, NOW), "storage-errors", 1);

test("status: the kernel log in incidents, worst first, not in lines", (t) => {
  const k = kernelArea(twoIncidents());
  t.is(k?.verdict, "crit");
  t.is(
    k?.summary,
    "2 incidents in 24 h, worst crit on sdb (scsi_medium_error, blk_medium_error, buffer_io_error)",
  );
  t.deepEqual(k?.details, [
    "crit on sdb at 10:02:03 UTC: scsi_medium_error x2, blk_medium_error, buffer_io_error (4 lines; sector 5256)",
    "warn on sdc at 10:03:03 UTC: ata_link_reset (1 line)",
    "5 fault lines in the kernel log behind them",
  ]);
});

test(
  "status: incidents of error or warn severity only are a warning; lines no incident holds yet are " +
    "still said",
  (t) => {
    const h = kernelHistory();
    incident(h, NOW - 60_000, "nvme0n1", "error", { nvme_timeout: 2 });
    h.flush();
    t.like(kernelArea(h), {
      verdict: "warn",
      summary: "1 incident in 24 h, worst error on nvme0n1 (nvme_timeout)",
    });
    const fresh = kernelHistory();
    line(fresh, NOW - 1_000, "sdb", "blk_medium_error", "crit");
    line(fresh, NOW - 1_000, "sdb", "buffer_io_error", "warn");
    fresh.flush();
    t.like(kernelArea(fresh), {
      verdict: "crit",
      summary:
        "2 storage error lines in 24 h, no incident closed yet; most: 1 blk_medium_error on sdb (last 10:29:59 UTC)",
    });
    t.like(kernelArea(kernelHistory()), {
      verdict: "ok",
      summary: "no storage errors in the kernel log in the last 24 h",
    });
  },
);

test("diagnose: storage errors step 1 speaks in incidents; one on the WAL device is critical", (t) => {
  const h = twoIncidents();
  const s = storageStep(h);
  t.is(s?.verdict, "warn", "not on the WAL device");
  t.is(
    s?.evidence,
    "2 incidents (5 fault lines): crit on sdb at 10:02:03 UTC: scsi_medium_error x2, " +
      "blk_medium_error, buffer_io_error (4 lines; sector 5256); warn on sdc at 10:03:03 UTC: " +
      "ata_link_reset (1 line)",
  );
  t.is(s?.action, null);
  const onWal = storageStep(h, {
    diskstats: { devices: [], roles: [{ role: "wal", chain: [{ name: "sdc" }] }] },
  });
  t.is(onWal?.verdict, "crit");
  t.is(
    onWal?.action,
    "the WAL device sdc reports I/O errors: plan to move the WAL off it; check SMART (next step)",
  );
  t.like(storageStep(kernelHistory()), {
    verdict: "ok",
    evidence: "no storage errors in the kernel log",
  });
});
