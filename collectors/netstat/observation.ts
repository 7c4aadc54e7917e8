// netstat observation: TCP retransmits and interface errors, as `netstat -s` and `ip -s link`
// show them, read from <proc>/net/snmp, <proc>/net/netstat and <proc>/net/dev.
// Pure types: what the core, status, diagnose and remediators read; no implementation.

export interface TcpFigures {
  /** Counters since boot. */
  readonly out_segs: number;
  readonly retrans_segs: number;
  readonly in_errs: number;
  /** TCPTimeouts from /proc/net/netstat, when present. */
  readonly timeouts: number | null;
  /** Per second over the interval; null on the first sample or after a counter reset. */
  readonly retrans_per_second: number | null;
  /**
   * Retransmitted share of segments sent over the interval, 0..1: RetransSegs / (OutSegs +
   * RetransSegs), since OutSegs leaves retransmissions out; null when nothing was sent.
   */
  readonly retrans_ratio: number | null;
}

export interface InterfaceFigures {
  readonly name: string;
  /** Counters since the interface came up. */
  readonly rx_bytes: number;
  readonly tx_bytes: number;
  readonly rx_errors: number;
  readonly tx_errors: number;
  readonly rx_dropped: number;
  readonly tx_dropped: number;
  /** Errors plus drops per second, both directions, over the interval; null on the first sample. */
  readonly errors_per_second: number | null;
}

export interface NetstatObservation {
  readonly interval_seconds: number | null;
  readonly tcp: TcpFigures | null;
  /** Interfaces except loopback, sorted by name. */
  readonly interfaces: readonly InterfaceFigures[];
}
