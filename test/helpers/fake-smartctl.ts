// A stand-in for smartctl, for the hardware this machine does not have: a shell script that
// prints a captured real smartctl JSON output for a device and exits with the status recorded
// in it. Special behaviours: "hang" (starts a child and waits forever, to test killing the
// process group) and "garbage" (prints something that is not JSON).
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const SMART_FIXTURES = fileURLToPath(
  new URL("../../../test/fixtures/smart/", import.meta.url),
);

/** A fixture (name under test/fixtures/smart, or an absolute path), or "hang", or "garbage". */
export type FakeBehaviour = string;

export interface FakeSmartctl {
  readonly path: string;
  readonly callsLog: string;
  readonly hangPidFile: string;
  calls(): string[];
  /** Re-points a device at another fixture (a name under test/fixtures/smart or an absolute path). */
  set(device: string, behaviour: FakeBehaviour): void;
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export function fakeSmartctl(
  dir: string,
  devices: Record<string, FakeBehaviour>,
  scanFixture: string | null = null,
): FakeSmartctl {
  const path = join(dir, "smartctl");
  const callsLog = join(dir, "calls.log");
  const hangPidFile = join(dir, "hang.pid");
  const map = { ...devices };
  const write = () => {
    const cases = Object.entries(map).map(([dev, b]) => {
      if (b === "hang")
        return `  ${q(dev)}) sleep 600 & echo $! > ${q(hangPidFile)}; wait; exit 0;;`;
      if (b === "garbage")
        return `  ${q(dev)}) echo 'Segmentation fault (core dumped) <<<not json>>>'; exit 0;;`;
      const file = b.startsWith("/") ? b : join(SMART_FIXTURES, b);
      const status =
        (JSON.parse(readFileSync(file, "utf8")) as { smartctl?: { exit_status?: number } }).smartctl
          ?.exit_status ?? 0;
      return `  ${q(dev)}) cat ${q(file)}; exit ${status};;`;
    });
    const scan = scanFixture
      ? `cat ${q(join(SMART_FIXTURES, scanFixture))}`
      : `echo '{"json_format_version":[1,0],"smartctl":{"version":[7,3],"exit_status":0}}'`;
    writeFileSync(
      path,
      `#!/bin/sh\necho "$*" >> ${q(callsLog)}\nfor a; do last=$a; done\n` +
        `case "$*" in *--scan-open*) ${scan}; exit 0;; esac\ncase "$last" in\n${cases.join("\n")}\n` +
        `  *) echo ` +
        `'{"json_format_version":[1,0],"smartctl":{"version":[7,3],"messages":[{"string":"'"$last"': ` +
        `Unable to detect device type","severity":"error"}],"exit_status":1}}'; exit 1;;\nesac\n`,
    );
    chmodSync(path, 0o755);
  };
  write();
  return {
    path,
    callsLog,
    hangPidFile,
    calls: () => {
      try {
        return readFileSync(callsLog, "utf8").trim().split("\n").filter(Boolean);
      } catch {
        return [];
      }
    },
    set(device, behaviour) {
      map[device] = behaviour;
      write();
    },
  };
}
