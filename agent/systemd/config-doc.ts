// Generates systemd/agent.toml (installed as /etc/stemedb/agent.toml): the embedded defaults as
// printed by `stemedb-agent --print-config`, every key commented out, each with its meaning from the
// README's configuration reference. Keys stay commented so an upgrade's new defaults apply to
// everything an operator did not change.
//   node dist/agent/systemd/config-doc.js > systemd/agent.toml
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Meanings shared by every periodic collector (README: "Every periodic collector also has ..."). */
const COMMON: Record<string, string> = {
  enabled: "run this collector",
  interval: "how often it runs",
  timeout: "a run is aborted after this long, its child processes killed and the failure counted",
  jitter: "a random delay up to this long before each run",
};

/** section -> key -> meaning, from the README's "| `key` | `default` | meaning |" tables. */
export function readmeMeanings(readme: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  let section: string | null = null;
  for (const line of readme.split("\n")) {
    const h = /^### `\[([^\]]+)\]`/.exec(line);
    if (h?.[1] !== undefined) {
      section = h[1];
      out.set(section, new Map());
      continue;
    }
    if (line.startsWith("## ")) section = null;
    if (section === null) continue;
    const cells = line
      .replaceAll("\\|", "\u0000")
      .split("|")
      .map((c) => c.replaceAll("\u0000", "|").trim());
    // ["", "`key`", "`default`", "meaning", ""]
    const key = /^`([a-z0-9_]+)`$/.exec(cells[1] ?? "")?.[1];
    if (key !== undefined && cells.length >= 5)
      out.get(section)?.set(key, (cells[3] ?? "").replace(/`/g, ""));
  }
  return out;
}

function wrap(text: string, width = 98): string[] {
  const lines: string[] = [];
  let cur = "";
  for (const w of text.split(/\s+/).filter(Boolean)) {
    if (cur !== "" && cur.length + 1 + w.length > width) {
      lines.push(cur);
      cur = w;
    } else cur = cur === "" ? w : `${cur} ${w}`;
  }
  if (cur !== "") lines.push(cur);
  return lines;
}

const HEADER = `# /etc/stemedb/agent.toml: configuration of stemedb-agent (systemd unit stemedb-agent.service).
#
# Every key has an embedded default; this file lists them all, commented out, with what each means
# (README.md, "Configuration reference", has the details). Uncomment and edit only what differs
# on this node. Durations are strings such as "500ms", "10s", "1h30m", "7d"; sizes such as "4KiB",
# "64MiB". Unknown keys and bad values are refused with the file, key and reason.
#
# Apply: systemctl reload stemedb-agent (SIGHUP; a bad file is refused and the running
# configuration stays). agent.state_dir, agent.control_socket and agent.socket_group change only
# at restart. Check a file first: stemedb-agent --config FILE --print-config
# The unit may write only in /var/lib/stemedb-agent, /run/stemedb-agent and /var/lib/stemedb/wal:
# a different wal.dir or fsync_probe.dirs needs ReadWritePaths= in a drop-in
# (systemctl edit stemedb-agent).
`;

/** The documented file, from `--print-config` output and the README. */
export function documentedConfig(printed: string, readme: string): string {
  const meanings = readmeMeanings(readme);
  const out: string[] = [HEADER.trimEnd()];
  let section = "";
  for (const raw of printed.split("\n")) {
    const line = raw.trimEnd();
    if (line.startsWith("# effective configuration")) continue;
    const sec = /^\[([^\]]+)\]$/.exec(line);
    if (sec?.[1] !== undefined) {
      section = sec[1];
      out.push("", line);
      continue;
    }
    const kv = /^([a-z0-9_]+) = (.*)$/.exec(line);
    if (kv?.[1] === undefined) continue;
    const key = kv[1];
    const documented = meanings.get(section)?.get(key);
    const meaning =
      (documented === undefined || documented === "" ? undefined : documented) ??
      (section.startsWith("collectors.") ? COMMON[key] : undefined) ??
      "see README.md, Configuration reference";
    for (const l of wrap(meaning)) out.push(`# ${l}`);
    out.push(`#${line}`);
  }
  return `${out.join("\n")}\n`;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const root = fileURLToPath(new URL("../../../", import.meta.url));
  const printed = execFileSync(
    process.execPath,
    [`${root}dist/agent/main.js`, "--print-config", "--config", "/dev/null"],
    { encoding: "utf8" },
  );
  process.stdout.write(documentedConfig(printed, readFileSync(`${root}README.md`, "utf8")));
}
