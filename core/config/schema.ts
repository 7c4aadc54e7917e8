// The configuration schema: every key of agent.toml, its type and its embedded default.
// Input is what TOML gives us (strings for durations and sizes); output is typed
// (Duration/Size numbers). `z.encode` turns the output back into TOML-ready input,
// which is how --print-config prints exactly what is in force.
import { z } from "zod";
import { DEFAULT_CONTROL_SOCKET, DEFAULT_STATE_DIR } from "./paths.js";
import { unitNameProblem } from "./unit-name.js";
import {
  type Duration,
  formatDuration,
  MAX_BUNDLE_BYTES,
  MIN_BUNDLE_BYTES,
  formatSize,
  parseDuration,
  parseSize,
  type Size,
} from "./units.js";
import { errorMessage } from "../errors.js";

export const DEFAULT_PORT = 9735;

export { DEFAULT_CONFIG_FILE } from "./paths.js";

const duration = z.codec(
  z.string({
    error: (i) =>
      `expected a duration string such as "500ms", "10s" or "10m", got ${JSON.stringify(i.input)}`,
  }),
  z.custom<Duration>((v) => typeof v === "number"),
  {
    decode: (text, ctx) => {
      const r = parseDuration(text);
      if (r.ok) return r.value;
      ctx.issues.push({ code: "custom", message: r.reason, input: text });
      return z.NEVER;
    },
    encode: (d) => formatDuration(d),
  },
);

const size = z.codec(
  z.string({
    error: (i) =>
      `expected a size string such as "4KiB" or "64MiB", got ${JSON.stringify(i.input)}`,
  }),
  z.custom<Size>((v) => typeof v === "number"),
  {
    decode: (text, ctx) => {
      const r = parseSize(text);
      if (r.ok) return r.value;
      ctx.issues.push({ code: "custom", message: r.reason, input: text });
      return z.NEVER;
    },
    encode: (b) => formatSize(b),
  },
);

const regex = z.string().superRefine((src, ctx) => {
  try {
    new RegExp(src);
  } catch (e) {
    // V8 quotes the pattern raw; a newline in it would split the one-line problem.
    ctx.addIssue({
      code: "custom",
      message: `invalid regular expression: ${errorMessage(e).replace(/\r/g, "\\r").replace(/\n/g, "\\n")}`,
    });
  }
});

const absPath = z
  .string()
  .refine((p) => p.startsWith("/") || p.startsWith("./") || p.startsWith("../"), {
    message:
      "must be an absolute path (or start with ./ for a path relative to the working directory)",
  });
const command = z
  .string()
  .min(1, "must name a program (an absolute path, or a name looked up in PATH)");

/** "host:port", "[v6]:port" or ":port"; port 0 picks a free port (tests). */
const listen = z.string().superRefine((s, ctx) => {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]*):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 0 || port > 65535) {
    ctx.addIssue({
      code: "custom",
      message:
        `invalid listen address ${JSON.stringify(s)}: use "host:port", e.g. ` +
        `"127.0.0.1:${DEFAULT_PORT}" or "[::1]:${DEFAULT_PORT}"`,
    });
  }
});

/** A unit backup_pause may hold: systemd's naming rules, no leading '-', a .service or .timer. */
const backupUnit = z.string().superRefine((u, ctx) => {
  const p = unitNameProblem(u, ["service", "timer"]);
  if (p !== null)
    ctx.addIssue({
      code: "custom",
      message: `${JSON.stringify(u)} is not a usable systemd unit name: it ${p}`,
    });
});

const logLevel = z.enum(["trace", "debug", "info", "warn", "error", "fatal"]);
const mode = z.enum(["off", "dry-run", "on"]);
const percent = z.number().min(0).max(100);

/** Keys every periodic collector has. */
const periodic = (interval: string, timeout: string) => ({
  enabled: z.boolean().default(true),
  interval: duration.prefault(interval),
  timeout: duration.prefault(timeout),
  /** Random delay added to each run, so collectors of many nodes do not fire in lockstep. */
  jitter: duration.prefault("0s"),
});

// A missing table is an empty one: every key in it gets its default. (`{} as never`: the
// generic input type cannot be shown to accept {} although every key has a default.)
const section = <T extends z.core.$ZodLooseShape>(shape: T) =>
  z.strictObject(shape).prefault({} as never);

