// One /dev/kmsg record (Documentation/ABI/testing/dev-kmsg), parsed. Pure.
//   PRI,SEQ,TS_USEC,FLAG[,more...];text\n[ KEY=value\n]...
// PRI = facility*8 + level; text escapes bytes < 0x20, >= 0x7f and backslash as \xHH.

export interface KmsgRecord {
  readonly facility: number;
  readonly level: number;
  readonly seq: number;
  readonly tsUsec: number;
  readonly text: string;
  /** Continuation lines: SUBSYSTEM=, DEVICE= (only dev_printk messages carry them). */
  readonly meta: Readonly<Record<string, string>>;
}

export const FACILITIES: Readonly<Record<string, number>> = {
  kern: 0,
  user: 1,
  mail: 2,
  daemon: 3,
  auth: 4,
  syslog: 5,
  lpr: 6,
  news: 7,
  uucp: 8,
  cron: 9,
  authpriv: 10,
  ftp: 11,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
};

export function unescapeKmsg(s: string): string {
  return s.indexOf("\\x") < 0
    ? s
    : s.replace(/\\x([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

export function parseRecord(raw: string): KmsgRecord | string {
  const semi = raw.indexOf(";");
  if (semi < 0) return "no ';' after the header";
  const head = raw.slice(0, semi).split(",");
  if (head.length < 4) return `header has ${head.length} fields, expected at least 4`;
  const [pri, seq, ts] = head as [string, string, string];
  if (!/^\d+$/.test(pri) || !/^\d+$/.test(seq) || !/^\d+$/.test(ts))
    return "non-numeric header field";
  const body = raw.slice(semi + 1);
  const nl = body.indexOf("\n");
  const text = unescapeKmsg(nl < 0 ? body : body.slice(0, nl));
  const meta: Record<string, string> = {};
  if (nl >= 0) {
    for (const line of body.slice(nl + 1).split("\n")) {
      if (!line.startsWith(" ")) continue;
      const eq = line.indexOf("=");
      if (eq > 1) meta[line.slice(1, eq)] = unescapeKmsg(line.slice(eq + 1));
    }
  }
  const [p, sq, us] = [Number(pri), Number(seq), Number(ts)];
  // Past 2^53 digits lose units (and `>>` would wrap PRI at 2^31): garbage, not a record.
  if (![p, sq, us].every(Number.isSafeInteger)) return "header field out of range";
  return { facility: Math.floor(p / 8), level: p % 8, seq: sq, tsUsec: us, text, meta };
}
