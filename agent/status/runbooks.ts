// The five StemeDB runbooks by file name and alert, so the page, the rules' runbook annotation and
// `agentctl diagnose RUNBOOK` line up. Its own module: agentctl checks a RUNBOOK argument with it
// without loading the judge.

export const RUNBOOKS = [
  { runbook: "slow-fsync", file: "slow-fsync.md", alert: "WALFsyncSlow", title: "slow WAL fsync" },
  {
    runbook: "replication-lag",
    file: "replication-lag.md",
    alert: "ReplicationLagCritical",
    title: "high replication lag",
  },
  {
    runbook: "wal-fsync-failure",
    file: "wal-fsync-failure.md",
    alert: "WALFsyncFailure",
    title: "WAL fsync failure",
  },
  {
    runbook: "storage-errors",
    file: "storage-errors.md",
    alert: "StorageErrors",
    title: "storage errors, disk full among them",
  },
  {
    runbook: "api-error-rate",
    file: "api-error-rate.md",
    alert: "HighAPIErrorRate",
    title: "high API error rate",
  },
] as const;

export type RunbookInfo = (typeof RUNBOOKS)[number];
export type RunbookId = RunbookInfo["runbook"];

/** A runbook named by its id, its file name or its alert, any case; null when none is. */
export function findRunbook(name: string): RunbookInfo | null {
  const n = name.trim().toLowerCase();
  return (
    RUNBOOKS.find((r) => r.runbook === n || r.file === n || r.alert.toLowerCase() === n) ?? null
  );
}

/** "slow-fsync.md (WALFsyncSlow), …": what a RUNBOOK argument may be. */
export const runbookList = (): string => RUNBOOKS.map((r) => `${r.file} (${r.alert})`).join(", ");