export const configSchema = z
  .strictObject({
    agent: section({
      listen: listen.default(`0.0.0.0:${DEFAULT_PORT}`),
      state_dir: absPath.default(DEFAULT_STATE_DIR),
      control_socket: absPath.default(DEFAULT_CONTROL_SOCKET),
      socket_group: z.string().default("stemedb-agent"),
      log_level: logLevel.default("info"),
      log_format: z.enum(["json", "pretty"]).default("json"),
    }),
    host: section({
      proc_path: absPath.default("/proc"),
      sys_path: absPath.default("/sys"),
      dev_path: absPath.default("/dev"),
      kmsg_path: absPath.default("/dev/kmsg"),
    }),
    stemedb: section({
      data_dir: absPath.default("/var/lib/stemedb"),
      service: z.string().default("stemedb-api.service"),
      metrics_url: z.union([z.literal(""), z.url({ protocol: /^https?$/ })]).default(""),
    }),
    wal: section({
      dir: absPath.default("/var/lib/stemedb/wal"),
      segment_pattern: z
        .string()
        .min(1)
        .refine(
          (p) => (p.match(/\*/g) ?? []).length === 1,
          "must contain exactly one * (the sequence number)",
        )
        .default("segment.*.wal"),
      /** The active segment not written for this long while the database runs is a stalled WAL. */
      stall_after: duration.prefault("2m"),
      /** Size a sealed segment should have; "0" learns it from the median of the sealed ones. */
      expected_segment_size: size.prefault("0"),
      /** Run once per sealed segment, "{}" replaced by its path (e.g. "stemedb-wal-verify --file {}"); empty: off. */
      verify_command: z.string().default(""),
      /** Stream-check each compressed segment once. */
      check_compressed: z.boolean().default(true),
    }),
    history: section({
      raw_retention: duration.prefault("1h"),
      minute_retention: duration.prefault("7d"),
      hour_retention: duration.prefault("90d"),
      event_retention: duration.prefault("90d"),
      top_io_retention: duration.prefault("2d"),
      flush_interval: duration.prefault("10s"),
      /** Rows held in memory while the file cannot be written (disk full); the oldest are dropped past this. */
      max_pending_rows: z.number().int().min(1000).default(200_000),
    }),
    collectors: section({
      diskstats: section({
        ...periodic("1s", "2s"),
        include: regex.default(""),
        exclude: regex.default("^(loop|ram|zram)\\d+$"),
      }),
      fsync_probe: section({
        ...periodic("5s", "10s"),
        dirs: z.array(absPath).default([]),
        block_size: size
          .prefault("4KiB")
          .refine(
            (b) => b >= 512 && b <= 65536 && (b & (b - 1)) === 0,
            "must be a power of two from 512B to 64KiB",
          ),
      }),
      smart: section({
        ...periodic("10m", "60s"),
        smartctl: command.default("/usr/sbin/smartctl"),
        /**
         * Run smartctl in its own sandboxed transient unit (systemd-run), so the agent needs no
         * disk privileges; auto: when root under systemd without CAP_SYS_RAWIO.
         */
        isolate: z.enum(["auto", "always", "never"]).default("auto"),
        systemd_run: command.default("/usr/bin/systemd-run"),
        devices: z.array(z.string().min(1)).default([]),
        /** How long a rise of a counter judged on growth (199 CRC, SSD 188) keeps the verdict at warn. */
        growth_window: duration.prefault("7d").refine((d) => d >= 1000, "must be at least 1s"),
      }),
      mounts: section({
        ...periodic("30s", "5s"),
        paths: z.array(absPath).default([]),
        /** How much used-bytes history the time-to-full fit looks at. */
        fill_window: duration.prefault("6h"),
        /** Below this much history, time-to-full is not estimated (+Inf). */
        fill_min_span: duration.prefault("10m"),
      }),
      kmsg: section({
        ...periodic("500ms", "5s"),
        facilities: z
          .array(
            z.enum([
              "kern",
              "user",
              "mail",
              "daemon",
              "auth",
              "syslog",
              "lpr",
              "news",
              "uucp",
              "cron",
              "authpriv",
              "ftp",
              "local0",
              "local1",
              "local2",
              "local3",
              "local4",
              "local5",
              "local6",
              "local7",
            ]),
          )
          .min(1)
          .default(["kern"]),
      }),
      wal: section({
        ...periodic("30s", "20s"),
      }),
      procio: section({
        ...periodic("5s", "4s"),
        units: z.array(z.string().min(1)).default([]),
        top_k: z.number().int().min(1).max(100).default(10),
      }),
      process: section({
        ...periodic("5s", "4s"),
      }),
      netstat: section({
        ...periodic("15s", "5s"),
      }),
      errcounters: section({
        ...periodic("15s", "5s"),
        /** How long after a counter's rise a kernel-log line still accounts for it. */
        log_window: duration
          .prefault("30s")
          .refine((d) => d >= 1000 && d <= 600_000, "must be from 1s to 10m"),
      }),
      /** Database threads stuck in a WAL write, devices with no completions ([stalls] thresholds). */
      stalls: section({
        ...periodic("1s", "2s"),
      }),
      /** Per-I/O latency from the block tracepoints through bpftrace (opt-in). */
      bio: section({
        ...periodic("1s", "1s"),
        /** "auto": only where it can run (CAP_BPF+CAP_PERFMON, tracefs, bpftrace). */
        enabled: z.union([z.literal("auto"), z.boolean()]).default(false),
        interval: duration
          .prefault("1s")
          .refine(
            (d) => d >= 100 && Number.isInteger(d),
            "must be a whole number of ms, at least 100ms",
          ),
        /** Measure from insertion into the I/O scheduler's queue, not from issue (biolatency -Q). */
        queue_time: z.boolean().default(false),
        top_k: z.number().int().min(1).max(100).default(5),
        bpftrace: command.default("/usr/bin/bpftrace"),
        /** BPFTRACE_MAP_KEYS_MAX: entries in each kernel-side map (requests in flight, buckets). */
        map_keys_max: z.number().int().min(1024).max(1_048_576).default(16384),
      }),
    }),
    /** What counts as slow: the judge's figures (judge/thresholds.ts), tunable per node. */
    thresholds: section({
      fsync_p99_warn: duration.prefault("50ms"),
      fsync_p99_crit: duration.prefault("100ms"),
      disk_await_warn: duration.prefault("20ms"),
      disk_await_crit: duration.prefault("100ms"),
      disk_util_warn: percent.default(90),
      db_cpu_warn: percent.default(90),
      tcp_retrans_warn: z.number().gt(0).max(100).default(1),
      replication_lag_warn: duration.prefault("10s"),
      replication_lag_crit: duration.prefault("60s"),
    }),
    /**
     * Operations seen while in flight (fsync probe, history writes, database WAL writes, device
     * requests): slow from one age, a stall from the next; detected while ongoing, cleared at the end.
     */
    stalls: section({
      slow_after: duration.prefault("5s").refine((d) => d >= 100, "must be at least 100ms"),
      stall_after: duration.prefault("20s"),
    }),
    /** agentctl diagnose --active: the WAL write test's bounds and place. */
    diagnose: section({
      write_test_size: size
        .prefault("256MiB")
        .refine((b) => b >= 1024 * 1024 && b <= 16 * 1024 ** 3, "must be from 1MiB to 16GiB"),
      write_test_deadline: duration
        .prefault("30s")
        .refine((d) => d >= 1000 && d <= 300_000, "must be from 1s to 5m"),
      write_test_reserve: size.prefault("1GiB"),
      write_test_dir: absPath.or(z.literal("")).default(""),
    }),
    /** `agentctl bundle`, the diagnostic bundle for escalation. */
    bundle: section({
      /** The archive is never larger than this (contents are counted before compression). */
      max_bytes: size
        .prefault("64MiB")
        .refine(
          (b) => b >= MIN_BUNDLE_BYTES && b <= MAX_BUNDLE_BYTES,
          "must be from 256KiB to 1GiB",
        ),
    }),
    remediators: section({
      wal_compress: section({
        mode: mode.default("dry-run"),
        keep_uncompressed: z.number().int().min(1).default(20),
        min_age: duration.prefault("1h"),
        trigger_used_percent: percent.default(80),
        level: z.number().int().min(1).max(9).default(6),
        max_bytes_per_second: size.prefault("32MiB"),
        /** Time-to-full below this is a trigger too. */
        full_horizon: duration.prefault("24h"),
        /** No new segment is started while the fsync probe's recent p99 is above this. */
        pause_fsync_above: duration.prefault("50ms"),
        /** After a failure, no new attempt for this long. */
        cooldown: duration.prefault("1m"),
        /** Consecutive failures that open the circuit breaker (it stays open until reset). */
        breaker_after: z.number().int().min(1).default(3),
        /** A segment is started only with its size plus this much free; writing stops at it. */
        reserve: size.prefault("256MiB"),
        /** The temporary is abandoned once larger than this share of the segment. */
        max_ratio: z.number().gt(0).lte(1).default(0.9),
      }),
      ballast: section({
        mode: mode.default("dry-run"),
        /** "auto": the smaller of 1 % of the WAL filesystem and 1 GiB (CockroachDB's rule). */
        size: z
          .union([
            z.literal("auto"),
            size.refine((b) => b >= 1024 * 1024, 'must be at least 1MiB (or "auto")'),
          ])
          .default("auto"),
        /** Given back at or above this share of the filesystem used ... */
        release_used_percent: percent.default(75),
        /** ... or when the filesystem is full within this at the recent rate. */
        release_full_horizon: duration.prefault("48h"),
        /** Taken only while used, counting the whole ballast, stays at or below this. */
        create_used_percent: percent.default(65),
        /** After a release, space must be back this long before it is taken again. */
        recreate_after: duration.prefault("1h").refine((d) => d >= 1000, "must be at least 1s"),
        breaker_after: z.number().int().min(1).default(3),
      }),
      backup_pause: section({
        mode: mode.default("dry-run"),
        units: z.array(backupUnit).default(["backup.service", "log-archiver.timer"]),
        fsync_p99_threshold: duration.prefault("100ms"),
        for: duration.prefault("10m"),
        resume_below: duration.prefault("50ms"),
        max_pause: duration.prefault("30m"),
        daily_budget: duration.prefault("2h"),
        /**
         * Where the p99 comes from: the agent's probe, the database's own metric, or the worse of
         * the two available.
         */
        source: z.enum(["auto", "probe", "database"]).default("auto"),
        /** The p99 is taken over this much recent time. */
        window: duration.prefault("1m"),
        /** p99 below resume_below for this long ends a pause (hysteresis). */
        resume_after: duration.prefault("2m"),
        /** A pause that has not brought p99 under the threshold by then is undone: it was not the cure. */
        improve_within: duration.prefault("3m"),
        /** After a pause that did not help, no automatic pause of that unit for this long. */
        cooldown: duration.prefault("1h"),
        /** A service doing less I/O than this (per second, max over the window) is not competing. */
        min_io_per_second: size.prefault("1MiB"),
        breaker_after: z.number().int().min(1).default(3),
        systemctl: command.default("/usr/bin/systemctl"),
        systemd_run: command.default("/usr/bin/systemd-run"),
      }),
    }),
  })
  .superRefine((c, ctx) => {
    const th = c.thresholds;
    if (th.fsync_p99_warn >= th.fsync_p99_crit) {
      ctx.addIssue({
        code: "custom",
        path: ["thresholds", "fsync_p99_warn"],
        message:
          "must be below fsync_p99_crit, or WAL fsync would go from ok to crit with no warning",
      });
    }
    if (th.disk_await_warn >= th.disk_await_crit) {
      ctx.addIssue({
        code: "custom",
        path: ["thresholds", "disk_await_warn"],
        message:
          "must be below disk_await_crit, or a disk would go from ok to crit with no warning",
      });
    }
    if (th.replication_lag_warn >= th.replication_lag_crit) {
      ctx.addIssue({
        code: "custom",
        path: ["thresholds", "replication_lag_warn"],
        message:
          "must be below replication_lag_crit, or lag would go from ok to crit with no warning",
      });
    }
    if (c.stalls.slow_after >= c.stalls.stall_after) {
      ctx.addIssue({
        code: "custom",
        path: ["stalls", "slow_after"],
        message: "must be below stall_after, or an operation would stall with no slow warning",
      });
    }
    const bp = c.remediators.backup_pause;
    if (bp.resume_below >= bp.fsync_p99_threshold) {
      ctx.addIssue({
        code: "custom",
        path: ["remediators", "backup_pause", "resume_below"],
        message: "must be below fsync_p99_threshold, or a pause would never end by recovery",
      });
    }
    if (bp.max_pause > bp.daily_budget) {
      ctx.addIssue({
        code: "custom",
        path: ["remediators", "backup_pause", "max_pause"],
        message: "must not exceed daily_budget",
      });
    }
    // The ballast is the first line: it is given back before WAL compression has to act. Only
    // enforced once it may act: a config written before the ballast existed (compression at
    // 70 %, say) must still load after an upgrade, with the ballast in its dry-run default.
    const bl = c.remediators.ballast;
    const wc = c.remediators.wal_compress;
    const acts = bl.mode === "on";
    if (acts && bl.release_used_percent >= wc.trigger_used_percent) {
      ctx.addIssue({
        code: "custom",
        path: ["remediators", "ballast", "release_used_percent"],
        message:
          `must be below remediators.wal_compress.trigger_used_percent ` +
          `(${wc.trigger_used_percent}): the ballast is given back before compression has to act`,
      });
    }
    if (acts && bl.release_full_horizon <= wc.full_horizon) {
      ctx.addIssue({
        code: "custom",
        path: ["remediators", "ballast", "release_full_horizon"],
        message:
          `must be longer than remediators.wal_compress.full_horizon ` +
          `(${formatDuration(wc.full_horizon)}): the ballast is given back before compression has to act`,
      });
    }
    if (bl.create_used_percent >= bl.release_used_percent) {
      ctx.addIssue({
        code: "custom",
        path: ["remediators", "ballast", "create_used_percent"],
        message:
          "must be below release_used_percent, or the ballast would be taken only to be given back",
      });
    }
    const h = c.history;
    if (h.minute_retention < h.raw_retention || h.hour_retention < h.minute_retention) {
      ctx.addIssue({
        code: "custom",
        path: ["history"],
        message: "retentions must not shrink with coarser resolution (raw <= minute <= hour)",
      });
    }
  });

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type PeriodicCollectorName = {
  [K in keyof Config["collectors"]]: Config["collectors"][K] extends { interval: Duration }
    ? K
    : never;
}[keyof Config["collectors"]];
