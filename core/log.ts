// Logs are JSON lines on stdout (journald adds time and unit); human-readable only when asked.
import { createRequire } from "node:module";
import { pino, type Logger } from "pino";
import type PinoPretty from "pino-pretty";

export type { Logger };
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal";

// pino-pretty and what it pulls in (~1 MB resident) are loaded only when pretty output is asked.
const require = createRequire(import.meta.url);

export function createLogger(level: LogLevel, format: "json" | "pretty"): Logger {
  const opts = {
    level,
    base: { service: "stemedb-agent" },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (format === "pretty") {
    const pretty = require("pino-pretty") as typeof PinoPretty;
    return pino(
      opts,
      pretty({
        colorize: process.stdout.isTTY && !process.env["NO_COLOR"],
        sync: true,
        translateTime: "SYS:HH:MM:ss.l",
        ignore: "pid,hostname,service",
      }),
    );
  }
  return pino(opts, pino.destination({ dest: 1, sync: false }));
}
