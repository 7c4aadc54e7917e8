import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import { parse } from "smol-toml";
import { loadConfig, printConfig } from "../core/config/load.js";
import { agentOnce, tempDir } from "./helpers/agent-process.js";

const NO_DEFAULT = "/nonexistent/agent.toml";

function problemsFor(
  toml: string,
  env: NodeJS.ProcessEnv = {},
): { file: string; problems: string[] } {
  const { dir } = tempDir();
  const file = join(dir, "agent.toml");
  writeFileSync(file, toml);
  const r = loadConfig({ file, env, defaultFile: NO_DEFAULT });
  return { file, problems: r.ok ? [] : r.problems };
}

test("embedded defaults load without a file and carry the documented contract values", (t) => {
  const r = loadConfig({ env: {}, defaultFile: NO_DEFAULT });
  if (!r.ok) return t.fail(r.problems.join("\n"));
  const c = r.loaded.config;
  t.is(r.loaded.file, null);
  t.is(c.agent.listen, "0.0.0.0:9735");
  t.is(c.agent.state_dir, "/var/lib/stemedb-agent");
  t.is(c.agent.control_socket, "/run/stemedb-agent/agentctl.sock");
  t.is(c.wal.segment_pattern, "segment.*.wal");
  t.is<number, number>(c.collectors.smart.timeout, 60_000);
  t.deepEqual(c.collectors.kmsg.facilities, ["kern"]);
  t.is(c.remediators.wal_compress.mode, "dry-run");
  t.is<number, number>(c.remediators.backup_pause.fsync_p99_threshold, 100);
  t.is<number, number>(c.remediators.backup_pause.max_pause, 30 * 60_000);
});

test("an unknown key is named with its full path", (t) => {
  const { file, problems } = problemsFor(
    '[collectors.smart]\ntimeout = "30s"\ntimeuot = "30s"\n[bogus]\nx = 1\n',
  );
  t.deepEqual(problems.sort(), [
    `${file}: bogus: unknown key (check the spelling against the configuration reference)`,
    `${file}: collectors.smart.timeuot: unknown key (check the spelling against the configuration reference)`,
  ]);
});

test("a wrong type names the key, what was expected and what was given", (t) => {
  const { file, problems } = problemsFor(
    '[collectors.diskstats]\nenabled = "yes"\n[collectors.procio]\ntop_k = 2.5\n',
  );
  t.true(
    problems.includes(`${file}: collectors.diskstats.enabled: expected boolean, got string "yes"`),
    problems.join("\n"),
  );
  t.true(
    problems.some((p) => p.startsWith(`${file}: collectors.procio.top_k: `)),
    problems.join("\n"),
  );
  t.is(problems.length, 2);
});

test("bad durations and sizes are refused with the text and a hint", (t) => {
  const { file, problems } = problemsFor(
    '[collectors.smart]\ninterval = "10x"\ntimeout = 60\n[remediators.wal_compress]\nmax_bytes_per_second = "64MB/s"\n',
  );
  t.is(problems.length, 3, problems.join("\n"));
  t.true(
    problems.includes(
      `${file}: collectors.smart.interval: invalid duration "10x": use a number with a unit, e.g. ` +
        `"500ms", "10s", "10m", "1h30m", "7d"`,
    ),
  );
  t.true(
    problems.includes(
      `${file}: collectors.smart.timeout: expected a duration string such as "500ms", "10s" or "10m", got 60`,
    ),
  );
  t.true(
    problems.some((p) =>
      p.startsWith(`${file}: remediators.wal_compress.max_bytes_per_second: invalid size "64MB/s"`),
    ),
  );
});

test("enum values, regexes, addresses and cross-key rules are checked", (t) => {
  const { problems } = problemsFor(
    '[agent]\nlisten = "localhost"\nlog_level = "verbose"\n[collectors.diskstats]\nexclude = "(("\n' +
      '[remediators.backup_pause]\nmode = "yes"\nresume_below = "200ms"\nunits = ["backup"]\n',
  );
  const keys = problems.map((p) => p.split(": ")[1]).sort();
  t.deepEqual(
    keys,
    [
      "agent.listen",
      "agent.log_level",
      "collectors.diskstats.exclude",
      "remediators.backup_pause.mode",
      "remediators.backup_pause.units.0",
    ],
    problems.join("\n"),
  );
  // The cross-key rule runs once the keys themselves are valid.
  const cross = problemsFor('[remediators.backup_pause]\nresume_below = "200ms"\n').problems;
  t.is(cross.length, 1);
  t.regex(cross[0] ?? "", /resume_below: must be below fsync_p99_threshold/);
});

test("TOML syntax errors give file, line and column", (t) => {
  const { file, problems } = problemsFor('[agent]\nlisten = "127.0.0.1:1"\n[wal\ndir = "/x"\n');
  t.is(problems.length, 1);
  t.true(problems[0]?.startsWith(`${file}:3:`), problems[0]);
  t.regex(problems[0] ?? "", /TOML syntax error/);
});

test("environment overrides apply to listen and state_dir and are validated as such", (t) => {
  const ok = loadConfig({
    env: { STEMEDB_AGENT_LISTEN: "127.0.0.1:9999", STEMEDB_AGENT_STATE_DIR: "/tmp/x" },
    defaultFile: NO_DEFAULT,
  });
  if (!ok.ok) return t.fail();
  t.is(ok.loaded.config.agent.listen, "127.0.0.1:9999");
  t.is(ok.loaded.config.agent.state_dir, "/tmp/x");
  const bad = loadConfig({ env: { STEMEDB_AGENT_LISTEN: "nope" }, defaultFile: NO_DEFAULT });
  t.false(bad.ok);
  if (!bad.ok)
    t.regex(
      bad.problems[0] ?? "",
      /^environment variable STEMEDB_AGENT_LISTEN: agent\.listen: invalid listen address "nope"/,
    );
});

