// smartctl in its own transient systemd unit, so that the long-running agent does not hold
// CAP_SYS_RAWIO (SATA/SAS pass-through) and CAP_SYS_ADMIN (NVMe admin commands) or the disks'
// device nodes: only a short-lived smartctl does, sandboxed, and dies with RuntimeMaxSec= even
// when the agent gave up on it (killing `systemd-run --wait` does not stop the unit it started).
// Verified on systemd 252: root without CAP_SYS_ADMIN may start transient units over PID 1's
// private socket, and `systemd-run --wait --pipe` passes smartctl's output and exit bitmask on.
import { existsSync } from "node:fs";
import { Host } from "../../core/host/host.js";

export type IsolateMode = "auto" | "always" | "never";

const CAP_SYS_RAWIO = 17n;

/**
 * Whether to isolate: always/never as configured; auto when the agent runs as root under systemd
 * (PID 1 answers on /run/systemd/system) without CAP_SYS_RAWIO, i.e. in the hardened unit.
 */
export function shouldIsolate(
  mode: IsolateMode,
  procPath: string,
  env: { uid: number; systemdRunning: boolean } = {
    uid: process.getuid?.() ?? -1,
    systemdRunning: existsSync("/run/systemd/system"),
  },
): boolean {
  if (mode !== "auto") return mode === "always";
  if (env.uid !== 0 || !env.systemdRunning) return false;
  try {
    const eff = new Host({ procPath }).process("self").capEff();
    return eff !== null ? ((eff >> CAP_SYS_RAWIO) & 1n) === 0n : false;
  } catch {
    return false;
  }
}

/** The command that runs `smartctl args` in a sandboxed transient unit. Pure. */
export function isolatedCommand(
  systemdRun: string,
  smartctl: string,
  args: readonly string[],
  timeoutMs: number,
): { file: string; args: string[] } {
  const props = [
    "CapabilityBoundingSet=CAP_SYS_RAWIO CAP_SYS_ADMIN",
    "NoNewPrivileges=yes",
    `RuntimeMaxSec=${Math.ceil(timeoutMs / 1000) + 5}`,
    "DevicePolicy=closed",
    // What smartctl opens: SCSI/SATA disks and their generic nodes, NVMe, virtio (answers "unsupported").
    "DeviceAllow=block-sd rw",
    "DeviceAllow=char-scsi_generic rw",
    "DeviceAllow=char-nvme rw",
    "DeviceAllow=block-blkext r",
    "DeviceAllow=block-virtblk r",
    "PrivateNetwork=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelTunables=yes",
    "ProtectControlGroups=yes",
    "RestrictAddressFamilies=AF_UNIX",
    "RestrictNamespaces=yes",
    "LockPersonality=yes",
    "MemoryDenyWriteExecute=yes",
    "SystemCallArchitectures=native",
  ];
  return {
    file: systemdRun,
    args: [
      "--pipe",
      "--wait",
      "--quiet",
      "--collect",
      "--service-type=exec",
      "--description=stemedb-agent: smartctl (sandboxed)",
      ...props.flatMap((p) => ["-p", p]),
      "--",
      smartctl,
      ...args,
    ],
  };
}
