// Small text helpers for agentctl output.

export interface Style {
  readonly color: boolean;
}

const CODES = { red: 31, yellow: 33, green: 32, dim: 2, bold: 1 } as const;

export function paint(style: Style, code: keyof typeof CODES, text: string): string {
  return style.color ? `\u001b[${CODES[code]}m${text}\u001b[0m` : text;
}

/** Colour is for people at a terminal: never when piped, never with NO_COLOR. */
export function detectStyle(
  stream: NodeJS.WriteStream,
  env = process.env,
  forceOff = false,
): Style {
  return {
    color: !forceOff && stream.isTTY === true && !env["NO_COLOR"] && env["TERM"] !== "dumb",
  };
}

/** 3725 -> "1h02m", 42 -> "42s". */
export function humanDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400)
    return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, "0")}h`;
}

export function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function ago(iso: string | null, now = Date.now()): string {
  if (iso === null) return "never";
  return `${humanDuration((now - Date.parse(iso)) / 1000)} ago`;
}

/** Left-aligned columns, widths from the content. */
export function table(rows: readonly (readonly string[])[], indent = "  "): string {
  const widths: number[] = [];
  for (const r of rows)
    r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, visibleLength(c))));
  return rows
    .map(
      (r) =>
        indent +
        r
          .map((c, i) =>
            i === r.length - 1 ? c : c + " ".repeat((widths[i] ?? 0) - visibleLength(c)),
          )
          .join("  "),
    )
    .join("\n");
}

function visibleLength(s: string): number {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\u001b\[\d+m/g, "").length;
}