test("the printed config is valid TOML that loads back to the same config", (t) => {
  const { file } = problemsFor(
    '[collectors.smart]\ninterval = "90m"\n[history]\nraw_retention = "90m"\n' +
      '[remediators.wal_compress]\nmax_bytes_per_second = "10MB"\n',
  );
  const first = loadConfig({ file, env: {} });
  if (!first.ok) return t.fail(first.problems.join("\n"));
  const printed = printConfig(first.loaded.config);
  t.notThrows(() => parse(printed));
  t.regex(printed, /interval = "1h30m"/);
  const { dir } = tempDir();
  const again = join(dir, "again.toml");
  writeFileSync(again, printed);
  const second = loadConfig({ file: again, env: {} });
  if (!second.ok) return t.fail(second.problems.join("\n"));
  t.deepEqual(second.loaded.config, first.loaded.config);
});

test("the binary refuses a bad config with exit 2, one line per problem, and starts nothing", (t) => {
  const { dir } = tempDir();
  const file = join(dir, "agent.toml");
  writeFileSync(
    file,
    `[agent]\nstate_dir = "${join(dir, "state")}"\nlisten = "127.0.0.1:0"\nbogus = 1\n` +
      `[collectors.smart]\ntimeout = "soon"\n`,
  );
  const r = agentOnce(["--config", file]);
  t.is(r.code, 2);
  const lines = r.stderr.trim().split("\n");
  t.deepEqual(lines, [
    `stemedb-agent: config: ${file}: agent.bogus: unknown key (check the spelling against the configuration reference)`,
    `stemedb-agent: config: ${file}: collectors.smart.timeout: invalid duration "soon": ` +
      `use a number with a unit, e.g. "500ms", "10s", "10m", "1h30m", "7d"`,
    "stemedb-agent: not started: 2 configuration problem(s)",
  ]);
  t.is(r.stdout, "");
  t.false(existsSync(join(dir, "state")), "no state dir may be created by a refused start");
});

test("--print-config prints the effective configuration, env overrides included", (t) => {
  const { dir } = tempDir();
  const file = join(dir, "agent.toml");
  writeFileSync(file, '[collectors.diskstats]\ninterval = "2s"\n');
  const r = agentOnce(["--config", file, "--print-config"], {
    STEMEDB_AGENT_STATE_DIR: "/srv/agent-state",
  });
  t.is(r.code, 0, r.stderr);
  const doc = parse(r.stdout) as {
    agent: { state_dir: string };
    collectors: { diskstats: { interval: string } };
  };
  t.is(doc.agent.state_dir, "/srv/agent-state");
  t.is(doc.collectors.diskstats.interval, "2s");
  t.true(r.stdout.startsWith(`# effective configuration (${file})`));
});

test("a missing --config file is an error, not a silent fallback to defaults", (t) => {
  const r = agentOnce(["--config", "/nonexistent/agent.toml"]);
  t.is(r.code, 2);
  t.regex(r.stderr, /\/nonexistent\/agent\.toml: cannot read: ENOENT/);
});

test("unknown command-line flags exit 2 with usage", (t) => {
  const r = agentOnce(["--frobnicate"]);
  t.is(r.code, 2);
  t.regex(r.stderr, /usage: stemedb-agent/);
});

test("backup unit names follow systemd's naming rules; one that reads as an option is refused at load", (t) => {
  const bad: Array<[string, RegExp]> = [
    ["-Hroot@host.service", /starts with '-' \(it would be read as an option\)/],
    ["backup", /must end in \.service or \.timer/],
    ["backup.mount", /must end in \.service or \.timer/],
    ["back up.service", /contains " "/],
    ["back$up.service", /contains "\$"/],
    ["backup@.service", /is a template/],
    ["@x.service", /starts with '@'/],
    [".service", /must end in/],
    [`${"a".repeat(250)}.service`, /longer than 255/],
  ];
  for (const [unit, why] of bad) {
    const { file, problems } = problemsFor(
      `[remediators.backup_pause]\nunits = [${JSON.stringify(unit)}]\n`,
    );
    t.is(problems.length, 1, unit);
    t.true(
      problems[0]?.startsWith(
        `${file}: remediators.backup_pause.units.0: ${JSON.stringify(unit)} is not a usable systemd unit name: it `,
      ),
      problems[0],
    );
    t.regex(problems[0] ?? "", why, unit);
  }
  for (const unit of [
    "backup.service",
    "log-archiver.timer",
    "backup@nightly.service",
    "pg_dump\\x2dall.service",
    "a:b_c.d-e.timer",
    `${"a".repeat(247)}.service`,
  ]) {
    t.deepEqual(
      problemsFor(`[remediators.backup_pause]\nunits = [${JSON.stringify(unit)}]\n`).problems,
      [],
      unit,
    );
  }
  // Through the binary: exit 2, the name and the reason on stderr.
  const { dir } = tempDir();
  const file = join(dir, "agent.toml");
  writeFileSync(file, '[remediators.backup_pause]\nunits = ["-Hroot@host.service"]\n');
  const r = agentOnce(["--config", file, "--print-config"]);
  t.is(r.code, 2);
  t.regex(
    r.stderr,
    /remediators\.backup_pause\.units\.0: "-Hroot@host\.service" is not a usable systemd unit name: it starts with '-'/,
  );
});
