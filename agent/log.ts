// Logs are JSON lines on stdout (journald adds time and unit); human-readable only when asked.
import { pino, type Logger } from "pino";
import pretty from "pino-pretty";

export type { Logger };
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal";

export function createLogger(level: LogLevel, format: "json" | "pretty"): Logger {
  const opts = { level, base: { service: "stemedb-agent" }, timestamp: pino.stdTimeFunctions.isoTime };
  if (format === "pretty") {
    return pino(opts, pretty({ colorize: process.stdout.isTTY && !process.env["NO_COLOR"], sync: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname,service" }));
  }
  return pino(opts, pino.destination({ dest: 1, sync: false }));
}
